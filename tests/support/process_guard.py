"""
Run a command and report the processes that outlive it.

Usage: ``python process_guard.py REPORT_FILE COMMAND [ARGUMENT...]``

This script makes itself a child subreaper (see ``prctl(2)``), so every
process that the command starts and leaves behind (an ``ssh`` tunnel, say) is
reparented to it when the command exits, instead of escaping to init. After
the command exits, the processes still alive a moment later are written to
REPORT_FILE (one ``PID COMMAND-LINE`` per line; an empty file means a clean
exit) and killed. The script exits with the command's exit code.
"""

import ctypes
import os
import signal
import subprocess
import sys
import time

if __name__ == '__main__':
    # Run as a script: make the tests directory importable, as pytest's conftest does.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from support.processes import descendant_pids, read_cmdline  # noqa: E402

PR_SET_CHILD_SUBREAPER = 36
"""The ``prctl()`` option that makes a process adopt its orphaned descendants."""

GRACE_PERIOD = 1.0
"""Seconds that leftover processes get to finish exiting before they count as leaked."""


def make_subreaper():
    """Make this process the reaper of its orphaned descendants."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def reap_children():
    """Collect the exit status of every child that has exited."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main(report_file, command):
    """Run the command, report and kill what it left behind, and return its exit code."""
    make_subreaper()
    returncode = subprocess.call(command)
    deadline = time.monotonic() + GRACE_PERIOD
    while descendant_pids(os.getpid()) and time.monotonic() < deadline:
        reap_children()
        time.sleep(0.02)
    leftovers = descendant_pids(os.getpid())
    with open(report_file, 'w') as handle:
        for pid in leftovers:
            handle.write('%d %s\n' % (pid, read_cmdline(pid)))
    for pid in leftovers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(0.1 if leftovers else 0)
    reap_children()
    return returncode


if __name__ == '__main__':
    sys.exit(main(sys.argv[1], sys.argv[2:]))
