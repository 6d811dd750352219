"""
Explanations of rsync failures.

rsync says what went wrong on its standard error and sums it up in its exit
code. :class:`ErrorOutputRecorder` passes rsync's standard error through to
ours as it comes and remembers the last lines, and :func:`explain_rsync_failure()`
turns those lines and the exit code into one line that names the problem
and, for the common ones (authentication, unknown module, refused connection,
full disk), the fix. :func:`describe_exit_code()` also explains the exit
status that an rsync daemon hands to its ``post-xfer exec`` command.
"""

import collections
import os
import sys
import threading

from executor import ExternalCommandFailed

from rsync_system_backup.exceptions import TransferFailedError

EXIT_CODE_MEANINGS = {
    0: "success",
    1: "syntax or usage error",
    2: "protocol incompatibility",
    3: "errors selecting input/output files or directories",
    4: "requested action not supported",
    5: "error starting the client-server protocol",
    6: "the daemon can't write to its log file",
    10: "error in socket I/O",
    11: "error in file I/O",
    12: "error in the rsync protocol data stream",
    13: "errors with program diagnostics",
    14: "error in interprocess communication",
    20: "interrupted by a signal",
    21: "waitpid() failed",
    22: "out of memory",
    23: "partial transfer due to errors",
    24: "partial transfer because source files vanished",
    25: "--max-delete stopped deletions",
    30: "timeout while sending or receiving data",
    35: "timeout waiting for the daemon connection",
    255: "the remote shell (ssh) failed",
}
"""What rsync's exit codes mean (from the rsync manual)."""

KNOWN_PROBLEMS = (
    ('@ERROR: auth failed',
     "check the user name in the destination and the password in $RSYNC_PASSWORD or the --password-file"),
    ('@ERROR: Unknown module',
     "check the module name in the destination (rsync rsync://HOST[:PORT]/ lists the daemon's modules)"),
    ('password file must not be other-accessible', "make the password file private with chmod 600"),
    ('could not open password file', "check the --password-file pathname"),
    ('No space left on device', "the destination's filesystem is full: free some space there "
                                "(rotating old snapshots with -r helps) and run the backup again"),
    ('Disk quota exceeded', "the destination user's disk quota is used up: free some space there"),
    ('Connection refused', "nothing listens on that port: check that the rsync daemon (or sshd) runs "
                           "and that the port in the destination is right"),
    ('Name or service not known', "the host name doesn't resolve: check it"),
    ('Network is unreachable', "check the network connection and the host name"),
    ('No route to host', "check the network connection and the host name"),
    ('Connection timed out', "check the network connection and the host name"),
)
"""Substrings of rsync's error messages and the advice for each, tried in order."""

EXIT_CODE_ADVICE = {
    5: "the daemon refused the module or the login; check the module name, the user name and the password",
    10: "check that the rsync daemon runs and that the host name and port in the destination are right",
    11: "is the destination's filesystem full or read-only? Free some space there (rotating old snapshots "
        "with -r helps) and run the backup again",
    12: "the connection broke or the remote rsync stopped (a full filesystem on the destination does this too)",
    30: "the destination stopped responding; check the network and the destination's load",
    35: "the rsync daemon didn't answer in time; check that it runs and isn't overloaded",
    255: "the SSH connection failed; try 'ssh HOST' to see why",
}
"""Advice for exit codes, for when rsync's own messages name no known problem."""

RECORDED_LINES = 50
"""How many of the last lines of rsync's standard error are remembered."""

SETTLE_MARKER = b'\0rsync-system-backup: settle\n'
"""The line that :meth:`ErrorOutputRecorder.settle()` sends through the pipe (no rsync line starts with NUL)."""

BLIND_SPOT_PREFIX = 'rsync: [generator] stat "'
"""
How the line starts in which a dry run reports a path it couldn't look at
in the destination. A dry run doesn't replace an entry that becomes a
directory, so it can't look below it, and says so with one of
:data:`BLIND_SPOT_SUFFIXES`: the new entries there that belong to a
hard-link group are missing from its plan. The real transfer would have
made the directory first.
"""

BLIND_SPOT_SUFFIXES = ('failed: Not a directory (20)', 'failed: Too many levels of symbolic links (40)')
"""
How that line ends (see :data:`BLIND_SPOT_PREFIX`): ``ENOTDIR`` where the
entry is a file, ``ELOOP`` where it is a symbolic link that leads to itself.
"""


class RsyncFailedError(TransferFailedError, ExternalCommandFailed):

    """
    A failed transfer: both a :exc:`.TransferFailedError` and executor's :exc:`~executor.ExternalCommandFailed`.

    Version 1.1 let executor's exception through when rsync failed, so code
    written for it catches that; this exception satisfies both kinds of
    ``except`` clause and carries this program's explanation as its message.
    """

    def __init__(self, command, message):
        """
        Record the failed command and the explanation.

        :param command: The executor command object of the failed rsync.
        :param message: What went wrong and what to do (a string).
        """
        ExternalCommandFailed.__init__(self, command, error_message=message)


class ErrorOutputRecorder(object):

    """
    Pass a command's standard error through to ours, remembering the last lines.

    Use it in a ``with`` statement and give :attr:`stream` to executor as
    ``stderr_file``::

        with ErrorOutputRecorder() as recorder:
            context.execute('rsync', ..., stderr_file=recorder.stream)
        print(recorder.lines)
    """

    def __init__(self, size=RECORDED_LINES, write=None):
        """
        Initialize an :class:`ErrorOutputRecorder`.

        :param size: How many lines to remember (an integer).
        :param write: A function that shows a line on our standard error
                      (such as :meth:`.ProgressLine.write_above()`), or
                      :data:`None` to write it there as it is.
        """
        self.write = write
        self.lines = collections.deque(maxlen=size)
        self.vanished_files = 0
        self.failed_files = 0
        self.blind_spots = 0
        self.disk_full = False
        self.stream = None
        self.thread = None
        self.settled = threading.Event()

    def __enter__(self):
        """Create the pipe and start copying from it."""
        read_fd, write_fd = os.pipe()
        self.stream = os.fdopen(write_fd, 'wb')
        self.thread = threading.Thread(target=self.copy_lines, args=(os.fdopen(read_fd, 'rb'),), daemon=True)
        self.thread.start()
        return self

    def __exit__(self, exc_type=None, exc_value=None, traceback=None):
        """
        Close our end of the pipe and wait for the copying to end.

        A process that outlives the command and keeps the pipe open (an SSH
        connection master, say) doesn't hold this up for more than a second.
        """
        self.stream.close()
        self.thread.join(timeout=1)

    def copy_lines(self, reader):
        """
        Copy lines from the pipe to our standard error until the pipe is closed.

        :param reader: The reading end of the pipe (a binary file object).
        """
        with reader:
            for line in reader:
                if line == SETTLE_MARKER:
                    self.settled.set()
                    continue
                text = line.decode('utf-8', 'replace')
                if self.write:
                    self.write(text)
                else:
                    sys.stderr.write(text)
                    sys.stderr.flush()
                self.lines.append(text.rstrip('\n'))
                self.count_problem(text)

    def settle(self):
        """
        Wait until every line that the commands which have ended wrote is counted.

        A marker goes through the pipe after their output, and the copying
        thread says when it sees it.
        """
        self.settled.clear()
        self.stream.write(SETTLE_MARKER)
        self.stream.flush()
        self.settled.wait(timeout=10)

    def count_problem(self, line):
        """
        Count the files that one line of rsync's error output reports a problem with.

        :param line: The line (a string).

        rsync reports each file that vanished during the transfer with a
        ``file has vanished`` line and each file it couldn't read or write
        with a line starting with ``rsync:`` (its closing ``rsync error:``
        line is a summary, not a file). Lines that a dry run writes about a
        path below an entry of the destination that becomes a directory
        count in :attr:`blind_spots` too (see :data:`BLIND_SPOT_PREFIX`).
        """
        if 'file has vanished: ' in line:
            self.vanished_files += 1
        elif line.startswith('rsync: '):
            self.failed_files += 1
            if line.startswith(BLIND_SPOT_PREFIX) and line.rstrip().endswith(BLIND_SPOT_SUFFIXES):
                self.blind_spots += 1
        if 'No space left on device' in line or 'Disk quota exceeded' in line:
            self.disk_full = True

    def describe_affected_files(self, returncode):
        """
        Say how many files a partial transfer left out.

        :param returncode: rsync's exit code (23 or 24).
        :returns: For example ``2 file(s) vanished during the transfer``.
        """
        if returncode == 24:
            return "%i file(s) vanished during the transfer" % self.vanished_files
        return "%i file(s) couldn't be transferred (see rsync's messages above)" % self.failed_files


def find_busy_module(returncode, lines):
    """
    Recognise an rsync daemon that turned the transfer away because its module is busy.

    A module with ``max connections = 1`` lets one transfer (and its
    ``post-xfer exec`` command) in at a time: that is how a fleet of hosts
    backing up to one server keeps two runs off one backup set (see the
    documentation on fleets).

    :param returncode: rsync's exit code (an integer).
    :param lines: The last lines rsync wrote to its standard error (strings).
    :returns: The daemon's message (a string), or :data:`None` for other failures.
    """
    if returncode == 5:
        for line in lines:
            if line.strip().startswith('@ERROR: max connections'):
                return line.strip()
    return None


def describe_exit_code(returncode):
    """
    Say what an rsync exit code means.

    :param returncode: The exit code (an integer; negative when rsync was
                       killed by a signal, and -1 from a daemon whose
                       transfer ended abnormally).
    :returns: For example ``exit code 23 (partial transfer due to errors)``.
    """
    meaning = EXIT_CODE_MEANINGS.get(returncode, "ended abnormally" if returncode < 0 else "unknown problem")
    return "exit code %i (%s)" % (returncode, meaning)


def explain_rsync_failure(returncode, lines):
    """
    Explain in one line why rsync failed.

    rsync doesn't always get to print why it failed (when the receiving side
    dies, its last message can be lost), so the exit code alone also leads to
    advice (see :data:`EXIT_CODE_ADVICE`).

    :param returncode: rsync's exit code (an integer).
    :param lines: The last lines rsync wrote to its standard error (strings).
    :returns: For example ``exit code 5 (...): @ERROR: auth failed on module
              backups: check the user name ...``.
    """
    lines = [line.strip() for line in lines if line.strip()]
    parts = [describe_exit_code(returncode)]
    for substring, advice in KNOWN_PROBLEMS:
        matching = [line for line in lines if substring.lower() in line.lower()]
        if matching:
            return ': '.join(parts + [matching[0].rstrip('.'), advice])
    for prefix in ('@ERROR', 'rsync: ', 'rsync error: '):
        matching = [line for line in lines if line.startswith(prefix)]
        if matching:
            parts.append(matching[-1].rstrip('.'))
            break
    if returncode in EXIT_CODE_ADVICE:
        parts.append(EXIT_CODE_ADVICE[returncode])
    return ': '.join(parts)
