"""
Orderly stops on SIGINT, SIGTERM and SIGHUP.

While :func:`stop_on_signals()` is active, the first of these signals stops
every process this program started (rsync, cp, rm, ssh and their children),
waits until they are gone and raises :exc:`Interrupted` in the main thread,
so every cleanup runs (temporary snapshot, unmount, lock, tunnel) before the
program exits with code 128 + the signal's number. Signals that arrive while
the cleanups run are ignored, so they can't cut a cleanup short.

Two things keep the cleanups whole:

- A signal that arrives while a :func:`cleanup()` block runs (unmounting and
  locking the disk after a good backup, say) waits until the block is done,
  and only then stops the run.
- A terminal sends Control-C and its hang-up to every process of the
  foreground job, not just to this one. So commands started during a
  cleanup, or after the first signal, run in a session of their own (see
  :mod:`.processes.sessions`), where the terminal's signals can't reach them; and
  processes that must outlive the first signal (the holder of the
  destination's lock, see :func:`spare()`) are left alone by
  :func:`stop_descendants()`.
"""

import contextlib
import os
import signal
import time

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""The signals that stop a backup in an orderly way."""

GRACE_PERIOD = 10
"""Seconds that stopped processes get to exit before they are killed."""

SPARED_PROCESSES = set()
"""The process ids that :func:`stop_descendants()` leaves alone, with their descendants (see :func:`spare()`)."""


class SignalState(object):

    """What the handler of :func:`stop_on_signals()` has seen, and whether a cleanup runs."""

    def __init__(self):
        """Start with no signal and no cleanup."""
        self.reset()

    def reset(self):
        """Forget earlier signals and cleanups (when :func:`stop_on_signals()` starts)."""
        self.received = None
        self.raised = False
        self.cleanups = 0


STATE = SignalState()
"""The one :class:`SignalState` of this process."""


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


def cleanups_running():
    """
    Check whether commands started now must be out of the terminal's reach.

    :returns: :data:`True` while a :func:`cleanup()` block runs and after
              the first handled signal (when only cleanups are left to run).
    """
    return STATE.cleanups > 0 or STATE.received is not None


@contextlib.contextmanager
def cleanup(failing=False):
    """
    Run a cleanup that a signal must not cut short, in a ``with`` block.

    :param failing: :data:`True` when the cleanup follows a failure, which
                    stays the reported one.

    Commands started in the block run in a session of their own (see
    :func:`cleanups_running()`). A handled signal that arrives meanwhile
    is acted upon when the outermost block ends: :exc:`Interrupted` is
    raised then, unless the block raised an exception of its own or
    `failing` is set.
    """
    STATE.cleanups += 1
    try:
        yield
    finally:
        STATE.cleanups -= 1
    if STATE.cleanups == 0 and STATE.received is not None and not STATE.raised and not failing:
        STATE.raised = True
        raise Interrupted(STATE.received)


class CleanupStack(contextlib.ExitStack):

    """A :class:`contextlib.ExitStack` whose exit is a :func:`cleanup()`: a signal can't cut it short."""

    def __exit__(self, exc_type=None, exc_value=None, traceback=None):
        """Exit the stacked context managers, in reverse order, inside a :func:`cleanup()` block."""
        with cleanup(failing=exc_type is not None):
            return super(CleanupStack, self).__exit__(exc_type, exc_value, traceback)


def spare(pid):
    """
    Keep :func:`stop_descendants()` away from a process and its descendants (until :func:`unspare()`).

    :param pid: The process id (an integer).

    The process must be in a session of its own, so that the terminal's
    signals don't reach it either, and its owner must end it.
    """
    SPARED_PROCESSES.add(pid)


def unspare(pid):
    """
    Forget a process that :func:`spare()` protected (it has ended).

    :param pid: The process id (an integer).
    """
    SPARED_PROCESSES.discard(pid)


def descendant_processes(pid):
    """
    Find every process that descends from a process, except the spared ones (see :func:`spare()`).

    :param pid: The ancestor's process id.
    :returns: A list of process ids, children before grandchildren.
    """
    # Imported here: only an interrupted run needs the process tree.
    from proc.tree import get_process_tree
    ancestor = get_process_tree().find(pid=pid, recursive=True)
    found = []
    generation = list(ancestor.children) if ancestor else []
    while generation:
        generation = [process for process in generation if process.pid not in SPARED_PROCESSES]
        found.extend(process.pid for process in generation)
        generation = [child for process in generation for child in process.children]
    return found


def status_fields(pid):
    """
    Read the fields of a process's ``/proc/PID/stat`` that follow its command's name.

    :param pid: The process id.
    :returns: A list of strings: the state (``Z`` for a zombie) first, then the
              parent's process id, the process group, and so on (see :manpage:`proc(5)`).
    :raises: :exc:`OSError` when the process is gone.
    """
    with open('/proc/%i/stat' % pid) as handle:
        # The command's name is in parentheses and may hold anything, ')' and blanks included.
        return handle.read().rsplit(')', 1)[1].split()


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
        return status_fields(pid)[0] != 'Z'
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
    def handle(signal_number, frame):
        if STATE.received is not None:
            return
        STATE.received = signal_number
        if STATE.cleanups:
            # Acted upon when the cleanup is done (see cleanup()).
            return
        STATE.raised = True
        stop_descendants(signal_number)
        raise Interrupted(signal_number)

    STATE.reset()
    previous = dict((number, signal.signal(number, handle)) for number in HANDLED_SIGNALS)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
