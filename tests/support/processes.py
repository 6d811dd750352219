"""Looking at processes from the tests: whether one lives, its descendants and session, command line, locks, waiting."""

import os
import subprocess
import time


def process_exists(pid):
    """
    Check whether a process is alive.

    :param pid: A process id (an integer).
    :returns: :data:`True` if the process exists and is not a zombie,
              :data:`False` otherwise.
    """
    try:
        with open('/proc/%d/stat' % pid) as handle:
            stat = handle.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # The state follows the command name, which is in parentheses and may
    # itself contain spaces and parentheses.
    return stat.rpartition(')')[2].split()[0] not in ('Z', 'X')


def descendant_pids(pid):
    """
    Find all living descendants (children, grandchildren, ...) of a process.

    :param pid: A process id (an integer).
    :returns: A sorted list of process ids (empty when there are none).

    Processes whose parent already died are reparented (to init or a
    subreaper) and so are no longer found here: call this while the
    ancestor is still alive.
    """
    children = {}
    for name in os.listdir('/proc'):
        if name.isdigit():
            try:
                with open('/proc/%s/stat' % name) as handle:
                    fields = handle.read().rpartition(')')[2].split()
            except OSError:
                continue  # The process ended while we were looking.
            if fields[0] not in ('Z', 'X'):
                children.setdefault(int(fields[1]), []).append(int(name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return sorted(found)


def session_processes(pid):
    """
    Find the living processes (zombies excluded) in the session that a process leads, other than the leader.

    :param pid: The process id of a session leader (an integer; a process started with ``start_new_session=True``).
    :returns: A list of process ids (empty when there are none). Processes
              whose parent died are found too: they stay in the session.
    """
    found = []
    for name in os.listdir('/proc'):
        if name.isdigit() and int(name) != pid:
            try:
                with open('/proc/%s/stat' % name) as handle:
                    fields = handle.read().rpartition(')')[2].split()
            except OSError:
                continue  # The process ended while we were looking.
            if int(fields[3]) == pid and fields[0] not in ('Z', 'X'):
                found.append(int(name))
    return found


def lock_is_free(pathname):
    """
    Check with a real ``flock`` whether a lock file can be locked now.

    :param pathname: The lock file (a string or path).
    :returns: :data:`True` when nobody holds the lock, :data:`False` otherwise.
    """
    return subprocess.call(['flock', '--nonblock', str(pathname), 'true']) == 0


def read_cmdline(pid):
    """
    Read a process's command line.

    :param pid: A process id (an integer).
    :returns: The arguments joined by spaces (a string; empty when the process is gone).
    """
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as handle:
            return handle.read().replace(b'\0', b' ').decode('utf-8', 'replace').strip()
    except OSError:
        return ''


def wait_for(predicate, timeout=30, message=None, process=None):
    """
    Wait until ``predicate()`` is true, failing the test after ``timeout`` seconds.

    :param predicate: A function without arguments.
    :param timeout: Seconds (a number).
    :param message: What was waited for (a string, for the failure message).
    :param process: A :class:`subprocess.Popen` object whose exit fails the
                    test at once (what was waited for won't come any more;
                    the message shows what it wrote to its pipes), or
                    :data:`None`.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        what = message or predicate
        if process is not None:
            assert process.poll() is None, "The process exited (%s) while waiting for %s: %r" % (
                process.returncode, what, process.communicate())
        assert time.monotonic() < deadline, "Timed out waiting for %s" % what
        time.sleep(0.02)
