"""
Orderly stops on SIGINT, SIGTERM and SIGHUP.

While :func:`stop_on_signals()` is active, the first of these signals stops
every process this program started (rsync, cp, rm, ssh and their children),
waits until they are gone and raises :exc:`Interrupted` in the main thread,
so every cleanup runs (temporary snapshot, unmount, lock, tunnel) before the
program exits with code 128 + the signal's number. Signals that arrive while
the cleanups run are ignored, so they can't cut a cleanup short.
"""

import contextlib
import os
import signal
import time

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""The signals that stop a backup in an orderly way."""

GRACE_PERIOD = 10
"""Seconds that stopped processes get to exit before they are killed."""


class Interrupted(BaseException):

    """
    Raised in the main thread when a handled signal arrives.

    It derives from :exc:`BaseException`, like :exc:`KeyboardInterrupt`, so
    that ``except Exception`` clauses don't swallow it.
    """

    def __init__(self, signal_number):
        """
        Record which signal arrived.

        :param signal_number: The signal's number (an integer).
        """
        self.signal_number = signal_number
        self.signal_name = signal.Signals(signal_number).name
        super(Interrupted, self).__init__("Interrupted by %s" % self.signal_name)

    @property
    def exit_code(self):
        """The conventional exit code of a program stopped by this signal: 128 plus its number."""
        return 128 + self.signal_number


def descendant_processes(pid):
    """
    Find every process that descends from a process.

    :param pid: The ancestor's process id.
    :returns: A list of process ids, children before grandchildren.
    """
    # Imported here: only an interrupted run needs the process tree.
    from proc.tree import get_process_tree
    ancestor = get_process_tree().find(pid=pid, recursive=True)
    return [process.pid for process in ancestor.descendants] if ancestor else []


def is_alive(pid):
    """
    Check whether a process still runs (zombies count as gone), reaping it if it is our child.

    :param pid: The process id.
    :returns: :data:`True` while the process runs.
    """
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        with open('/proc/%i/stat' % pid) as handle:
            return handle.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def stop_descendants(signal_number, grace_period=GRACE_PERIOD):
    """
    Pass a signal on to every process this program started, and wait until they are gone.

    :param signal_number: The signal to send.
    :param grace_period: Seconds to wait before sending SIGKILL to the survivors, and
                         again before giving up on processes that even SIGKILL
                         doesn't end (they are stuck in the kernel).
    """
    processes = descendant_processes(os.getpid())
    for pid in processes:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal_number)
    deadline = time.monotonic() + grace_period
    killed = False
    while True:
        survivors = [pid for pid in processes if is_alive(pid)]
        if not survivors:
            return
        if time.monotonic() > deadline:
            if killed:
                # Stuck in the kernel (a hung disk, say): the cleanups must still run.
                return
            for pid in survivors:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed = True
            deadline = time.monotonic() + grace_period
        time.sleep(0.05)


@contextlib.contextmanager
def stop_on_signals():
    """
    Turn SIGINT, SIGTERM and SIGHUP into :exc:`Interrupted` for the duration of a ``with`` block.

    The previous handlers are restored afterwards.
    """
    received = []

    def handle(signal_number, frame):
        if received:
            return
        received.append(signal_number)
        stop_descendants(signal_number)
        raise Interrupted(signal_number)

    previous = dict((number, signal.signal(number, handle)) for number in HANDLED_SIGNALS)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
