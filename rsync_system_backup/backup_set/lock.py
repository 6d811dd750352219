"""
One backup run at a time per destination.

:class:`DestinationLock` holds an exclusive :manpage:`flock(2)` lock on a
file in the directory that holds ``latest`` and the snapshots, for as long as
a run works there. The kernel releases the lock when its holder dies, so a
crashed run never leaves a stale lock behind. On this system the lock is
taken in this process; on an SSH destination (or when sudo is needed) a small
shell on the destination holds it for as long as this process keeps a pipe to
it open.

That holder must keep the lock until the last cleanup of an interrupted run
is done, or a waiting run would start while this one still removes its
temporary trees. So it runs in a session of its own (the terminal's
Control-C and hang-up don't reach it), and :func:`.stop_descendants()`
spares it (see :func:`.spare()`); it ends when the lock is released. On an
SSH destination it goes through the run's shared connection (see
:mod:`.connections.shared_connection`), which outlives the first signal in
the same way and closes only after the lock is released.
"""

import datetime
import errno
import fcntl
import logging
import os
import posixpath
import socket
import time

from rsync_system_backup.exceptions import BackupInProgressError, LockFailedError
from rsync_system_backup.processes.sessions import OwnSessionOption
from rsync_system_backup.processes.signals import spare, unspare
from rsync_system_backup.processes.waiting import wait_for_exit
from rsync_system_backup.backup_set.operations import runs_in_process

LOCK_FILE_NAME = '.rsync-system-backup.lock'
"""The name of the lock file, next to ``latest`` (a hidden file, so rotation and rsync leave it alone)."""

REMOTE_LOCK_SCRIPT = '''
exec 2>&1
[ ! -L "$1" ] || { echo "$1 is a symbolic link"; exit 1; }
exec 9>>"$1" || exit 1
flock -n 9
status=$?
if [ $status -eq 1 ]; then
    tries=0
    while [ ! -s "$1" ] && [ $tries -lt 20 ]; do sleep 0.05; tries=$((tries + 1)); done
    printf 'busy %s\\n' "$(cat "$1")"
    [ "$2" = wait ] || exit 75
    flock 9 || exit
elif [ $status -ne 0 ]; then
    exit $status
fi
printf '%s\\n' "$3" > "$1"
echo locked
cat > /dev/null
: > "$1"
'''
"""
The shell script that holds the lock through a command: it takes the lock on
file descriptor 9, writes who holds it, says ``locked`` and then waits for the
end of its standard input; it empties the lock file and exits (which releases
the lock) when that comes. A run that finds the lock taken (``flock`` exits
with 1) gives the holder a moment to write its description. Any other
failure ends the script with ``flock``'s exit code (127 when it isn't
installed); error messages go to standard output, where they explain it.
"""

COMMAND_NOT_FOUND = 127
"""The shell's exit code for a command that isn't installed."""

logger = logging.getLogger(__name__)


def describe_holder():
    """
    Describe this run for the lock file.

    :returns: For example ``pid 1234 on backup-host since 2024-05-01 13:45:00``.
    """
    return 'pid %i on %s since %s' % (os.getpid(), socket.gethostname(),
                                      datetime.datetime.now().strftime('%Y-%m-%d %H:%M:%S'))


class DestinationLock(object):

    """An exclusive lock on a backup directory, for the duration of a ``with`` block."""

    def __init__(self, context, directory, sudo=False, wait=False):
        """
        Prepare to lock a backup directory.

        :param context: The execution context of the directory.
        :param directory: The directory that holds ``latest`` and the snapshots (a string).
        :param sudo: :data:`True` when the directory needs superuser privileges.
        :param wait: :data:`True` to wait for another run to finish instead of failing.
        """
        self.context = context
        self.directory = directory
        self.sudo = sudo
        self.wait = wait
        self.handle = None
        self.holder = None

    @property
    def pathname(self):
        """The pathname of the lock file (a string)."""
        return posixpath.join(self.directory, LOCK_FILE_NAME)

    def refuse(self, other):
        """
        Raise the error for a lock that another run holds.

        :param other: The other run's description from the lock file (a string).
        :raises: :exc:`.BackupInProgressError`.
        """
        raise BackupInProgressError(
            "Another backup run in %s holds the lock (%s): let it finish, or use --wait to wait for it."
            % (self.directory, other.strip() or "it is just starting")
        )

    def __enter__(self):
        """Take the lock, or fail (or wait) when another run holds it."""
        if runs_in_process(self.context, self.sudo):
            self.lock_in_process()
        else:
            self.lock_with_command()
        logger.debug("Locked %s.", self.pathname)
        return self

    def lock_in_process(self):
        """Take the lock with :func:`fcntl.flock()` in this process."""
        # Never through a symbolic link planted under the lock file's name.
        self.handle = os.fdopen(os.open(self.pathname, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600),
                                'a+')
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            other = self.read_holder()
            if not self.wait:
                self.handle.close()
                self.refuse(other)
            logger.info("Waiting for the other backup run in %s (%s) ..", self.directory, other.strip())
            fcntl.flock(self.handle, fcntl.LOCK_EX)
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(describe_holder() + '\n')
        self.handle.flush()

    def read_holder(self):
        """
        Read who holds the lock, giving a holder that just took it a moment to say so.

        :returns: The holder's description from the lock file (a string, empty if it never came).
        """
        for _ in range(20):
            self.handle.seek(0)
            text = self.handle.read()
            if text.strip():
                return text
            time.sleep(0.05)
        return text

    def lock_with_command(self):
        """
        Take the lock with a shell on the destination that holds it while this process lives.

        :raises: :exc:`.BackupInProgressError` when another run holds the
                 lock, :exc:`.LockFailedError` when the lock can't be taken
                 (``flock`` is missing, the lock file can't be opened).
        """
        options = {}
        if issubclass(self.context.command_type, OwnSessionOption):
            options['own_session'] = True
        read_fd, write_fd = os.pipe()
        with os.fdopen(write_fd, 'wb') as output:
            self.holder = self.context.execute(
                'sh', '-c', REMOTE_LOCK_SCRIPT, 'lock', self.pathname, 'wait' if self.wait else 'fail',
                describe_holder(), asynchronous=True, input=True, stdout_file=output, merge_streams=True,
                check=False, sudo=self.sudo, shell=False, tty=False, **options
            )
        spare(self.holder.pid)
        complaints = []
        with os.fdopen(read_fd, 'rb') as replies:
            for line in replies:
                reply = line.decode('utf-8', 'replace').rstrip('\n')
                if reply == 'locked':
                    return
                if reply.startswith('busy '):
                    if not self.wait:
                        self.release()
                        self.refuse(reply[5:])
                    logger.info("Waiting for the other backup run in %s (%s) ..", self.directory, reply[5:])
                elif reply.strip():
                    complaints.append(reply.strip())
        returncode = self.release()
        self.explain_failure(returncode, complaints)

    def explain_failure(self, returncode, complaints):
        """
        Raise the error for a lock command that failed.

        :param returncode: The lock command's exit code (an integer).
        :param complaints: Its error messages (a list of strings).
        :raises: :exc:`.LockFailedError`.
        """
        where = getattr(self.context, 'ssh_alias', None) or "this system"
        if returncode == COMMAND_NOT_FOUND:
            raise LockFailedError("flock is not installed on %s, so %s can't be locked against other runs: "
                                  "install util-linux there (it provides flock)." % (where, self.directory))
        raise LockFailedError("Can't lock %s on %s: %s (the lock command exited with code %i)."
                              % (self.pathname, where, complaints[-1] if complaints else "no error message",
                                 returncode))

    def release(self):
        """
        Let go of the lock.

        :returns: The exit code of the command that held it (an integer), or
                  :data:`None` when the lock was held in this process.
        """
        if self.handle is not None:
            # Empty the lock file first, so no run reads a description of a run that is over.
            self.handle.seek(0)
            self.handle.truncate()
            self.handle.close()
            self.handle = None
        if self.holder is None:
            return None
        holder, self.holder = self.holder, None
        if holder.subprocess.stdin:
            holder.subprocess.stdin.close()
        wait_for_exit(holder)
        unspare(holder.pid)
        return holder.returncode

    def __exit__(self, exc_type=None, exc_value=None, traceback=None):
        """Release the lock."""
        self.release()
        logger.debug("Unlocked %s.", self.pathname)
