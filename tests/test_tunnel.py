"""
Tests for ``-t/--tunnel``: rsync daemon destinations reached through an SSH tunnel.

A real sshd and a real rsync daemon run on 127.0.0.1; the daemon listens on
a free port, which ``--daemon-port`` names. The command runs as a real
process with a test ``~/.ssh/config`` (see :mod:`support.remote`; the sshd
and ``~/.ssh`` fixtures are in ``conftest.py``), and every run checks that
no process (the tunnel's ssh above all) outlives it.
"""

import os
import subprocess

import pytest
from executor.ssh.client import SecureTunnel

from support.remote import SERVER_ALIAS, read_tree, wait_until_idle
from rsync_system_backup import RsyncSystemBackup
from rsync_system_backup.exceptions import InvalidOptionError, SSHConnectionError, TunnelError
from rsync_system_backup.connections.tunnel import create_tunnel, open_tunnel, parse_tunnel_spec
from support.servers import RsyncDaemon, descendant_pids, free_port, write_secrets_file
from support.trees import assert_failed

PASSWORD = 's3cret'
"""The daemon password of the user ``alice``."""


@pytest.fixture
def daemon(tmp_path, ssh_server):
    """An rsync daemon on a free port of 127.0.0.1, with an open module and one with a password."""
    for name in ('open', 'private'):
        (tmp_path / name).mkdir()
    secrets = write_secrets_file(tmp_path / 'rsyncd.secrets', {'alice': PASSWORD})
    modules = {
        'open': {'path': tmp_path / 'open', 'read only': 'no'},
        'private': {'path': tmp_path / 'private', 'read only': 'no', 'auth users': 'alice', 'secrets file': secrets},
    }
    with RsyncDaemon(tmp_path / 'rsyncd', modules) as server:
        yield server
        wait_until_idle(server)
    wait_until_idle(ssh_server)


def test_backup_through_tunnel(tmp_path, daemon, client_home, source):
    """-b -t ALIAS transfers through the tunnel (HOST::MODULE syntax); the tunnel is closed afterwards."""
    result = client_home.run('--backup', '--tunnel', SERVER_ALIAS, '--daemon-port=%d' % daemon.port,
                             source, 'localhost::open')
    assert result.returncode == 0, result
    assert read_tree(tmp_path / 'open') == source.contents
    assert "Opening an SSH tunnel to port %d on %s" % (daemon.port, SERVER_ALIAS) in result.stderr
    assert "Closed the SSH tunnel to %s." % SERVER_ALIAS in result.stderr


def test_tunnel_spec_with_user_and_port(tmp_path, daemon, client_home, ssh_server, source):
    """-t USER@HOST:PORT: the port after the host is the SSH port and beats the one in ~/.ssh/config."""
    client_home.add_host('wrong-port', free_port(), client_home.key, User='nobody')
    result = client_home.run('-b', '-t', 'root@wrong-port:%d' % ssh_server.port, '--daemon-port', daemon.port,
                             source, 'rsync://alice@wrong-port/private', env={'RSYNC_PASSWORD': PASSWORD})
    assert result.returncode == 0, result
    assert read_tree(tmp_path / 'private') == source.contents
    assert PASSWORD not in result.output


def test_ssh_refused_fails_fast(tmp_path, daemon, client_home, source):
    """When ssh can't connect, the run fails at once with ssh's reason (not after a 30 second wait)."""
    result = client_home.run('-b', '-t', '%s:%d' % (SERVER_ALIAS, free_port()), '--daemon-port', daemon.port,
                             source, 'localhost::open')
    assert_failed(result, "Can't open the SSH tunnel: The SSH server %s refused the connection" % SERVER_ALIAS,
                  "Connection refused")
    assert result.duration < 10, result
    assert os.listdir(tmp_path / 'open') == []


def test_tunnel_authentication_failure(tmp_path, daemon, client_home, ssh_server, source):
    """A key that the SSH server doesn't accept: a clear message, at once."""
    stranger_key = tmp_path / 'stranger_key'
    subprocess.check_call(['ssh-keygen', '-q', '-N', '', '-t', 'ed25519', '-f', str(stranger_key)])
    client_home.add_host('stranger', ssh_server.port, client_home.install_key(stranger_key, 'stranger_key'))
    result = client_home.run('-b', '-t', 'stranger', '--daemon-port', daemon.port, source, 'localhost::open')
    assert_failed(result, "Can't open the SSH tunnel: The SSH server stranger refused to log in",
                  "Permission denied")
    assert result.duration < 10, result


def test_no_daemon_behind_tunnel(tmp_path, daemon, client_home, source):
    """A tunnel to a port where no daemon listens: a clear message naming the port."""
    port = free_port()
    result = client_home.run('-b', '-t', SERVER_ALIAS, '--daemon-port', port, source, 'localhost::open')
    assert_failed(result, "The SSH tunnel to %s works, but no rsync daemon answers on port %d there" % (
        SERVER_ALIAS, port), "use --daemon-port")
    assert "Closed the SSH tunnel" in result.stderr


def test_tunnel_closed_after_failed_transfer(tmp_path, daemon, client_home, source):
    """When rsync fails (unknown module), the run fails with rsync's reason and the tunnel is closed."""
    result = client_home.run('-b', '-t', SERVER_ALIAS, '--daemon-port', daemon.port, source, 'localhost::nonexistent')
    assert_failed(result, "@ERROR: Unknown module 'nonexistent'")
    assert "Closed the SSH tunnel" in result.stderr


@pytest.mark.parametrize('arguments, message', [
    (['-b', '-t', SERVER_ALIAS, '{tmp}/backups/latest'],
     "-t/--tunnel reaches an rsync daemon, but {tmp}/backups/latest is not one"),
    (['-b', '-t', SERVER_ALIAS, 'backup-server:{tmp}/backups/latest'], "a HOST:DIRECTORY destination already"),
    (['-t', SERVER_ALIAS, 'localhost::open'], "Can't run commands on the rsync daemon localhost"),
    (['-b', '-t', SERVER_ALIAS, 'rsync://localhost:8873/open'], "can't name a port"),
    (['-b', '--daemon-port=8873', 'rsync://localhost/open'], "--daemon-port names the daemon's port behind"),
    (['-b', '-t', 'user@host:ssh', 'localhost::open'], "The SSH port 'ssh' of the tunnel 'user@host:ssh' is not"),
    (['-b', '-t', 'host:22:33', 'localhost::open'], "Can't parse the tunnel 'host:22:33'"),
])
def test_tunnel_configuration_errors(tmp_path, client_home, source, arguments, message):
    """Options that can't work are refused before any connection is made."""
    arguments = [argument.format(tmp=tmp_path) for argument in arguments]
    result = client_home.run(*(arguments[:-1] + [source, arguments[-1]]))
    assert_failed(result, message.format(tmp=tmp_path))
    assert "Opening an SSH tunnel" not in result.stderr
    assert not (tmp_path / 'backups').exists()


@pytest.mark.parametrize('value', ['0', '65536', 'http', ''])
def test_daemon_port_option_values(client_home, source, value):
    """--daemon-port takes port numbers only."""
    result = client_home.run('-b', '-t', SERVER_ALIAS, '--daemon-port=%s' % value, source, 'localhost::open')
    assert result.returncode == 1, result
    assert "--daemon-port must be a port number from 1 to 65535" in result.stderr, result


def test_spec_parsing():
    """-t takes [USER@]HOST[:PORT], with IPv6 addresses in brackets."""
    assert parse_tunnel_spec('server') == (None, 'server', None)
    assert parse_tunnel_spec('backup@server.example.com:2222') == ('backup', 'server.example.com', 2222)
    assert parse_tunnel_spec('[::1]:22') == (None, '::1', 22)
    for invalid in ('', '@server', 'server:', 'server:0', 'a@b@c', 'server/x', '[::1'):
        with pytest.raises(InvalidOptionError):
            parse_tunnel_spec(invalid)


def test_tunnel_listens_on_loopback_only(monkeypatch, daemon, ssh_server):
    """The tunnel's local port is bound to 127.0.0.1 only, and its ssh process ends with the with block."""
    for name, value in ssh_server.environment().items():
        monkeypatch.setenv(name, value)
    with open_tunnel(create_tunnel(ssh_server.alias, remote_port=daemon.port)) as tunnel:
        forward = '127.0.0.1:%d:localhost:%d' % (tunnel.local_port, daemon.port)
        assert forward in tunnel.command_line
        assert listening_addresses(tunnel.local_port) == ['127.0.0.1']
        assert len(tunnel_processes(forward)) == 1
    assert tunnel_processes(forward) == []
    assert listening_addresses(tunnel.local_port) == []


@pytest.mark.filterwarnings('ignore::ResourceWarning')  # executor's port probe leaves a socket open.
def test_api_with_secure_tunnel(tmp_path, monkeypatch, daemon, ssh_server, source):
    """The API takes an executor SecureTunnel too, and closes it when the backup is done."""
    for name, value in ssh_server.environment().items():
        monkeypatch.setenv(name, value)
    tunnel = SecureTunnel(ssh_alias=ssh_server.alias, remote_port=daemon.port, ignore_known_hosts=True)
    RsyncSystemBackup(source=str(source), destination='localhost::open', tunnel=tunnel, backup_enabled=True,
                      snapshot_enabled=False, rotate_enabled=False, notifications_enabled=False).execute()
    assert read_tree(tmp_path / 'open') == source.contents
    assert not tunnel.is_running


def test_api_errors_are_project_exceptions(monkeypatch, daemon, ssh_server):
    """Tunnel failures reach API users as this project's exceptions."""
    for name, value in ssh_server.environment().items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SSHConnectionError, match='refused the connection'):
        with open_tunnel(create_tunnel('%s:%d' % (ssh_server.alias, free_port()), remote_port=daemon.port)):
            pass
    with pytest.raises(TunnelError, match='no rsync daemon answers on port'):
        with open_tunnel(create_tunnel(ssh_server.alias, remote_port=free_port())):
            pass


def tunnel_processes(forward):
    """
    Find this process's descendants that forward a port.

    :param forward: The value of ssh's ``-L`` option (a string).
    :returns: A list of process ids.
    """
    found = []
    for pid in descendant_pids(os.getpid()):
        try:
            with open('/proc/%d/cmdline' % pid) as handle:
                if forward in handle.read().split('\0'):
                    found.append(pid)
        except OSError:
            pass  # The process ended while we were looking.
    return found


def listening_addresses(port):
    """
    Find the addresses that TCP sockets listen on for a port (IPv4 and IPv6).

    :param port: The port number (an integer).
    :returns: A sorted list of addresses (IPv4 dotted quads, IPv6 as hex).
    """
    addresses = []
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        with open(table) as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                address, _, hex_port = fields[1].rpartition(':')
                if int(hex_port, 16) == port and fields[3] == '0A':  # 0A is TCP_LISTEN.
                    if len(address) == 8:
                        address = '.'.join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0))
                    addresses.append(address)
    return sorted(addresses)
