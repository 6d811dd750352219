"""
Tests of :mod:`rsync_system_backup.backup_set.marker`: a backup set remembers its source and refuses another one.

Real runs of the command on local directories and over SSH (the sshd
fixtures are in ``conftest.py``).
"""

import socket

from support.cli import assert_failed
from support.remote import SERVER_ALIAS
from support.trees import snapshot_names, take_manifest, write_file

MARKER = '.rsync-system-backup'


def make_sources(tmp_path):
    """Two source directories, ``home`` and ``other``, with a file each."""
    for name in ('home', 'other'):
        write_file(tmp_path / name / ('%s-file' % name), name.encode())
    return tmp_path / 'home', tmp_path / 'other'


def test_other_source_is_refused(tmp_path, run_cli):
    """`-b DESTINATION` (SOURCE /) into the set of /home is refused, naming both; nothing changes."""
    home, other = make_sources(tmp_path)
    backups = tmp_path / 'backups'
    assert run_cli('--disable-notifications', home, backups / 'latest').returncode == 0
    recorded = '%s:%s' % (socket.gethostname(), home)
    assert 'Source: %s\n' % recorded in (backups / MARKER).read_text()
    before = take_manifest(backups)
    result = run_cli('--disable-notifications', '-b', backups / 'latest')
    assert_failed(result, 'The backup set in %s holds backups of %s, not of %s:/' % (backups, recorded,
                                                                                     socket.gethostname()),
                  'give %s as SOURCE' % home, '--accept-existing')
    result = run_cli('--disable-notifications', other, backups / 'latest')
    assert_failed(result, 'holds backups of %s, not of %s:%s' % (recorded, socket.gethostname(), other))
    assert take_manifest(backups) == before


def test_accept_existing_changes_the_source(tmp_path, run_cli):
    """--accept-existing makes the set a backup of the new source from then on."""
    home, other = make_sources(tmp_path)
    backups = tmp_path / 'backups'
    assert run_cli('--disable-notifications', home, backups / 'latest').returncode == 0
    result = run_cli('--disable-notifications', '--accept-existing', other, backups / 'latest')
    assert result.returncode == 0, result
    assert 'it holds backups of %s:%s from now on' % (socket.gethostname(), other) in result.stderr
    assert (backups / 'latest' / 'other-file').exists() and not (backups / 'latest' / 'home-file').exists()
    assert 'Source: %s:%s\n' % (socket.gethostname(), other) in (backups / MARKER).read_text()
    assert run_cli('--disable-notifications', other, backups / 'latest').returncode == 0


def test_older_sets_learn_their_source(tmp_path, run_cli):
    """A marker without a source (made before this change) gets one on the next backup, which is then enforced."""
    home, other = make_sources(tmp_path)
    backups = tmp_path / 'backups'
    assert run_cli('--disable-notifications', home, backups / 'latest').returncode == 0
    old_text = ''.join(line for line in (backups / MARKER).read_text().splitlines(True)
                       if not line.startswith('Source: '))
    (backups / MARKER).write_text(old_text)
    dry = run_cli('--disable-notifications', '--dry-run', other, backups / 'latest')
    assert dry.returncode == 0 and (backups / MARKER).read_text() == old_text
    assert run_cli('--disable-notifications', other, backups / 'latest').returncode == 0
    assert (backups / MARKER).read_text() == old_text + 'Source: %s:%s\n' % (socket.gethostname(), other)
    assert_failed(run_cli('--disable-notifications', home, backups / 'latest'), 'holds backups of')
    assert len(snapshot_names(backups)) == 2


def test_other_source_over_ssh(tmp_path, client_home):
    """Over SSH the marker records the source as well, and another source is refused."""
    home, other = make_sources(tmp_path)
    backups = tmp_path / 'backups'
    destination = '%s:%s' % (SERVER_ALIAS, backups / 'latest')
    assert client_home.run(home, destination).returncode == 0
    assert 'Source: %s:%s\n' % (socket.gethostname(), home) in (backups / MARKER).read_text()
    result = client_home.run(other, destination)
    host = socket.gethostname()
    assert_failed(result, 'holds backups of %s:%s, not of %s:%s' % (host, home, host, other))
    assert sorted(p.name for p in (backups / 'latest').iterdir()) == ['home-file']


def test_daemon_post_xfer_run_marks_its_set(tmp_path, run_cli):
    """An rsync daemon's post-xfer exec run (-s -r) marks the module's set, so --max-age knows it as a set."""
    backups = tmp_path / 'module'
    write_file(backups / 'latest' / 'file', b'data')
    environment = {'RSYNC_MODULE_PATH': str(backups / 'latest'), 'RSYNC_EXIT_STATUS': '0'}
    result = run_cli('--disable-notifications', '--snapshot', '--rotate', env=environment)
    assert result.returncode == 0, result
    text = (backups / MARKER).read_text()
    assert text.startswith('This directory holds backups made by rsync-system-backup.') and 'Source:' not in text
    assert len(snapshot_names(backups)) == 1
    result = run_cli('--max-age=1h', backups / 'latest')
    assert result.returncode == 0 and result.stdout.startswith('OK: '), result
