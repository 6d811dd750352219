"""
Explanations of rsync failures.

rsync says what went wrong on its standard error and sums it up in its exit
code. :class:`ErrorOutputRecorder` passes rsync's standard error through to
ours as it comes and remembers the last lines, and :func:`explain_rsync_failure()`
turns those lines and the exit code into one line that names the problem
and, for the common ones (authentication, unknown module, a module's path
that the daemon can't enter, refused connection, full disk), the fix, in
terms of the destination's server: the rsync daemon or the SSH server.
:func:`describe_exit_code()` also explains the exit status that an rsync
daemon hands to its ``post-xfer exec`` command.
"""

import collections
import os
import sys
import threading

from executor import ExternalCommandFailed

from rsync_system_backup.connections.tunnel import RSYNCD_PORT
from rsync_system_backup.exceptions import TransferFailedError
from rsync_system_backup.transfer.output import PARTIAL_TRANSFER, VANISHED_FILES

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
}
"""What rsync's exit codes mean (from the rsync manual), for every kind of destination."""

SSH_EXIT_CODE_MEANINGS = {**EXIT_CODE_MEANINGS, 255: "the remote shell (ssh) failed"}
"""What rsync's exit codes mean for an SSH destination, where rsync passes on ssh's own exit code 255."""

DAEMON_STATUS_MEANINGS = {**EXIT_CODE_MEANINGS, 255: "the daemon turned the transfer away before it began"}
"""
What an rsync daemon's ``$RSYNC_EXIT_STATUS`` means in its ``post-xfer exec`` command.

Its process for a transfer ends with -1, which the command sees as 255,
when it refuses the transfer after choosing the module (an ``@ERROR`` line
to the client, such as ``@ERROR: chdir failed`` for a module's path that
doesn't exist).
"""

COMMON_PROBLEMS = (
    ('password file must not be other-accessible', "make the password file private with chmod 600"),
    ('could not open password file', "check the --password-file pathname"),
    ('No space left on device', "the destination's filesystem is full: free some space there "
                                "(rotating old snapshots with -r helps) and run the backup again"),
    ('Disk quota exceeded', "the destination user's disk quota is used up: free some space there"),
    ('Name or service not known', "the host name doesn't resolve: check it"),
    ('Network is unreachable', "check the network connection and the host name"),
    ('No route to host', "check the network connection and the host name"),
    ('Connection timed out', "check the network connection and the host name"),
)
"""Substrings of rsync's error messages and the advice for each, for every kind of destination."""

DAEMON_PROBLEMS = (
    ('Password: @ERROR: auth failed',
     "{daemon} wants a password for the module '{module}' and got none: set $RSYNC_PASSWORD or give "
     "--password-file"),
    ('@ERROR: auth failed',
     "{daemon} refused the login to the module '{module}': check the user name in the destination and the "
     "password in $RSYNC_PASSWORD or the --password-file"),
    ('@ERROR: Unknown module',
     "{daemon} has no module '{module}': check the module name in the destination ({modules})"),
    ('@ERROR: chdir failed',
     "{daemon} can't enter the path of its module '{module}': check that the directory that 'path =' names in "
     "the [{module}] section of its rsyncd.conf exists (is the backup disk mounted?) and that the daemon's user "
     "can enter it"),
    ('Connection refused', "{daemon} refused the connection: check that the daemon runs and listens on that port"),
)
"""
Substrings of rsync's error messages and the advice for each, for an rsync daemon destination.

The advice is a template: ``{daemon}`` names the daemon (see
:func:`describe_daemon()`), ``{module}`` the module and ``{modules}`` says
how to see the daemon's modules.
"""

SSH_PROBLEMS = (
    ('Connection refused', "the SSH server {host} refused the connection: check that sshd runs there and "
                           "listens on the port that ~/.ssh/config gives for {host}"),
)
"""Substrings of rsync's error messages and the advice for each, for an SSH destination (``{host}``: its host)."""

EXIT_CODE_ADVICE = {
    11: "is the destination's filesystem full or read-only? Free some space there (rotating old snapshots "
        "with -r helps) and run the backup again",
    12: "the connection broke or the remote rsync stopped (a full filesystem on the destination does this too)",
    30: "the destination stopped responding; check the network and the destination's load",
}
"""Advice for exit codes, for when rsync's own messages name no known problem, for every kind of destination."""

DAEMON_EXIT_CODE_ADVICE = {
    5: "{daemon} turned the transfer into the module '{module}' away (its @ERROR line above says why)",
    10: "check that {daemon} runs and can be reached",
    35: "{daemon} didn't answer in time; check that it runs and isn't overloaded",
}
"""Advice for exit codes of transfers to an rsync daemon (templates, as in :data:`DAEMON_PROBLEMS`)."""

SSH_EXIT_CODE_ADVICE = {
    255: "the SSH connection to {host} failed; try 'ssh {host}' to see why",
}
"""Advice for exit codes of transfers to an SSH destination (templates, as in :data:`SSH_PROBLEMS`)."""

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


UNCOUNTED_FAILURE_PREFIXES = ('Missing abbreviated xattr value, ',)
"""
How rsync's lines start that report an attribute it failed to set without
counting the failure in its exit code. rsync 3.5.0's receiver says
``Missing abbreviated xattr value, NAME, for "PATH"`` when a long xattr
value it was told to keep isn't on the file it compares with any more (the
differential harness's seed 2249 met it): the file ends without that xattr
and rsync exits with 0. Such a line counts as a file that couldn't be
transferred, and the transfer as partial (see :meth:`ErrorOutputRecorder.judge()`).
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
        self.uncounted_failures = 0
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
        line is a summary, not a file), or with one of
        :data:`UNCOUNTED_FAILURE_PREFIXES`. Lines that a dry run writes about a
        path below an entry of the destination that becomes a directory
        count in :attr:`blind_spots` too (see :data:`BLIND_SPOT_PREFIX`).
        """
        if 'file has vanished: ' in line:
            self.vanished_files += 1
        elif line.startswith(UNCOUNTED_FAILURE_PREFIXES):
            self.failed_files += 1
            self.uncounted_failures += 1
        elif line.startswith('rsync: '):
            self.failed_files += 1
            if line.startswith(BLIND_SPOT_PREFIX) and line.rstrip().endswith(BLIND_SPOT_SUFFIXES):
                self.blind_spots += 1
        if 'No space left on device' in line or 'Disk quota exceeded' in line:
            self.disk_full = True

    def judge(self, returncode):
        """
        Give the exit code that stands for a transfer, counting what rsync's exit code leaves out.

        :param returncode: rsync's exit code (an integer).
        :returns: 23 (a partial transfer) when rsync exited with 0 or 24 (files
                  vanished) but reported a failure that it doesn't count (see
                  :data:`UNCOUNTED_FAILURE_PREFIXES`; rsync itself gives 23
                  when files vanished and others failed), `returncode` otherwise.
        """
        if returncode in (0, VANISHED_FILES) and self.uncounted_failures:
            return PARTIAL_TRANSFER
        return returncode

    def describe_affected_files(self, returncode):
        """
        Say how many files a partial transfer left out.

        :param returncode: rsync's exit code (23 or 24).
        :returns: For example ``2 file(s) vanished during the transfer``.
        """
        if returncode == VANISHED_FILES:
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


def describe_exit_code(returncode, meanings=EXIT_CODE_MEANINGS):
    """
    Say what an rsync exit code means.

    :param returncode: The exit code (an integer; negative when rsync was
                       killed by a signal, and -1 from a daemon whose
                       transfer ended abnormally).
    :param meanings: The meanings of the exit codes (:data:`EXIT_CODE_MEANINGS`,
                     :data:`SSH_EXIT_CODE_MEANINGS` or :data:`DAEMON_STATUS_MEANINGS`).
    :returns: For example ``exit code 23 (partial transfer due to errors)``.
    """
    meaning = meanings.get(returncode, "ended abnormally" if returncode < 0 else "unknown problem")
    return "exit code %i (%s)" % (returncode, meaning)


def daemon_address(destination):
    """
    Give the host and port of an rsync daemon destination.

    :param destination: The :class:`.Destination` of an rsync daemon.
    :returns: For example ``server:873`` (a string; rsync's default port
              when the destination names none).
    """
    return "%s:%i" % (destination.hostname, destination.port_number or RSYNCD_PORT)


def describe_daemon(destination, tunnel=None):
    """
    Name the rsync daemon of a destination, for messages.

    :param destination: The :class:`.Destination` of an rsync daemon.
    :param tunnel: The :class:`.OpenTunnel` that reaches it, or :data:`None`.
    :returns: For example ``the rsync daemon at server:873``.
    """
    if tunnel is not None:
        return "the rsync daemon at port %i behind the SSH tunnel to %s" % (tunnel.remote_port, tunnel.ssh_alias)
    return "the rsync daemon at %s" % daemon_address(destination)


def failure_vocabulary(destination, tunnel=None):
    """
    Choose the meanings, known problems and advice that fit the kind of destination.

    :param destination: The :class:`.Destination` of the transfer.
    :param tunnel: The :class:`.OpenTunnel` to its rsync daemon, or :data:`None`.
    :returns: A tuple of four values: the exit codes' meanings (a dict), the
              known problems (a tuple of pairs), the advice for exit codes (a
              dict) and the names that the advice's templates take (a dict).
    """
    if destination.is_daemon:
        if tunnel is not None:
            modules = "the sections of the daemon's rsyncd.conf are its modules"
        else:
            modules = "'rsync rsync://%s/' lists its modules" % daemon_address(destination)
        names = dict(daemon=describe_daemon(destination, tunnel), module=destination.module, modules=modules)
        return (EXIT_CODE_MEANINGS, DAEMON_PROBLEMS + COMMON_PROBLEMS, {**EXIT_CODE_ADVICE, **DAEMON_EXIT_CODE_ADVICE},
                names)
    if destination.is_remote_shell:
        return (SSH_EXIT_CODE_MEANINGS, SSH_PROBLEMS + COMMON_PROBLEMS, {**EXIT_CODE_ADVICE, **SSH_EXIT_CODE_ADVICE},
                dict(host=destination.ssh_alias))
    return EXIT_CODE_MEANINGS, COMMON_PROBLEMS, EXIT_CODE_ADVICE, {}


def explain_rsync_failure(returncode, lines, destination, tunnel=None):
    """
    Explain in one line why rsync failed.

    rsync doesn't always get to print why it failed (when the receiving side
    dies, its last message can be lost), so the exit code alone also leads to
    advice. Both name the server that is involved: an rsync daemon's
    messages and exit codes are explained in terms of the daemon, an SSH
    destination's in terms of ssh (see :func:`failure_vocabulary()`).

    :param returncode: rsync's exit code (an integer).
    :param lines: The last lines rsync wrote to its standard error (strings).
    :param destination: The :class:`.Destination` of the transfer.
    :param tunnel: The :class:`.OpenTunnel` to its rsync daemon, or :data:`None`.
    :returns: For example ``exit code 5 (...): @ERROR: auth failed on module
              backups: the rsync daemon at server:873 refused the login ...``.
    """
    meanings, problems, exit_code_advice, names = failure_vocabulary(destination, tunnel)
    lines = [line.strip() for line in lines if line.strip()]
    parts = [describe_exit_code(returncode, meanings)]
    for substring, advice in problems:
        matching = [line for line in lines if substring.lower() in line.lower()]
        if matching:
            # rsync's unanswered password prompt starts the daemon's line: quote from the @ERROR on.
            quoted = matching[0][matching[0].find('@ERROR'):] if '@ERROR' in matching[0] else matching[0]
            return ': '.join(parts + [quoted.rstrip('.'), advice.format(**names)])
    for prefix in ('@ERROR', 'rsync: ', 'rsync error: '):
        matching = [line for line in lines if line.startswith(prefix)]
        if matching:
            parts.append(matching[-1].rstrip('.'))
            break
    if returncode in exit_code_advice:
        parts.append(exit_code_advice[returncode].format(**names))
    return ': '.join(parts)
