"""Tests of explaining rsync's failures (:mod:`rsync_system_backup.transfer.errors`; no servers needed)."""

import subprocess
import sys

import pytest

from rsync_system_backup.transfer.errors import ErrorOutputRecorder, describe_exit_code, explain_rsync_failure


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
