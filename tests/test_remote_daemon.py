"""
Tests for rsync daemon destinations and the daemon's ``post-xfer exec`` command, against a real rsync daemon.

The client runs as a real process (see :mod:`support.remote`); every run
also checks that no process outlives it. The ``post-xfer exec`` command is
the installed ``rsync-system-backup`` program of the interpreter that runs
the tests.
"""

import os
import shlex
import subprocess
import sys

import pytest

from support.remote import (
    ClientHome,
    SmallDiskRsyncDaemon,
    make_snapshots,
    read_tree,
    server_view,
    snapshot_names,
    visible_names,
    wait_for,
    wait_until_idle,
)
from support.servers import RsyncDaemon, free_port, write_secrets_file
from support.trees import assert_failed

PROGRAM = os.path.join(os.path.dirname(sys.executable), 'rsync-system-backup')
"""The installed command (what an rsyncd.conf names in its ``post-xfer exec``)."""

PASSWORD = 'c0rrect horse; $battery'
"""The daemon password of the user ``alice`` (with characters a shell would interpret)."""


def post_xfer_command(log_file):
    """The ``post-xfer exec`` command: snapshot and rotate the module, logging to a file."""
    assert os.access(PROGRAM, os.X_OK), "Install the package (pip install -e .) so that %s exists." % PROGRAM
    return 'COLOREDLOGS_SYSLOG=false %s --snapshot --rotate --disable-notifications --log-file=%s' % (
        shlex.quote(PROGRAM), shlex.quote(str(log_file)))


@pytest.fixture
def backups(tmp_path):
    """The parent directories of the modules' paths (each module's path is ``latest`` in one of them)."""
    directories = {name: tmp_path / name for name in ('open', 'private', 'snapshots')}
    for directory in directories.values():
        (directory / 'latest').mkdir(parents=True)
    return directories


@pytest.fixture
def daemon(tmp_path, backups):
    """An rsync daemon with an open module, a module with a password and a module that snapshots after transfers."""
    secrets = write_secrets_file(tmp_path / 'rsyncd.secrets', {'alice': PASSWORD})
    modules = {
        'open': {'path': backups['open'] / 'latest', 'read only': 'no'},
        'private': {'path': backups['private'] / 'latest', 'read only': 'no',
                    'auth users': 'alice', 'secrets file': secrets},
        'snapshots': {'path': backups['snapshots'] / 'latest', 'read only': 'no',
                      'post-xfer exec': post_xfer_command(tmp_path / 'post-xfer.log')},
    }
    with RsyncDaemon(tmp_path / 'rsyncd', modules) as server:
        yield server
        wait_until_idle(server)


@pytest.fixture
def client(tmp_path):
    """Runs the command (see :class:`support.remote.ClientHome`)."""
    return ClientHome(tmp_path / 'client-home')


def test_backup_to_module(daemon, backups, client, source):
    """-b transfers into a module (rsync:// syntax with a port)."""
    result = client.run('--backup', source, daemon.url('open'))
    assert result.returncode == 0, result
    assert read_tree(backups['open'] / 'latest') == source.contents
    assert visible_names(backups['open']) == ['latest']


@pytest.mark.parametrize('options', [[], ['--snapshot'], ['--rotate'], ['--backup', '--snapshot']])
def test_snapshot_and_rotation_need_post_xfer_exec(daemon, backups, client, source, options):
    """Snapshots and rotation can't be done from the client: a clear message before anything is transferred."""
    result = client.run(*(options + [source, daemon.url('open')]))
    assert_failed(result, "Can't run commands on the rsync daemon 127.0.0.1", "use -b/--backup alone",
                  "'rsync-system-backup --snapshot --rotate' as its post-xfer exec command")
    assert os.listdir(backups['open'] / 'latest') == []


def test_password_from_environment(daemon, backups, client, source):
    """$RSYNC_PASSWORD logs in; the password shows up nowhere, not even in debug output."""
    result = client.run('-vv', '--backup', source, daemon.url('private', user='alice'),
                        env={'RSYNC_PASSWORD': PASSWORD})
    assert result.returncode == 0, result
    assert read_tree(backups['private'] / 'latest') == source.contents
    assert PASSWORD not in result.output


def test_wrong_password(daemon, backups, client, source):
    """A wrong password fails with a clear message that doesn't repeat the password."""
    result = client.run('--backup', source, daemon.url('private', user='alice'), env={'RSYNC_PASSWORD': 'wrong!'})
    assert_failed(result, "rsync failed with exit code 5", "@ERROR: auth failed on module private",
                  "$RSYNC_PASSWORD or the --password-file")
    assert 'wrong!' not in result.output
    assert os.listdir(backups['private'] / 'latest') == []


def test_password_file(tmp_path, daemon, backups, client, source):
    """--password-file logs in; the password shows up nowhere."""
    password_file = tmp_path / 'password'
    password_file.write_text(PASSWORD + '\n')
    password_file.chmod(0o600)
    result = client.run('-vv', '--backup', '--password-file', password_file, source,
                        daemon.url('private', user='alice'))
    assert result.returncode == 0, result
    assert read_tree(backups['private'] / 'latest') == source.contents
    assert PASSWORD not in result.output


def test_password_file_readable_by_others(tmp_path, daemon, client, source):
    """A password file that others can read is refused by rsync, and the message says how to fix it."""
    password_file = tmp_path / 'password'
    password_file.write_text(PASSWORD + '\n')
    password_file.chmod(0o644)
    result = client.run('--backup', '--password-file=%s' % password_file, source,
                        daemon.url('private', user='alice'))
    assert_failed(result, "password file must not be other-accessible", "chmod 600")


def test_password_file_needs_daemon(tmp_path, client, source):
    """--password-file with a destination that isn't a daemon is refused before anything happens."""
    result = client.run('--backup', '--password-file=/nonexistent', source, tmp_path / 'backups' / 'latest')
    assert_failed(result, "--password-file is for rsync daemon logins")
    assert not (tmp_path / 'backups').exists()


def test_unknown_module(daemon, client, source):
    """A module the daemon doesn't have: a clear message that says how to list the modules."""
    result = client.run('--backup', source, daemon.url('nonexistent'))
    assert_failed(result, "@ERROR: Unknown module 'nonexistent'", "lists the daemon's modules")


def test_connection_refused(client, source):
    """A port where no daemon listens: a clear message."""
    result = client.run('--backup', source, 'rsync://127.0.0.1:%d/backups' % free_port())
    assert_failed(result, "rsync failed with exit code 10", "Connection refused",
                  "check that the rsync daemon (or sshd) runs")


def test_post_xfer_exec_snapshots_and_rotates(tmp_path, daemon, backups, client, source):
    """The daemon's post-xfer exec snapshots the module's path into its parent and rotates, logging to a file."""
    parent = backups['snapshots']
    make_snapshots(parent, ['2024-05-01_10-00-00', '2024-05-01_10-30-00'])
    result = client.run('--backup', source, daemon.url('snapshots'))
    assert result.returncode == 0, result
    wait_until_idle(daemon)  # The post-xfer exec command may outlive the client's connection.
    assert read_tree(parent / 'latest') == source.contents
    names = snapshot_names(parent)
    assert len(names) == 2 and names[0] == '2024-05-01_10-00-00', names
    assert read_tree(parent / names[1]) == source.contents
    assert os.stat(parent / names[1] / 'etc' / 'hostname').st_ino == \
        os.stat(parent / 'latest' / 'etc' / 'hostname').st_ino
    log = (tmp_path / 'post-xfer.log').read_text()
    assert "Creating snapshot %s" % (parent / names[1]) in log, log
    assert "Removing %s" % (parent / '2024-05-01_10-30-00') in log, log
    assert "ERROR" not in log, log


def test_post_xfer_exec_after_disk_full(tmp_path, client, source):
    """After a transfer that filled the daemon's disk, post-xfer exec makes no snapshot and logs why."""
    small = tmp_path / 'small'
    small.mkdir()
    log_file = tmp_path / 'post-xfer.log'
    (source.path / 'big.bin').write_bytes(os.urandom(1024 * 1024))
    modules = {'backups': {'path': small / 'latest', 'read only': 'no', 'post-xfer exec': post_xfer_command(log_file)}}
    with SmallDiskRsyncDaemon(tmp_path / 'rsyncd', modules, small_directory=small) as server:
        result = client.run('--backup', source, server.url('backups'))
        assert_failed(result, "rsync failed with exit code", "no snapshot was made")
        wait_until_idle(server)
        assert visible_names(server_view(server, small)) == ['latest']
        log = log_file.read_text()
        assert "Aborting due to error: The rsync daemon's transfer into %s failed with exit code" % (small / 'latest') \
            in log, log
        assert "no snapshot was made and nothing was rotated" in log, log
    assert os.listdir(small) == []


def test_post_xfer_exec_after_aborted_transfer(tmp_path, daemon, backups):
    """When the client dies during the transfer, post-xfer exec makes no snapshot and logs why."""
    source = tmp_path / 'big-source'
    source.mkdir()
    (source / 'big.bin').write_bytes(os.urandom(8 * 1024 * 1024))
    client = subprocess.Popen(['rsync', '--archive', '--bwlimit=1000', '%s/' % source, daemon.url('snapshots')],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.listdir(backups['snapshots'] / 'latest'), message="the transfer to start")
    finally:
        client.kill()
        client.wait()
    wait_until_idle(daemon)
    assert snapshot_names(backups['snapshots']) == []
    log = (tmp_path / 'post-xfer.log').read_text()
    assert "Aborting due to error: The rsync daemon's transfer into %s failed with exit code" % (
        backups['snapshots'] / 'latest') in log, log


@pytest.mark.parametrize('status, succeeds, message', [
    ('0', True, None),
    ('23', True, "The rsync daemon's transfer into {path} ended with exit code 23 (partial transfer due to errors); "
                 "going on with it."),
    ('24', True, "ended with exit code 24"),
    ('12', False, "Aborting due to error: The rsync daemon's transfer into {path} failed with exit code 12 "
                  "(error in the rsync protocol data stream), so no snapshot was made and nothing was rotated"),
    ('-1', False, "failed with exit code -1 (ended abnormally)"),
    ('5', False, "failed with exit code 5"),
    ('garbage', False, "Aborting due to error: $RSYNC_EXIT_STATUS is 'garbage', not a number"),
])
def test_post_xfer_exec_exit_status(tmp_path, client, status, succeeds, message):
    """$RSYNC_EXIT_STATUS decides whether the post-xfer exec command snapshots and rotates."""
    latest = tmp_path / 'module' / 'latest'
    latest.mkdir(parents=True)
    (latest / 'file').write_text('data')
    make_snapshots(latest.parent, ['2024-05-01_10-00-00', '2024-05-01_10-30-00'])
    result = client.run('--snapshot', '--rotate', env={'RSYNC_MODULE_PATH': str(latest), 'RSYNC_EXIT_STATUS': status})
    names = snapshot_names(latest.parent)
    if succeeds:
        assert result.returncode == 0, result
        assert len(names) == 2 and names[0] == '2024-05-01_10-00-00', names
    else:
        assert result.returncode == 1, result
        assert names == ['2024-05-01_10-00-00', '2024-05-01_10-30-00']
    if message:
        assert message.format(path=latest) in result.stderr, result
