"""
Tests for ``-t/--tunnel``: rsync daemon destinations reached through an SSH tunnel.

A real sshd and a real rsync daemon run on 127.0.0.1; the daemon listens on
a free port, which ``--daemon-port`` names. The command runs as a real
process with a test ``~/.ssh/config`` (see :mod:`support.remote`; the sshd
and ``~/.ssh`` fixtures are in ``conftest.py``), and every run checks that
no process (the tunnel's ssh above all) outlives it.
"""

import os
import socket
import subprocess
import threading

import pytest
from executor.ssh.client import SecureTunnel

from rsync_system_backup import RsyncSystemBackup
from rsync_system_backup.exceptions import InvalidOptionError, SSHConnectionError, TunnelError
from rsync_system_backup.connections.tunnel import create_tunnel, open_tunnel, parse_tunnel_spec
from support.cli import assert_failed
from support.processes import descendant_pids
from support.remote import SERVER_ALIAS, wait_until_idle
from support.rsync_daemon import RsyncDaemon, write_secrets_file
from support.servers import free_port
from support.stand_ins import log_arguments, logged_calls, real_program
from support.trees import read_tree

PASSWORD = 's3cret'
"""The daemon password of the user ``alice``."""


@pytest.fixture
def rsync_daemon(tmp_path, ssh_server):
    """The rsync daemon behind the tunnel: on a free port of 127.0.0.1, with an open module and one with a password."""
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


def test_backup_through_tunnel(tmp_path, rsync_daemon, client_home, source):
    """-b -t ALIAS transfers through the tunnel (HOST::MODULE syntax); the tunnel is closed afterwards."""
    result = client_home.run('-v', '--backup', '--tunnel', SERVER_ALIAS, '--daemon-port=%d' % rsync_daemon.port,
                             source, 'localhost::open')
    assert result.returncode == 0, result
    assert read_tree(tmp_path / 'open') == source.contents
    assert "Opening an SSH tunnel to port %d on %s" % (rsync_daemon.port, SERVER_ALIAS) in result.stderr
    assert "Closed the SSH tunnel to %s." % SERVER_ALIAS in result.stderr


def test_tunnel_spec_with_user_and_port(tmp_path, rsync_daemon, client_home, ssh_server, source):
    """-t USER@HOST:PORT: the port after the host is the SSH port and beats the one in ~/.ssh/config."""
    client_home.add_host('wrong-port', free_port(), client_home.key, User='nobody')
    result = client_home.run('-b', '-t', 'root@wrong-port:%d' % ssh_server.port, '--daemon-port', rsync_daemon.port,
                             source, 'rsync://alice@wrong-port/private', env={'RSYNC_PASSWORD': PASSWORD})
    assert result.returncode == 0, result
    assert read_tree(tmp_path / 'private') == source.contents
    assert PASSWORD not in result.output


def test_ssh_refused_fails_fast(tmp_path, rsync_daemon, client_home, source):
    """When ssh can't connect, the run fails at once with ssh's reason (not after a 30 second wait)."""
    result = client_home.run('-b', '-t', '%s:%d' % (SERVER_ALIAS, free_port()), '--daemon-port', rsync_daemon.port,
                             source, 'localhost::open')
    assert_failed(result, "Can't open the SSH tunnel: The SSH server %s refused the connection" % SERVER_ALIAS,
                  "Connection refused")
    assert result.duration < 10, result
    assert os.listdir(tmp_path / 'open') == []


def test_tunnel_authentication_failure(tmp_path, rsync_daemon, client_home, ssh_server, source):
    """A key that the SSH server doesn't accept: a clear message, at once."""
    stranger_key = tmp_path / 'stranger_key'
    subprocess.check_call(['ssh-keygen', '-q', '-N', '', '-t', 'ed25519', '-f', str(stranger_key)])
    client_home.add_host('stranger', ssh_server.port, client_home.install_key(stranger_key, 'stranger_key'))
    result = client_home.run('-b', '-t', 'stranger', '--daemon-port', rsync_daemon.port, source, 'localhost::open')
    assert_failed(result, "Can't open the SSH tunnel: The SSH server stranger refused to log in",
                  "Permission denied")
    assert result.duration < 10, result


def test_no_daemon_behind_tunnel(tmp_path, rsync_daemon, client_home, source):
    """A tunnel to a port where no daemon listens: a clear message naming the port."""
    port = free_port()
    result = client_home.run('-b', '-t', SERVER_ALIAS, '--daemon-port', port, source, 'localhost::open')
    assert_failed(result, "The SSH tunnel to %s works, but no rsync daemon answers on port %d there" % (
        SERVER_ALIAS, port), "use --daemon-port")


def test_tunnel_closed_after_failed_transfer(tmp_path, rsync_daemon, client_home, source):
    """When rsync fails (unknown module), the run fails with rsync's reason and names the daemon; the tunnel closes."""
    result = client_home.run('-v', '-b', '-t', SERVER_ALIAS, '--daemon-port', rsync_daemon.port, source,
                             'localhost::nonexistent')
    assert_failed(result, "@ERROR: Unknown module 'nonexistent': the rsync daemon at port %d behind the SSH tunnel "
                  "to %s has no module 'nonexistent': check the module name in the destination (the sections of the "
                  "daemon's rsyncd.conf are its modules)" % (rsync_daemon.port, SERVER_ALIAS))
    assert "Closed the SSH tunnel" in result.stderr


@pytest.mark.parametrize('arguments, message', [
    (['-b', '-t', SERVER_ALIAS, '{tmp}/backups/latest'],
     "-t/--tunnel reaches an rsync daemon, but {tmp}/backups/latest is not one"),
    (['-b', '-t', SERVER_ALIAS, 'backup-server:{tmp}/backups/latest'], "a HOST:DIRECTORY destination already"),
    (['-s', '-t', SERVER_ALIAS, 'localhost::open'], "Can't run commands on the rsync daemon localhost"),
    (['-b', '-t', SERVER_ALIAS, 'rsync://localhost:8873/open'], "can't name a port"),
    (['-b', '--daemon-port=8873', 'rsync://localhost/open'], "--daemon-port names the daemon's port behind"),
    (['-b', '-t', 'user@host:ssh', 'localhost::open'], "The SSH port 'ssh' of the tunnel 'user@host:ssh' is not"),
    (['-b', '-t', 'host:22:33', 'localhost::open'], "Can't parse the tunnel 'host:22:33'"),
    (['-b', '-t', '-oProxyCommand=true', 'localhost::open'],
     "The tunnel '-oProxyCommand=true' names the host '-oProxyCommand=true', which starts with '-' and would reach "
     "ssh as an option"),
    (['-b', '-t', '-lroot@host', 'localhost::open'], "names the user '-lroot', which starts with '-'"),
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
    for invalid in ('', '@server', 'server:', 'server:0', 'a@b@c', 'server/x', '[::1', '-oProxyCommand=x', '-l@x'):
        with pytest.raises(InvalidOptionError):
            parse_tunnel_spec(invalid)


def test_tunnel_opens_no_port(tmp_path, fake_bin, rsync_daemon, client_home, ssh_server, source):
    """No process of a run through the tunnel listens on a port: rsync reaches the daemon through ssh -W ... -- HOST."""
    calls = tmp_path / 'ssh-calls'
    log_arguments(fake_bin / 'ssh', calls, real_program('ssh'))
    sampler = ListeningPortSampler(ignore=(ssh_server.port, rsync_daemon.port))
    with sampler:
        result = client_home.run('-b', '-t', SERVER_ALIAS, '--daemon-port', rsync_daemon.port, source,
                                 'localhost::open', env={'PATH': '%s:%s' % (fake_bin, os.environ['PATH'])})
    assert result.returncode == 0, result
    assert read_tree(tmp_path / 'open') == source.contents
    assert sampler.samples > 10
    assert sampler.ports == set()
    # The check and rsync's connection.
    commands = logged_calls(calls)
    assert len(commands) == 2, commands
    for arguments in commands:
        assert arguments[-4:] == ['-W', 'localhost:%d' % rsync_daemon.port, '--', SERVER_ALIAS], arguments


@pytest.mark.filterwarnings('ignore::ResourceWarning')  # executor's port allocator leaves a socket open.
def test_squatter_on_the_local_port_gets_nothing(tmp_path, monkeypatch, rsync_daemon, ssh_server, source):
    """A local process that holds the SecureTunnel's local_port and greets like a daemon receives nothing."""
    for name, value in ssh_server.environment().items():
        monkeypatch.setenv(name, value)
    with Squatter() as squatter:
        tunnel = SecureTunnel(ssh_alias=ssh_server.alias, remote_port=rsync_daemon.port, local_port=squatter.port,
                              ignore_known_hosts=True)
        RsyncSystemBackup(source=str(source), destination='localhost::open', tunnel=tunnel, backup_enabled=True,
                          snapshot_enabled=False, rotate_enabled=False, notifications_enabled=False).execute()
    assert squatter.connections == 0
    assert squatter.received == b''
    assert read_tree(tmp_path / 'open') == source.contents


@pytest.mark.filterwarnings('ignore::ResourceWarning')  # executor's port probe leaves a socket open.
def test_api_with_secure_tunnel(tmp_path, monkeypatch, rsync_daemon, ssh_server, source):
    """The API takes an executor SecureTunnel too, and closes it when the backup is done."""
    for name, value in ssh_server.environment().items():
        monkeypatch.setenv(name, value)
    tunnel = SecureTunnel(ssh_alias=ssh_server.alias, remote_port=rsync_daemon.port, ignore_known_hosts=True)
    RsyncSystemBackup(source=str(source), destination='localhost::open', tunnel=tunnel, backup_enabled=True,
                      snapshot_enabled=False, rotate_enabled=False, notifications_enabled=False).execute()
    assert read_tree(tmp_path / 'open') == source.contents
    assert not tunnel.is_running


def test_api_errors_are_project_exceptions(monkeypatch, rsync_daemon, ssh_server):
    """Tunnel failures reach API users as this project's exceptions."""
    for name, value in ssh_server.environment().items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SSHConnectionError, match='refused the connection'):
        with open_tunnel(create_tunnel('%s:%d' % (ssh_server.alias, free_port()), remote_port=rsync_daemon.port)):
            pass
    with pytest.raises(TunnelError, match='no rsync daemon answers on port'):
        with open_tunnel(create_tunnel(ssh_server.alias, remote_port=free_port())):
            pass


class Squatter(object):

    """A local process's socket on a free port of 127.0.0.1 that greets like an rsync daemon and records what comes."""

    def __init__(self):
        """Bind and listen on a free port."""
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind(('127.0.0.1', 0))
        self.socket.listen(5)
        self.port = self.socket.getsockname()[1]
        self.connections = 0
        self.received = b''
        self.thread = threading.Thread(target=self.serve, daemon=True)

    def serve(self):
        """Accept connections, greet and read until the listening socket is closed."""
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.connections += 1
            with connection:
                connection.sendall(b'@RSYNCD: 31.0\n')
                connection.settimeout(2)
                try:
                    self.received += connection.recv(65536)
                except OSError:
                    pass

    def __enter__(self):
        """Start accepting."""
        self.thread.start()
        return self

    def __exit__(self, exc_type=None, exc_value=None, traceback=None):
        """Stop accepting."""
        self.socket.shutdown(socket.SHUT_RDWR)
        self.socket.close()
        self.thread.join(5)


class ListeningPortSampler(object):

    """Records, during a ``with`` block, the TCP ports that this process's descendants listen on."""

    def __init__(self, ignore=()):
        """
        Prepare to sample.

        :param ignore: Ports to leave out (the test servers', an iterable of integers).
        """
        self.ignore = set(ignore)
        self.ports = set()
        self.samples = 0
        self.before = set()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)

    def listening_ports(self):
        """
        Look once.

        :returns: A set of (port, socket inode) tuples: the listening sockets
                  that this process's descendants hold, but the ignored ports.
        """
        inodes = set()
        for pid in descendant_pids(os.getpid()):
            try:
                for fd in os.listdir('/proc/%d/fd' % pid):
                    target = os.readlink('/proc/%d/fd/%s' % (pid, fd))
                    if target.startswith('socket:['):
                        inodes.add(target[8:-1])
            except OSError:
                pass  # The process ended while we were looking.
        return {(port, inode) for port, inode in listening_sockets() if inode in inodes and port not in self.ignore}

    def sample(self):
        """Look every few milliseconds until the block ends."""
        while not self.done.wait(0.005):
            self.ports.update(port for port, inode in self.listening_ports() - self.before)
            self.samples += 1

    def __enter__(self):
        """Start sampling; sockets that listen already (servers of other tests in this process) don't count."""
        self.before = self.listening_ports()
        self.thread.start()
        return self

    def __exit__(self, exc_type=None, exc_value=None, traceback=None):
        """Stop sampling."""
        self.done.set()
        self.thread.join(5)


def listening_sockets():
    """
    List the TCP sockets that listen (IPv4 and IPv6).

    :returns: A list of (port, inode) tuples (an integer and a string).
    """
    found = []
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        with open(table) as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                if fields[3] == '0A':  # TCP_LISTEN
                    found.append((int(fields[1].rpartition(':')[2], 16), fields[9]))
    return found
