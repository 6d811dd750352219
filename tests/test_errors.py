"""Tests for the pieces behind the remote destinations' messages and SSH command lines (no servers needed)."""

import shlex
import subprocess
import sys

import pytest

from rsync_system_backup.connections.ssh import ConfiguredRemoteContext, explain_ssh_failure, strip_host_key_options
from rsync_system_backup.transfer.errors import ErrorOutputRecorder, describe_exit_code, explain_rsync_failure
from rsync_system_backup.connections.tunnel import create_tunnel


@pytest.mark.parametrize('stderr, expected', [
    ('ssh: Could not resolve hostname nowhere: Name or service not known\n',
     "Can't find the SSH server srv: its name doesn't resolve (ssh: Could not resolve hostname nowhere"),
    ('ssh: connect to host 127.0.0.1 port 2: Connection refused\n', "The SSH server srv refused the connection"),
    ('ssh: connect to host 10.1.1.1 port 22: Connection timed out\n', "Can't reach the SSH server srv"),
    ('No ED25519 host key is known for srv and you have requested strict checking.\n'
     'Host key verification failed.\n', "The host key of the SSH server srv is unknown or has changed"),
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


@pytest.mark.parametrize('returncode, lines, expected', [
    (5, ['@ERROR: auth failed on module m', 'rsync error: error starting client-server protocol (code 5)'],
     "exit code 5 (error starting the client-server protocol): @ERROR: auth failed on module m: check the user"),
    (11, [], "exit code 11 (error in file I/O): is the destination's filesystem full or read-only?"),
    (12, ['rsync: connection unexpectedly closed (0 bytes received so far) [sender]', 'rsync error: x (code 12)'],
     "exit code 12 (error in the rsync protocol data stream): rsync: connection unexpectedly closed"),
    (99, ['something odd'], "exit code 99 (unknown problem)"),
])
def test_rsync_failures_are_explained(returncode, lines, expected):
    """rsync's last messages and its exit code become one line with advice."""
    message = explain_rsync_failure(returncode, lines)
    assert message.startswith(expected), message


def test_exit_code_descriptions():
    """Exit codes are described with their meaning, also negative ones."""
    assert describe_exit_code(23) == "exit code 23 (partial transfer due to errors)"
    assert describe_exit_code(-1) == "exit code -1 (ended abnormally)"


def test_error_output_recorder(capfd):
    """rsync's standard error is passed through and its last lines are kept."""
    with ErrorOutputRecorder(size=2) as recorder:
        subprocess.run([sys.executable, '-c', 'import sys; sys.stderr.write("one\\ntwo\\nthree\\n")'],
                       stderr=recorder.stream, check=True)
    assert list(recorder.lines) == ['two', 'three']
    assert capfd.readouterr().err == 'one\ntwo\nthree\n'


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
    assert remote.rsync_shell is None
    assert remote.prepare('true', shell=False).command_line[0:2] == ['ssh', '-l']
    remote.control_path = "/tmp/it's here/control"
    assert shlex.split(remote.rsync_shell) == ['ssh', '-o', 'ControlMaster=no', '-o',
                                               "ControlPath=/tmp/it's here/control"]
    assert remote.prepare('true', shell=False).command_line[:5] == [
        'ssh', '-o', 'ControlMaster=no', '-o', "ControlPath=/tmp/it's here/control"]
    del remote.control_path
    assert remote.rsync_shell is None
