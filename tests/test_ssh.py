"""
Tests for destinations reached over SSH (``HOST:DIRECTORY``; :mod:`rsync_system_backup.connections.ssh`).

Most run against a real sshd on 127.0.0.1: the command runs as a real
process that reads a test ``~/.ssh/config`` (see :mod:`support.remote`; the
sshd and ``~/.ssh`` fixtures are in ``conftest.py``); every run also checks
that no process outlives it, and every test that its SSH sessions have
ended. The last ones check ssh's messages and command lines without a server.
"""

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
from executor import ExternalCommand

from rsync_system_backup.connections import shared_connection
from rsync_system_backup.exceptions import ProgramNotFoundError, RemoteCommandError, SSHConnectionError
from rsync_system_backup.connections.ssh import (
    ConfiguredRemoteContext,
    create_remote_context,
    explain_ssh_failure,
    strip_host_key_options,
    translate_remote_errors,
)
from rsync_system_backup.connections.tunnel import create_tunnel
from rsync_system_backup.backup_set.lock import LOCK_FILE_NAME
from support.cli import assert_failed, command_line
from support.processes import descendant_pids, lock_is_free, process_exists, read_cmdline, wait_for
from support.remote import (
    HOME_DIRECTORY,
    KNOWN_HOSTS_NAME,
    REPOSITORY,
    SERVER_ALIAS,
    ClientHome,
    PrivateHomeSSHServer,
    StandInPathSSHServer,
    server_view,
    wait_until_idle,
)
from support.servers import free_port
from support.stand_ins import log_arguments, logged_calls, real_program
from support.sudo_server import PLAIN_USER, SUDO_USER, SudoSSHServer
from support.trees import list_names, make_snapshots, make_source, read_tree, snapshot_names

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
    # One login carries the checks, every command, the lock's holder and the transfer.
    assert ssh_server.read_log().count('Accepted publickey') - logins_before == 1
    assert read_tree(backups / 'latest') == contents
    new = sorted(set(snapshot_names(backups, leftovers=True)) - {'2024-05-01_10-00-00', '2024-04-01 08:00:00'})
    assert len(new) == 1 and new[0].startswith('20') and new[0] > '2025', snapshot_names(backups, leftovers=True)
    assert read_tree(backups / new[0]) == contents
    assert os.stat(backups / new[0] / 'var' / 'data.bin').st_ino == \
        os.stat(backups / 'latest' / 'var' / 'data.bin').st_ino
    assert list_names(backups) == sorted(['2024-04-01 08:00:00', '2024-05-01_10-00-00', new[0],
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
    assert len(snapshot_names(latest.parent, leftovers=True)) == 1


def test_awkward_directory_names(tmp_path, client_home, ssh_server):
    """Quotes, $, ;, backquotes and a newline in the destination reach the remote side unchanged."""
    source = tmp_path / 'source'
    contents = make_source(source)
    parent = tmp_path / AWKWARD_NAME
    result = client_home.run(source, '%s:%s/latest' % (SERVER_ALIAS, parent))
    assert result.returncode == 0, result
    assert list_names(tmp_path) == sorted(['client-home', 'source', AWKWARD_NAME])
    assert read_tree(parent / 'latest') == contents
    [snapshot] = snapshot_names(parent, leftovers=True)
    assert read_tree(parent / snapshot) == contents
    # No shell ran the name: nothing was created in the remote home directory (the working directory).
    assert os.listdir(server_view(ssh_server, HOME_DIRECTORY)) == []


@pytest.mark.parametrize('directory', ['~/dir/latest', 'dir/latest'])
def test_home_directory(client_home, ssh_server, source, directory):
    """
    HOST:~/dir/latest puts the backup where HOST:dir/latest does, in the SSH user's home directory (issue 22).

    No shell runs on the server, so a ``~`` would otherwise become a
    directory of that name in the home directory.
    """
    home = server_view(ssh_server, HOME_DIRECTORY)
    try:
        result = client_home.run('--backup', '--snapshot', source, '%s:%s' % (SERVER_ALIAS, directory))
        assert result.returncode == 0, result
        assert "Backup to %s:dir/latest done" % SERVER_ALIAS in result.stderr, result
        assert os.listdir(home) == ['dir']
        assert read_tree(os.path.join(home, 'dir', 'latest')) == source.contents
        [snapshot] = snapshot_names(os.path.join(home, 'dir'))
        assert read_tree(os.path.join(home, 'dir', snapshot)) == source.contents
    finally:
        for name in os.listdir(home):
            shutil.rmtree(os.path.join(home, name))


@pytest.mark.parametrize('directory, message', [
    ('~backup/latest', "Aborting due to error: The destination '{host}:~backup/latest' starts with ~backup, the home "
                       "directory of backup on {host}, which only a shell there could find: give the directory's "
                       "absolute path instead (ssh {host} 'echo ~backup' shows it)."),
    ('~', "Aborting due to error: The destination '{host}:~' is the SSH user's home directory on {host} itself, "
          "which the backup would overwrite: give a directory inside it, for example {host}:~/backups/latest."),
    ('~/', "is the SSH user's home directory on {host} itself"),
])
def test_home_directory_refused(client_home, ssh_server, source, directory, message):
    """~USER (which only a shell on the server can find) and the home directory itself are refused; nothing is made."""
    logins_before = ssh_server.read_log().count('Accepted publickey')
    result = client_home.run(source, '%s:%s' % (SERVER_ALIAS, directory))
    assert_failed(result, message.format(host=SERVER_ALIAS))
    assert ssh_server.read_log().count('Accepted publickey') == logins_before
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


def known_hosts_line(ssh_server, public_key_file):
    """The line of a known_hosts file that records `public_key_file` for `ssh_server` (as ssh names it)."""
    key_type, key = Path(public_key_file).read_text().split()[:2]
    return '[127.0.0.1]:%d %s %s\n' % (ssh_server.port, key_type, key)


def test_unknown_host_key(tmp_path, client_home, ssh_server):
    """
    StrictHostKeyChecking from ~/.ssh/config applies (executor alone would accept the unknown key).

    The message tells how to record the key (with ssh -o StrictHostKeyChecking=ask, since 'ssh HOST' refuses
    it under 'yes'); once it is recorded, the backup runs.
    """
    client_home.add_host('strict-server', ssh_server.port, client_home.key, StrictHostKeyChecking='yes')
    source = tmp_path / 'source'
    make_source(source)
    result = client_home.run(source, 'strict-server:%s' % (tmp_path / 'backups' / 'latest'))
    assert_failed(result, "The host key of the SSH server strict-server is unknown (No ED25519 host key is known",
                  "record it once: 'ssh -o StrictHostKeyChecking=ask strict-server true' shows its fingerprint")
    assert not (tmp_path / 'backups').exists()
    assert not client_home.known_hosts_file.exists()
    client_home.known_hosts_file.write_text(known_hosts_line(ssh_server, ssh_server.host_key_file + '.pub'))
    result = client_home.run(source, 'strict-server:%s' % (tmp_path / 'backups' / 'latest'))
    assert result.returncode == 0, result


@pytest.mark.parametrize('checking', ['yes', 'accept-new'])
def test_changed_host_key(tmp_path, client_home, ssh_server, checking):
    """A host key other than the recorded one is refused, with a message that says it changed, not unknown."""
    client_home.add_host('moved-server', ssh_server.port, client_home.key, StrictHostKeyChecking=checking)
    recorded = known_hosts_line(ssh_server, ssh_server.identity_file + '.pub')
    client_home.known_hosts_file.write_text(recorded)
    source = tmp_path / 'source'
    make_source(source)
    result = client_home.run(source, 'moved-server:%s' % (tmp_path / 'backups' / 'latest'))
    assert_failed(result, "The host key of the SSH server moved-server has changed (Host key for [127.0.0.1]:%d "
                  "has changed and you have requested strict checking): someone may be intercepting" % ssh_server.port,
                  "remove the old key with the ssh-keygen -R command that 'ssh moved-server' prints")
    assert not (tmp_path / 'backups').exists()
    assert client_home.known_hosts_file.read_text() == recorded


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
        assert snapshot_names(server_view(server, small), leftovers=True) == []
        wait_until_idle(server)
    assert os.listdir(small) == []


def test_failing_remote_shell(tmp_path, source):
    """
    rsync's exit code 255 over SSH is explained as the remote shell's failure, as it is (rsync passes ssh's on).

    The server's rsync stand-in ends the transfer with 255, as ssh does when
    the connection breaks; its other calls (the check of rsync's version)
    run the real rsync. rsync takes ssh's exit code only when ssh has ended
    by the time it sees the connection close (it doesn't wait for it), so
    under load it may say 12 (the stream broke) instead: each code gets its
    own explanation, and the 255 one names the SSH connection.
    """
    stand_in = 'case " $* " in *" --server "*) exit 255;; esac\nexec %s "$@"\n' % real_program('rsync')
    with StandInPathSSHServer(tmp_path / 'sshd', {'rsync': stand_in}) as server:
        home = ClientHome(tmp_path / 'client-home')
        home.add_host(SERVER_ALIAS, server.port, home.install_key(server.identity_file))
        result = home.run('--backup', source, '%s:%s' % (SERVER_ALIAS, tmp_path / 'backups' / 'latest'))
        wait_until_idle(server)
    if 'exit code 12' in result.stderr:
        assert_failed(result, "rsync failed with exit code 12 (error in the rsync protocol data stream)",
                      "the connection broke or the remote rsync stopped", "no snapshot was made")
    else:
        assert_failed(result, "rsync failed with exit code 255 (the remote shell (ssh) failed)",
                      "the SSH connection to %s failed; try 'ssh %s' to see why; no snapshot was made" % (
                          SERVER_ALIAS, SERVER_ALIAS))
    assert os.listdir(tmp_path / 'backups' / 'latest') == []


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
    with pytest.raises(RemoteCommandError) as raised:
        with translate_remote_errors():
            create_remote_context(ssh_server.alias).execute('sh', '-c', 'echo internal-code >&2; exit 3', 'probe',
                                                            'an argument', shell=False)
    assert str(raised.value) == "'sh -c … probe 'an argument'' failed on %s with exit code 3 (see its message above)." \
        % ssh_server.alias
    with pytest.raises(ProgramNotFoundError) as raised:
        with translate_remote_errors():
            create_remote_context(ssh_server.alias).execute('rsb-no-such-program', shell=False)
    assert str(raised.value) == ("rsb-no-such-program not found on %s (looked in the PATH of the login and "
                                 "/usr/local/sbin:/usr/sbin:/sbin there): install it there." % ssh_server.alias)


@pytest.mark.parametrize('stderr, expected', [
    ('ssh: Could not resolve hostname nowhere: Name or service not known\n',
     "Can't find the SSH server srv: its name doesn't resolve (ssh: Could not resolve hostname nowhere"),
    ('ssh: connect to host 127.0.0.1 port 2: Connection refused\n', "The SSH server srv refused the connection"),
    ('ssh: connect to host 10.1.1.1 port 22: Connection timed out\n', "Can't reach the SSH server srv"),
    ('No ED25519 host key is known for srv and you have requested strict checking.\n'
     'Host key verification failed.\n', "The host key of the SSH server srv is unknown (No ED25519 host key"),
    ('@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n'
     'Host key for [srv]:2222 has changed and you have requested strict checking.\n'
     'Host key verification failed.\n',
     "The host key of the SSH server srv has changed (Host key for [srv]:2222 has changed and you"),
    ('root@127.0.0.1: Permission denied (publickey).\n', "The SSH server srv refused to log in"),
    ('kex_exchange_identification: Connection closed by remote host\n',
     "The SSH connection to srv failed (kex_exchange_identification: Connection closed by remote host)"),
    ('', "The SSH connection to srv failed (no error message)"),
])
def test_ssh_failures_are_explained(stderr, expected):
    """ssh's error messages become one line that names the problem."""
    message = explain_ssh_failure('srv', stderr)
    assert message.startswith(expected), message
    assert '\n' not in message


def test_host_key_options_are_stripped():
    """executor's host key options go; other options and the remote command stay."""
    command = ['ssh', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o',
               'UserKnownHostsFile=/a /b', 'host', "'-o' 'StrictHostKeyChecking=no'"]
    assert strip_host_key_options(command) == ['ssh', '-o', 'BatchMode=yes', 'host',
                                               "'-o' 'StrictHostKeyChecking=no'"]
    remote = ConfiguredRemoteContext(ssh_alias='host', ssh_user='root', tty=False)
    line = remote.prepare('true', shell=False).command_line
    assert not any(argument.startswith(('StrictHostKeyChecking', 'UserKnownHostsFile')) for argument in line)
    tunnel = create_tunnel('host', remote_port=873)
    assert not any(argument.startswith(('StrictHostKeyChecking', 'UserKnownHostsFile'))
                   for argument in tunnel.command_line)


def test_shared_connection_options():
    """While a control socket is set, commands and rsync use it; the path is quoted for rsync's --rsh."""
    remote = ConfiguredRemoteContext(ssh_alias='host', ssh_user='root', tty=False)
    assert shlex.split(remote.rsync_shell) == ['ssh', '-l', 'root', '--']
    assert remote.prepare('true', shell=False).command_line[0:2] == ['ssh', '-l']
    remote.control_path = "/tmp/it's here/control"
    assert shlex.split(remote.rsync_shell) == ['ssh', '-o', 'ControlMaster=no', '-o',
                                               "ControlPath=/tmp/it's here/control", '-l', 'root', '--']
    assert remote.prepare('true', shell=False).command_line[:5] == [
        'ssh', '-o', 'ControlMaster=no', '-o', "ControlPath=/tmp/it's here/control"]
    del remote.control_path
    assert shlex.split(remote.rsync_shell) == ['ssh', '-l', 'root', '--']


def test_ssh_options_end_before_the_host(tmp_path, fake_bin, client_home, source):
    """Every ssh command of a run ends its options with -- before the host; a host that starts with - is refused."""
    calls = tmp_path / 'ssh-calls'
    log_arguments(fake_bin / 'ssh', calls, real_program('ssh'))
    environment = {'PATH': '%s:%s' % (fake_bin, os.environ['PATH'])}
    result = client_home.run(source, '%s:%s' % (SERVER_ALIAS, tmp_path / 'backups' / 'latest'), env=environment)
    assert result.returncode == 0, result
    commands = logged_calls(calls)
    # ssh -G, the check, the shared connection, the commands through it, rsync's transfer, the end of the connection.
    assert len(commands) > 5, commands
    for arguments in commands:
        assert arguments[arguments.index('--') + 1] == SERVER_ALIAS, arguments
    assert any('--server' in arguments for arguments in commands), commands
    for destination in ('-oProxyCommand=touch PWNED:backups/latest', '-oProxyCommand=touch PWNED@localhost:/b'):
        result = client_home.run('--', source, destination, env=environment)
        assert_failed(result, "which starts with '-' and would reach ssh as an option")
    result = client_home.run('-b', '-t', '-oProxyCommand=true', source, 'localhost::module', env=environment)
    assert_failed(result, "The tunnel '-oProxyCommand=true' names the host '-oProxyCommand=true'")
    assert len(logged_calls(calls)) == len(commands)
    assert not os.path.exists(os.path.join(REPOSITORY, 'PWNED'))


def test_non_root_login_with_sudo(tmp_path):
    """A login that isn't root runs the commands and rsync through sudo: owners are kept; without sudo, one line."""
    with SudoSSHServer(tmp_path / 'sshd') as server:
        home = ClientHome(tmp_path / 'client-home')
        key = home.install_key(server.identity_file)
        home.add_host(SERVER_ALIAS, server.port, key, User=SUDO_USER)
        home.add_host('plain', server.port, key, User=PLAIN_USER)
        source = tmp_path / 'source'
        contents = make_source(source)
        os.chown(str(source / 'etc' / 'hostname'), 1234, 5678)
        backups = tmp_path / 'backups'
        for _ in range(2):
            result = home.run(source, '%s:%s' % (SERVER_ALIAS, backups / 'latest'))
            assert result.returncode == 0, result
            assert read_tree(backups / 'latest') == contents
            copy = os.stat(str(backups / 'latest' / 'etc' / 'hostname'))
            assert (copy.st_uid, copy.st_gid) == (1234, 5678)
        assert len(snapshot_names(backups)) == 2
        assert os.stat(str(backups)).st_uid == 0
        result = home.run(source, 'plain:%s' % (tmp_path / 'other' / 'latest'))
        assert_failed(result, "The SSH user %s can't become root on plain with sudo without a password" % PLAIN_USER,
                      "add the line '%s ALL=(root) NOPASSWD: ALL'" % PLAIN_USER)
        assert not (tmp_path / 'other').exists()
        # The actions check it too, before they look at anything.
        listing = home.run('--list', '%s:%s' % (SERVER_ALIAS, backups / 'latest'))
        assert listing.returncode == 0 and snapshot_names(backups)[0] in listing.stdout, listing
        for action in ('--list', '--keep=before-upgrade:%s' % snapshot_names(backups)[0]):
            result = home.run(action, 'plain:%s' % (backups / 'latest'))
            assert_failed(result, "The SSH user %s can't become root on plain with sudo without a password"
                          % PLAIN_USER)
        assert not (backups / '.rsync-system-backup.kept').exists()
        wait_until_idle(server)


def test_interrupted_run_cleans_up_through_the_shared_connection(tmp_path):
    """
    SIGTERM while a snapshot is flushed: the cleanups remove it and release the lock, over the one login.

    The shared connection and the lock's holder outlive the signal, so the
    cleanup's commands need no new login, and nothing is left running on
    either side afterwards.
    """
    backups = tmp_path / 'backups'
    contents = make_source(backups / 'latest')
    gate = tmp_path / 'flushing'
    # A sync that says when it runs and waits until the test lets it go on.
    slow_sync = '#!/bin/sh\n: > %s\nwhile [ -e %s ]; do sleep 0.05; done\nexec %s "$@"\n' % (
        shlex.quote(str(gate)), shlex.quote(str(gate)), shutil.which('sync'))
    program = ' '.join(command_line('--disable-notifications'))

    def interrupt():
        wait_for(gate.exists, message="the snapshot to be flushed")
        for pid in descendant_pids(os.getpid()):
            if read_cmdline(pid).startswith(program):
                os.kill(pid, signal.SIGTERM)

    with StandInPathSSHServer(tmp_path / 'sshd', {'sync': slow_sync}) as server:
        home = ClientHome(tmp_path / 'client-home')
        home.add_host(SERVER_ALIAS, server.port, home.install_key(server.identity_file))
        logins_before = server.read_log().count('Accepted publickey')
        thread = threading.Thread(target=interrupt, daemon=True)
        thread.start()
        try:
            result = home.run('--snapshot', '%s:%s' % (SERVER_ALIAS, backups / 'latest'))
        finally:
            thread.join(timeout=30)
            if gate.exists():
                gate.unlink()
        wait_until_idle(server)
        logins = server.read_log().count('Accepted publickey') - logins_before
    assert result.returncode == 143, result
    assert 'interrupted by SIGTERM' in result.stderr, result
    assert snapshot_names(backups, leftovers=True) == []
    assert read_tree(backups / 'latest') == contents
    assert lock_is_free(backups / LOCK_FILE_NAME)
    assert (backups / LOCK_FILE_NAME).read_text() == ''
    assert logins == 1


def test_killed_run_leaves_no_connection_behind(tmp_path):
    """
    SIGKILL (no cleanup can run) while a snapshot is flushed: the shared connection ends all the same.

    The master connection's own session reads what the killed process held
    open, so it ends with it, once the command in flight is done: the
    process guard of :meth:`.ClientHome.run()` finds nothing left running
    on this side, the server has no session left, and the lock is free.
    """
    backups = tmp_path / 'backups'
    make_source(backups / 'latest')
    gate = tmp_path / 'flushing'
    slow_sync = '#!/bin/sh\n: > %s\nwhile [ -e %s ]; do sleep 0.05; done\nexec %s "$@"\n' % (
        shlex.quote(str(gate)), shlex.quote(str(gate)), shutil.which('sync'))
    program = ' '.join(command_line('--disable-notifications'))
    masters = []

    def kill():
        wait_for(gate.exists, message="the snapshot to be flushed")
        for pid in descendant_pids(os.getpid()):
            if read_cmdline(pid).startswith(program):
                masters.extend(child for child in descendant_pids(pid) if read_cmdline(child).startswith('ssh -M'))
                os.kill(pid, signal.SIGKILL)
        gate.unlink()

    with StandInPathSSHServer(tmp_path / 'sshd', {'sync': slow_sync}) as server:
        home = ClientHome(tmp_path / 'client-home')
        home.add_host(SERVER_ALIAS, server.port, home.install_key(server.identity_file))
        thread = threading.Thread(target=kill, daemon=True)
        thread.start()
        result = home.run('--snapshot', '%s:%s' % (SERVER_ALIAS, backups / 'latest'))
        thread.join(timeout=30)
        # The process guard exits with the killed command's status.
        assert result.returncode == 256 - signal.SIGKILL, result
        assert len(masters) == 1
        assert not process_exists(masters[0])
        wait_until_idle(server)
    assert lock_is_free(backups / LOCK_FILE_NAME)


def test_connection_session_output_is_discarded(tmp_path, source):
    """What the shared connection's own session writes (``cat`` here says something first) never reaches stdout."""
    chatty_cat = '[ $# -gt 0 ] || echo "hello from the session"\nexec %s "$@"\n' % real_program('cat')
    with StandInPathSSHServer(tmp_path / 'sshd', {'cat': chatty_cat}) as server:
        home = ClientHome(tmp_path / 'client-home')
        home.add_host(SERVER_ALIAS, server.port, home.install_key(server.identity_file))
        location = '%s:%s' % (SERVER_ALIAS, tmp_path / 'backups' / 'latest')
        assert home.run(source, location).returncode == 0
        listing = home.run('--list', location)
        wait_until_idle(server)
    assert listing.returncode == 0, listing
    assert 'hello' not in listing.stdout + listing.stderr
    assert len(snapshot_names(tmp_path / 'backups')) == 1
    assert snapshot_names(tmp_path / 'backups')[0] in listing.stdout


def test_master_that_doesnt_end_is_terminated(monkeypatch):
    """
    A master connection that doesn't end when its input closes (a session still runs through it) is terminated.

    A plain ``sleep`` that ignores its input stands in for such a master.
    """
    monkeypatch.setattr(shared_connection, 'STOP_TIMEOUT', 0.2)
    master = ExternalCommand('sleep', '60', asynchronous=True, input=True, shell=False, check=False)
    master.start()
    started = time.monotonic()
    shared_connection.stop_master_connection(ConfiguredRemoteContext(ssh_alias='host'), master)
    assert time.monotonic() - started < 5
    assert not process_exists(master.pid)
    assert master.returncode == -signal.SIGTERM
