"""
Tests of :mod:`rsync_system_backup.backup_set.access`: the backup set is closed to other users.

Real runs of the command, into a local directory and over SSH (a real sshd on
127.0.0.1, see :mod:`support.remote`): the directories a run creates have
mode 0700, and a backup root that lets other users in gets a warning with the
``chmod`` that closes it.
"""

import os
import stat

from support.remote import SERVER_ALIAS

OPEN_WARNING = "The backup directory %s lets other users in (mode 0755)"
"""The start of the warning about an open backup root."""


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
    assert "Run 'chmod 700 %s' to close it." % backups in result.stderr, result
    assert mode_of(backups) == 0o755
    backups.chmod(0o700)
    result = run_cli(source, backups / 'latest')
    assert result.returncode == 0, result
    assert 'lets other users in' not in result.stderr, result


def test_over_ssh(tmp_path, client_home, source):
    """Over SSH the new directories are 0700 too, and the warning names the host to run chmod on."""
    latest = tmp_path / 'remote' / 'backups' / 'latest'
    result = client_home.run(source, '%s:%s' % (SERVER_ALIAS, latest))
    assert result.returncode == 0, result
    assert mode_of(tmp_path / 'remote') == 0o700
    assert mode_of(latest.parent) == 0o700
    assert 'lets other users in' not in result.stderr, result
    latest.parent.chmod(0o755)
    result = client_home.run(source, '%s:%s' % (SERVER_ALIAS, latest))
    assert result.returncode == 0, result
    assert OPEN_WARNING % latest.parent in result.stderr, result
    assert "Run 'chmod 700 %s' on %s to close it." % (latest.parent, SERVER_ALIAS) in result.stderr, result
