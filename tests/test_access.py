"""
Tests of :mod:`rsync_system_backup.backup_set.access`: the backup set is closed to other users.

Real runs of the command, into a local directory and over SSH (a real sshd on
127.0.0.1, see :mod:`support.remote`): the directories a run creates have
mode 0700, and a backup root that lets other users in gets a warning with the
``chmod`` that closes it: once per mode (cron would mail it every hour), in
every dry run, and on every run where others can write the directory.
"""

import os
import stat

from rsync_system_backup.backup_set.access import RECORD_NAME
from support.remote import SERVER_ALIAS
from support.trees import take_manifest

OPEN_WARNING = "WARNING The backup directory %s lets other users in (mode 0755)"
"""The start of the warning about an open backup root."""

ONCE = "This warning comes again only when the mode changes."
"""The end of the warning in a run that records it (not in a dry run)."""


def mode_of(path):
    """Give the permission bits of a path (an integer)."""
    return stat.S_IMODE(os.stat(str(path)).st_mode)


def test_new_directories_are_private(tmp_path, run_cli, source):
    """A local run creates the backup root and its missing parents with mode 0700, and doesn't warn."""
    latest = tmp_path / 'new' / 'backups' / 'latest'
    result = run_cli(source, latest)
    assert result.returncode == 0, result
    assert mode_of(tmp_path / 'new') == 0o700
    assert mode_of(latest.parent) == 0o700
    assert 'lets other users in' not in result.stderr, result


def test_open_root_is_reported(tmp_path, run_cli, source):
    """An existing backup root with mode 0755 gets a warning that names the chmod to run; the backup goes on."""
    backups = tmp_path / 'backups'
    backups.mkdir()
    backups.chmod(0o755)
    result = run_cli(source, backups / 'latest')
    assert result.returncode == 0, result
    assert OPEN_WARNING % backups in result.stderr, result
    assert "Run 'chmod 700 %s' to close it. %s" % (backups, ONCE) in result.stderr, result
    assert mode_of(backups) == 0o755
    backups.chmod(0o700)
    result = run_cli(source, backups / 'latest')
    assert result.returncode == 0, result
    assert 'lets other users in' not in result.stderr, result


def test_warned_once_per_mode(tmp_path, run_cli, source):
    """
    The warning comes on the first run, not on the next ones (cron mails them), and again when the mode changes.

    Closing the directory and opening it again is a change too. A later run
    with the same mode says it at the info level only (which -v shows without a terminal).
    """
    backups = tmp_path / 'backups'
    backups.mkdir()
    backups.chmod(0o755)
    runs = [run_cli(source, backups / 'latest') for _ in range(2)]
    assert all(result.returncode == 0 for result in runs), runs
    assert [OPEN_WARNING % backups in result.stderr for result in runs] == [True, False], runs
    assert runs[1].stderr.count('WARNING') == 0, runs[1]
    assert mode_of(backups) == 0o755
    result = run_cli('-v', source, backups / 'latest')
    assert 'WARNING' not in result.stderr, result
    assert "INFO The backup directory %s still lets other users in (mode 0755;" % backups in result.stderr, result
    backups.chmod(0o750)
    runs = [run_cli(source, backups / 'latest') for _ in range(2)]
    assert [(OPEN_WARNING.replace('0755', '0750') % backups) in result.stderr for result in runs] == [True, False]
    backups.chmod(0o700)
    assert 'lets other users in' not in run_cli(source, backups / 'latest').stderr
    assert not (backups / RECORD_NAME).exists(), "a closed directory keeps no record"
    backups.chmod(0o750)
    result = run_cli(source, backups / 'latest')
    assert (OPEN_WARNING.replace('0755', '0750') % backups) in result.stderr, result
    assert {'latest', RECORD_NAME} <= set(os.listdir(str(backups)))


def test_writable_root_warns_every_time(tmp_path, run_cli, source):
    """
    A backup root that others can write is warned about on every run, and
    no record is written there: they could forge it, or plant something under
    its name (here a directory) that would make writing it fail.
    """
    backups = tmp_path / 'backups'
    (backups / '.rsync-system-backup.access').mkdir(parents=True)
    backups.chmod(0o1777)
    for _ in range(2):
        result = run_cli(source, backups / 'latest')
        assert result.returncode == 0, result
        assert (OPEN_WARNING.replace('0755', '1777') % backups) in result.stderr, result
        assert "to close it. While others can write it, this warning comes on every run." in result.stderr, result
        assert os.listdir(str(backups / '.rsync-system-backup.access')) == []


def test_dry_run_warns(tmp_path, run_cli, source):
    """A dry run warns about an open root every time (also after a real run did), and records nothing."""
    backups = tmp_path / 'backups'
    backups.mkdir()
    backups.chmod(0o755)
    for _ in range(2):
        result = run_cli('-n', source, backups / 'latest')
        assert result.returncode == 0, result
        assert OPEN_WARNING % backups in result.stderr, result
        assert ONCE not in result.stderr, result
        assert os.listdir(str(backups)) == [], "a dry run writes nothing"
    assert OPEN_WARNING % backups in run_cli(source, backups / 'latest').stderr
    assert OPEN_WARNING % backups not in run_cli(source, backups / 'latest').stderr
    before = take_manifest(backups)
    result = run_cli('-n', source, backups / 'latest')
    assert result.returncode == 0, result
    assert OPEN_WARNING % backups in result.stderr, result
    assert take_manifest(backups) == before
    result = run_cli('-n', source, tmp_path / 'missing' / 'backups' / 'latest')
    assert result.returncode == 0, result
    assert 'lets other users in' not in result.stderr, result
    assert not (tmp_path / 'missing').exists()


def test_over_ssh(tmp_path, client_home, source):
    """Over SSH the new directories are 0700 too, and the warning (once per mode) names the host to run chmod on."""
    latest = tmp_path / 'remote' / 'backups' / 'latest'
    destination = '%s:%s' % (SERVER_ALIAS, latest)
    result = client_home.run(source, destination)
    assert result.returncode == 0, result
    assert mode_of(tmp_path / 'remote') == 0o700
    assert mode_of(latest.parent) == 0o700
    assert 'lets other users in' not in result.stderr, result
    latest.parent.chmod(0o755)
    result = client_home.run('-n', source, destination)
    assert result.returncode == 0, result
    assert OPEN_WARNING % latest.parent in result.stderr, result
    assert not (latest.parent / RECORD_NAME).exists()
    result = client_home.run(source, destination)
    assert result.returncode == 0, result
    assert OPEN_WARNING % latest.parent in result.stderr, result
    assert "Run 'chmod 700 %s' on %s to close it. %s" % (latest.parent, SERVER_ALIAS, ONCE) in result.stderr, result
    result = client_home.run(source, destination)
    assert result.returncode == 0, result
    assert 'lets other users in' not in result.stderr, result
    latest.parent.chmod(0o700)
    assert 'lets other users in' not in client_home.run(source, destination).stderr
    assert not (latest.parent / RECORD_NAME).exists()
    latest.parent.chmod(0o755)
    assert OPEN_WARNING % latest.parent in client_home.run(source, destination).stderr
