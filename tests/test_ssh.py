"""
Tests for destinations reached over SSH (``HOST:DIRECTORY``), against a real sshd on 127.0.0.1.

The command runs as a real process that reads a test ``~/.ssh/config``
(see :mod:`support.remote`; the sshd and ``~/.ssh`` fixtures are in
``conftest.py``); every run also checks that no process outlives it, and
every test that its SSH sessions have ended.
"""

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from support.remote import (
    HOME_DIRECTORY,
    KNOWN_HOSTS_NAME,
    SERVER_ALIAS,
    ClientHome,
    PrivateHomeSSHServer,
    make_snapshots,
    make_source,
    read_tree,
    server_view,
    snapshot_names,
    visible_names,
    wait_until_idle,
)
from rsync_system_backup.exceptions import RemoteCommandError, SSHConnectionError
from rsync_system_backup.connections.ssh import ConfiguredRemoteContext, create_remote_context, translate_remote_errors
from support.servers import free_port
from support.trees import assert_failed

AWKWARD_NAME = 'it\'s "a" $HOME $(touch pwned) `touch pwned`; touch pwned\nline'
"""A directory name that a shell would mangle (and that would create ``pwned`` if a shell ran it)."""


@contextlib.contextmanager
def short_temporary_directory():
    """A temporary directory with a name short enough for SSH control sockets (the test's own are too long)."""
    directory = tempfile.mkdtemp(prefix='rsb-test-', dir='/tmp')
    try:
        yield directory
    finally:
        shutil.rmtree(directory)


def test_backup_snapshot_and_rotation(tmp_path, client_home, ssh_server):
    """All three steps work over SSH, with the host alias, port, user and key from ~/.ssh/config."""
    source = tmp_path / 'source'
    contents = make_source(source)
    backups = tmp_path / 'backups'
    # Two snapshots in one month (rotation keeps the oldest), one in the format of version 1.1.
    make_snapshots(backups, ['2024-05-01_10-00-00', '2024-05-01_10-30-00', '2024-04-01 08:00:00'])
    (backups / 'unrelated').mkdir()
    logins_before = ssh_server.read_log().count('Accepted publickey')
    with short_temporary_directory() as temporary:
        result = client_home.run(source, '%s:%s' % (SERVER_ALIAS, backups / 'latest'), env={'TMPDIR': temporary})
        assert os.listdir(temporary) == []  # The shared connection's control socket is gone.
    assert result.returncode == 0, result
    # One login checks the connection; one more carries every command and the transfer.
    assert ssh_server.read_log().count('Accepted publickey') - logins_before == 2
    assert read_tree(backups / 'latest') == contents
    new = sorted(set(snapshot_names(backups)) - {'2024-05-01_10-00-00', '2024-04-01 08:00:00'})
    assert len(new) == 1 and new[0].startswith('20') and new[0] > '2025', snapshot_names(backups)
    assert read_tree(backups / new[0]) == contents
    assert os.stat(backups / new[0] / 'var' / 'data.bin').st_ino == \
        os.stat(backups / 'latest' / 'var' / 'data.bin').st_ino
    assert visible_names(backups) == sorted(['2024-04-01 08:00:00', '2024-05-01_10-00-00', new[0],
                                             'latest', 'unrelated'])
    # Host keys went where ~/.ssh/config says, not where executor would put them.
    host_key = Path(ssh_server.host_key_file + '.pub').read_text().split()[1]
    assert host_key in client_home.known_hosts_file.read_text()
    assert sorted(os.listdir(client_home.ssh_directory)) == sorted(['config', 'id_ed25519', KNOWN_HOSTS_NAME])


def test_user_in_destination_and_missing_directories(tmp_path, client_home):
    """USER@HOST:DIRECTORY works and missing parent directories are created on the remote side."""
    source = tmp_path / 'source'
    contents = make_source(source)
    latest = tmp_path / 'new' / 'deeper' / 'latest'
    result = client_home.run('--backup', '--snapshot', source, 'root@%s:%s' % (SERVER_ALIAS, latest))
    assert result.returncode == 0, result
    assert read_tree(latest) == contents
    assert len(snapshot_names(latest.parent)) == 1


def test_awkward_directory_names(tmp_path, client_home, ssh_server):
    """Quotes, $, ;, backquotes and a newline in the destination reach the remote side unchanged."""
    source = tmp_path / 'source'
    contents = make_source(source)
    parent = tmp_path / AWKWARD_NAME
    result = client_home.run(source, '%s:%s/latest' % (SERVER_ALIAS, parent))
    assert result.returncode == 0, result
    assert visible_names(tmp_path) == sorted(['client-home', 'source', AWKWARD_NAME])
    assert read_tree(parent / 'latest') == contents
    [snapshot] = snapshot_names(parent)
    assert read_tree(parent / snapshot) == contents
    # No shell ran the name: nothing was created in the remote home directory (the working directory).
    assert os.listdir(server_view(ssh_server, HOME_DIRECTORY)) == []


def test_dry_run_changes_nothing(tmp_path, client_home):
    """A dry run over SSH creates nothing on the remote side (and a long $TMPDIR doesn't stop the shared connection)."""
    source = tmp_path / 'source'
    make_source(source)
    long_directory = tmp_path / ('long-' * 20)
    long_directory.mkdir()
    result = client_home.run('--dry-run', source, '%s:%s' % (SERVER_ALIAS, tmp_path / 'backups' / 'latest'),
                             env={'TMPDIR': str(long_directory)})
    assert result.returncode == 0, result
    assert not (tmp_path / 'backups').exists()
    assert os.listdir(long_directory) == []


def test_unknown_host_key(tmp_path, client_home, ssh_server):
    """StrictHostKeyChecking from ~/.ssh/config applies (executor alone would accept the unknown key)."""
    client_home.add_host('strict-server', ssh_server.port, client_home.key, StrictHostKeyChecking='yes')
    source = tmp_path / 'source'
    make_source(source)
    result = client_home.run(source, 'strict-server:%s' % (tmp_path / 'backups' / 'latest'))
    assert_failed(result, "The host key of the SSH server strict-server is unknown or has changed",
                  "Run 'ssh strict-server' once")
    assert not (tmp_path / 'backups').exists()


def test_connection_refused(tmp_path, client_home):
    """A port where no sshd listens gives a clear message and no changes."""
    client_home.add_host('refusing-server', free_port(), client_home.key)
    source = tmp_path / 'source'
    make_source(source)
    result = client_home.run(source, 'refusing-server:%s' % (tmp_path / 'backups' / 'latest'))
    assert_failed(result, "The SSH server refusing-server refused the connection", "Connection refused",
                  "Port in ~/.ssh/config")
    assert result.duration < 10, result
    assert not (tmp_path / 'backups').exists()


def test_authentication_failure(tmp_path, client_home, ssh_server):
    """A key that the server doesn't accept gives a clear message and no changes."""
    stranger_key = tmp_path / 'stranger_key'
    subprocess.check_call(['ssh-keygen', '-q', '-N', '', '-t', 'ed25519', '-f', str(stranger_key)])
    client_home.add_host('stranger', ssh_server.port, client_home.install_key(stranger_key, 'stranger_key'))
    source = tmp_path / 'source'
    make_source(source)
    result = client_home.run(source, 'stranger:%s' % (tmp_path / 'backups' / 'latest'))
    assert_failed(result, "The SSH server stranger refused to log in", "Permission denied", "IdentityFile")
    assert not (tmp_path / 'backups').exists()


@pytest.mark.parametrize('hostname, message', [
    ('127.0.0.1', "Can't reach the SSH server lost-server (ssh: connect to host 127.0.0.1 port"),
    ('backup.invalid', "Can't find the SSH server lost-server: its name doesn't resolve"),
])
def test_unreachable_host(tmp_path, client_home, hostname, message):
    """Without a network the host is unreachable (or its name doesn't resolve): a clear message, no changes."""
    client_home.add_host('lost-server', 22, client_home.key, hostname=hostname)
    source = tmp_path / 'source'
    make_source(source)
    result = client_home.run(source, 'lost-server:%s' % (tmp_path / 'backups' / 'latest'), network=False)
    assert_failed(result, message)
    assert not (tmp_path / 'backups').exists()


def test_remote_disk_full(tmp_path):
    """A full filesystem on the remote side fails the backup with a clear message and no snapshot."""
    small = tmp_path / 'small'
    small.mkdir()
    with PrivateHomeSSHServer(tmp_path / 'sshd', small_directory=small, small_size='256k') as server:
        home = ClientHome(tmp_path / 'client-home')
        home.add_host(SERVER_ALIAS, server.port, home.install_key(server.identity_file))
        source = tmp_path / 'source'
        make_source(source)
        (source / 'big.bin').write_bytes(os.urandom(1024 * 1024))
        with short_temporary_directory() as temporary:
            result = home.run(source, '%s:%s' % (SERVER_ALIAS, small / 'latest'), env={'TMPDIR': temporary})
            assert os.listdir(temporary) == []
        # rsync itself sometimes loses the receiver's "No space left on device" message, so the
        # explanation may come from the exit code alone; it mentions the full filesystem either way.
        assert_failed(result, "rsync failed with exit code 11", "filesystem", "full", "no snapshot was made")
        assert snapshot_names(server_view(server, small)) == []
        wait_until_idle(server)
    assert os.listdir(small) == []


def test_remote_errors_become_project_exceptions(monkeypatch, ssh_server):
    """executor's exceptions for a broken connection or a failing remote command are translated."""
    for name, value in ssh_server.environment().items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SSHConnectionError, match="The SSH connection to 127.0.0.1 failed while running 'true'"):
        with translate_remote_errors():
            ConfiguredRemoteContext(ssh_alias='127.0.0.1', port=free_port(), tty=False).execute('true', shell=False)
    with pytest.raises(RemoteCommandError, match="'false' failed on %s with exit code 1" % ssh_server.alias):
        with translate_remote_errors():
            create_remote_context(ssh_server.alias).execute('false', shell=False)
