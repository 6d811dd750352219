"""
One line for every operating system error on the destination.

The small operations on a local destination (see :mod:`.backup_set.operations`,
:mod:`.backup_set.lock` and :mod:`.backup_set.marker`) run in this process, so a
read-only filesystem (ext4 remounts itself read-only after disk errors), a
full one, a missing permission or a failing disk shows up as an
:exc:`OSError`. :func:`explain_os_errors()` turns each such error into a
:exc:`.DestinationAccessError` whose message names the path, the filesystem
and the problem, with the way out.
"""

import contextlib
import errno
import os

from rsync_system_backup.exceptions import DestinationAccessError

ADVICE = {
    errno.EROFS: "the filesystem %(mount)s is mounted read-only (ext4 does that after disk errors: look in "
                 "'dmesg', repair it with fsck if needed, then mount it read-write again)",
    errno.ENOSPC: "the filesystem %(mount)s is full (no space or no inodes left): free some space there "
                  "(rotating old snapshots with -r helps)",
    errno.EDQUOT: "the disk quota on %(mount)s is used up: free some space there",
    errno.EACCES: "permission denied: run the backup as root, or give this user write access there",
    errno.EPERM: "the operation is not permitted there (an immutable file or directory? see lsattr): "
                 "run the backup as root, or clear the attribute",
    errno.EIO: "an I/O error on the filesystem %(mount)s: the disk may be failing; look in 'dmesg'",
}
"""The explanation of the common errors, by :mod:`errno` number (``%(mount)s`` is the filesystem's mount point)."""


def find_mount_point(pathname):
    """
    Find the mount point of the filesystem that holds a path (or its nearest existing ancestor).

    :param pathname: An absolute pathname (a string).
    :returns: The mount point (a string).
    """
    directory = os.path.abspath(pathname)
    while not os.path.exists(directory):
        directory = os.path.dirname(directory)
    directory = os.path.realpath(directory)
    while not os.path.ismount(directory):
        directory = os.path.dirname(directory)
    return directory


def describe_os_error(error):
    """
    Explain an operating system error on the destination in one line.

    :param error: An :exc:`OSError` that names a file.
    :returns: For example "Can't write /mnt/usb/backups/.rsync-system-backup.lock:
              the filesystem /mnt/usb is mounted read-only (...)" (a string).
    """
    pathname = os.fsdecode(error.filename)
    try:
        mount = find_mount_point(pathname)
    except OSError:
        mount = "that holds it"
    advice = ADVICE.get(error.errno)
    problem = advice % dict(mount=mount) if advice else (error.strerror or str(error))
    verb = "write" if error.errno in (errno.EROFS, errno.ENOSPC, errno.EDQUOT) else "access"
    return "Can't %s %s: %s." % (verb, pathname, problem)


@contextlib.contextmanager
def explain_os_errors():
    """
    Turn an :exc:`OSError` that names a file into a :exc:`.DestinationAccessError`, for a ``with`` block.

    :raises: :exc:`.DestinationAccessError` (see :func:`describe_os_error()`).
    """
    try:
        yield
    except OSError as e:
        if e.filename is None:
            raise
        raise DestinationAccessError(describe_os_error(e)) from e
