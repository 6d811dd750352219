"""Tests of explaining rsync's failures (:mod:`rsync_system_backup.transfer.errors`; no servers needed)."""

import subprocess
import sys

import pytest

from rsync_system_backup.connections.tunnel import OpenTunnel
from rsync_system_backup.destinations import Destination
from rsync_system_backup.transfer.errors import (
    DAEMON_STATUS_MEANINGS,
    SSH_EXIT_CODE_MEANINGS,
    ErrorOutputRecorder,
    describe_daemon,
    describe_exit_code,
    explain_rsync_failure,
)


LOCAL = Destination(expression='/mnt/backups/latest')
"""A local destination."""

SSH = Destination(expression='server:/backups/latest')
"""An SSH destination."""

DAEMON = Destination(expression='rsync://server/module/latest')
"""An rsync daemon destination, on the default port."""


@pytest.mark.parametrize('returncode, lines, destination, expected', [
    (5, ['@ERROR: auth failed on module m', 'rsync error: error starting client-server protocol (code 5)'], DAEMON,
     "exit code 5 (error starting the client-server protocol): @ERROR: auth failed on module m: the rsync daemon at "
     "server:873 refused the login to the module 'module': check the user"),
    (5, ['@ERROR: access denied to module from host', 'rsync error: (code 5)'], DAEMON,
     "exit code 5 (error starting the client-server protocol): @ERROR: access denied to module from host: the rsync "
     "daemon at server:873 turned the transfer into the module 'module' away (its @ERROR line above says why)"),
    (11, [], LOCAL, "exit code 11 (error in file I/O): is the destination's filesystem full or read-only?"),
    (12, ['rsync: connection unexpectedly closed (0 bytes received so far) [sender]', 'rsync error: x (code 12)'], SSH,
     "exit code 12 (error in the rsync protocol data stream): rsync: connection unexpectedly closed"),
    (99, ['something odd'], LOCAL, "exit code 99 (unknown problem)"),
    (255, [], SSH, "exit code 255 (the remote shell (ssh) failed): the SSH connection to server failed; try 'ssh "
                   "server' to see why"),
    (255, [], DAEMON, "exit code 255 (unknown problem)"),
    (255, [], LOCAL, "exit code 255 (unknown problem)"),
    (10, ['ssh: connect to host server port 22: Connection refused'], SSH,
     "exit code 10 (error in socket I/O): ssh: connect to host server port 22: Connection refused: the SSH server "
     "server refused the connection"),
    (10, ['rsync: failed to connect to server: Connection refused (111)'], DAEMON,
     "exit code 10 (error in socket I/O): rsync: failed to connect to server: Connection refused (111): the rsync "
     "daemon at server:873 refused the connection"),
])
def test_rsync_failures_are_explained(returncode, lines, destination, expected):
    """rsync's last messages and its exit code become one line with advice that names the destination's server."""
    message = explain_rsync_failure(returncode, lines, destination)
    assert message.startswith(expected), message
    if not destination.is_remote_shell:
        assert 'ssh' not in message.lower(), message


def test_daemon_behind_tunnel_is_named():
    """A daemon behind a tunnel is named by its port and the tunnel's host."""
    tunnel = OpenTunnel(ssh_alias='gateway', remote_port=8873, command=['ssh'])
    assert describe_daemon(DAEMON, tunnel) == "the rsync daemon at port 8873 behind the SSH tunnel to gateway"
    assert describe_daemon(Destination(expression='rsync://[::1]:1873/m')) == "the rsync daemon at [::1]:1873"


def test_exit_code_descriptions():
    """Exit codes are described with their meaning, also negative ones; 255 by who gives it."""
    assert describe_exit_code(23) == "exit code 23 (partial transfer due to errors)"
    assert describe_exit_code(-1) == "exit code -1 (ended abnormally)"
    assert describe_exit_code(255, SSH_EXIT_CODE_MEANINGS) == "exit code 255 (the remote shell (ssh) failed)"
    assert describe_exit_code(255, DAEMON_STATUS_MEANINGS) == \
        "exit code 255 (the daemon turned the transfer away before it began)"


def test_error_output_recorder(capfd):
    """rsync's standard error is passed through and its last lines are kept."""
    with ErrorOutputRecorder(size=2) as recorder:
        subprocess.run([sys.executable, '-c', 'import sys; sys.stderr.write("one\\ntwo\\nthree\\n")'],
                       stderr=recorder.stream, check=True)
    assert list(recorder.lines) == ['two', 'three']
    assert capfd.readouterr().err == 'one\ntwo\nthree\n'


def test_uncounted_failure_makes_a_partial_transfer(capfd):
    """
    A long xattr that rsync failed to set while exiting with 0 (or 24, files
    vanished) counts as a failed file and turns that code into 23; other
    lines and codes stay as they are.
    """
    lines = ('rsync: [sender] send_files failed to open "/src/secret": Permission denied (13)\n'
             'Missing abbreviated xattr value, user.note, for "/backups/latest/etc/.motd.XyZ123"\n')
    with ErrorOutputRecorder() as recorder:
        subprocess.run([sys.executable, '-c', 'import sys; sys.stderr.write(%r)' % lines],
                       stderr=recorder.stream, check=True)
    assert (recorder.failed_files, recorder.uncounted_failures) == (2, 1)
    assert [recorder.judge(code) for code in (0, 23, 24, 12)] == [23, 23, 23, 12]
    assert capfd.readouterr().err == lines
    with ErrorOutputRecorder() as clean:
        subprocess.run([sys.executable, '-c', 'import sys; sys.stderr.write("file has vanished: \\"/x\\"\\n")'],
                       stderr=clean.stream, check=True)
    assert (clean.failed_files, clean.uncounted_failures, clean.vanished_files) == (0, 0, 1)
    assert (clean.judge(0), clean.judge(24)) == (0, 24)
