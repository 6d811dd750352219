"""Tests of the throw-away servers (:mod:`support.servers`, :mod:`support.rsync_daemon`), :mod:`support.processes`."""

import os
import socket
import subprocess
import sys

import pytest

from support.processes import descendant_pids, process_exists, read_cmdline, wait_for
from support.rsync_daemon import RsyncDaemon, write_secrets_file
from support.servers import SSHServer, ServerError, find_program, free_port
from support.trees import read_tree, write_tree


def make_tree(directory):
    """Create a small tree of files to transfer and return its contents."""
    return write_tree(directory, {'a.txt': 'alpha\n', 'sub/b.txt': 'beta\n', 'sub/deeper/c.bin': 'gamma' * 1000})


def run(command, env=None, **options):
    """Run a command (with a bounded timeout) and capture its output."""
    environment = dict(os.environ, **(env or {}))
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60, **options)


def assert_gone(pids):
    """Assert that none of the given processes is alive."""
    alive = [pid for pid in pids if process_exists(pid)]
    assert not alive, "Processes still alive after stop(): %s" % alive


def test_free_port():
    """free_port() gives a high port that can be bound on 127.0.0.1."""
    port = free_port()
    assert 1024 < port < 65536
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', port))


def test_process_helpers():
    """process_exists() and descendant_pids() follow a small process tree."""
    parent = subprocess.Popen(['sh', '-c', 'sleep 30 & sleep 30 & wait'])
    try:
        wait_for(lambda: len(descendant_pids(parent.pid)) == 2)
        children = descendant_pids(parent.pid)
        assert process_exists(parent.pid)
        assert all(process_exists(pid) for pid in children)
        assert descendant_pids(children[0]) == []
    finally:
        for pid in [parent.pid] + descendant_pids(parent.pid):
            os.kill(pid, 9)
        parent.wait()
    wait_for(lambda: not any(process_exists(pid) for pid in children))
    assert not process_exists(parent.pid)


def test_missing_program_is_reported():
    """A missing server program gives a clear error, not a skip."""
    with pytest.raises(ServerError, match="'no-such-sshd' not found, please install openssh-server"):
        find_program('no-such-sshd', 'openssh-server')


def test_ssh_server(tmp_path):
    """ssh and rsync reach the server through the generated alias; stop() ends it."""
    with SSHServer(tmp_path / 'ssh', alias='test-alias') as server:
        assert process_exists(server.pid)
        env = server.environment()
        assert env['HOME'] == server.home
        result = run(['ssh', 'test-alias', 'test -d /run/sshd && echo $USER'], env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == 'root'
        # The host key went into the temporary known_hosts file.
        with open(server.known_hosts_file) as handle:
            assert '[127.0.0.1]:%d' % server.port in handle.read()
        # rsync uses the same alias (and the ssh wrapper on $PATH).
        contents = make_tree(tmp_path / 'src')
        target = tmp_path / 'remote' / 'dir'
        target.parent.mkdir()
        result = run(['rsync', '-a', str(tmp_path / 'src') + '/', 'test-alias:%s/' % target], env=env)
        assert result.returncode == 0, result.stderr
        assert read_tree(target) == contents
    pid = server.pid
    assert_gone([pid])
    server.stop()  # Idempotent.
    assert "Accepted publickey for root" in server.read_log()


def test_ssh_server_stop_ends_sessions(tmp_path):
    """stop() also ends the per-connection processes of open sessions."""
    server = SSHServer(tmp_path / 'ssh').start()
    client = subprocess.Popen(
        ['ssh', server.alias, 'sleep 60'], env=dict(os.environ, **server.environment()),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: any(read_cmdline(pid) == 'sleep 60' for pid in descendant_pids(server.pid)))
        pids = [server.pid] + descendant_pids(server.pid)
        server.stop()
        assert_gone(pids)
        assert client.wait(timeout=10) == 255
    finally:
        server.stop()
        if client.poll() is None:
            client.kill()
            client.wait()


def test_rsync_daemon(tmp_path):
    """Transfers to an rsync daemon module, with and without authentication."""
    open_dir, private_dir = tmp_path / 'open', tmp_path / 'private'
    open_dir.mkdir()
    private_dir.mkdir()
    marker = tmp_path / 'post-xfer'
    secrets = write_secrets_file(tmp_path / 'rsyncd.secrets', {'alice': 's3cret'})
    assert os.stat(secrets).st_mode & 0o777 == 0o600
    modules = {
        'open': {'path': open_dir, 'read only': 'no'},
        'private': {
            'path': private_dir, 'read only': 'no', 'auth users': 'alice', 'secrets file': secrets,
            'post-xfer exec': 'echo "$RSYNC_MODULE_NAME $RSYNC_EXIT_STATUS" > %s' % marker,
        },
    }
    contents = make_tree(tmp_path / 'src')
    source = str(tmp_path / 'src') + '/'
    with RsyncDaemon(tmp_path / 'rsyncd', modules) as daemon:
        assert process_exists(daemon.pid)
        # Without authentication.
        result = run(['rsync', '-a', source, daemon.url('open', 'backup/')])
        assert result.returncode == 0, result.stderr
        assert read_tree(open_dir / 'backup') == contents
        # The host::module syntax works too.
        result = run(['rsync', '-a', '--port=%d' % daemon.port, source, '127.0.0.1::open/again/'])
        assert result.returncode == 0, result.stderr
        assert read_tree(open_dir / 'again') == contents
        # With authentication: a wrong password fails, the right one works.
        url = daemon.url('private', user='alice')
        result = run(['rsync', '-a', source, url], env={'RSYNC_PASSWORD': 'wrong'})
        assert result.returncode == 5, result.stderr
        assert 'auth failed' in result.stderr
        result = run(['rsync', '-a', source, url], env={'RSYNC_PASSWORD': 's3cret'})
        assert result.returncode == 0, result.stderr
        assert read_tree(private_dir) == contents
        wait_for(lambda: marker.exists() and marker.read_text() == 'private 0\n')
    assert_gone([daemon.pid])
    daemon.stop()  # Idempotent.
    assert 'auth failed on module private' in daemon.read_log()


def test_rsync_daemon_fixed_port(tmp_path):
    """A fixed port is used as given."""
    port = free_port()
    with RsyncDaemon(tmp_path / 'rsyncd', {'m': {'path': tmp_path}}, port=port) as daemon:
        assert daemon.port == port
        result = run(['rsync', '--list-only', 'rsync://127.0.0.1:%d/' % port])
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ['m']
    assert_gone([daemon.pid])


def test_server_that_fails_to_start(tmp_path):
    """A server that cannot start raises ServerError with its log and leaves nothing behind."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        sock.listen()
        daemon = RsyncDaemon(tmp_path / 'rsyncd', {}, port=sock.getsockname()[1])
        with pytest.raises(ServerError, match='(?s)rsync daemon exited with code.*Address already in use'):
            daemon.start()
    assert_gone([daemon.pid])


if __name__ == '__main__':
    sys.exit(pytest.main([__file__, '-q']))
