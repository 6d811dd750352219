"""
Who can enter the backup set.

A backup holds every user's files with their owners and modes. A local user
of the backup system who can enter the directory that holds ``latest`` and
the snapshots (the backup root) can read the copies of the files their uid
owns, in ``latest`` and, through the inodes that hard-linked snapshots share,
in older snapshots; a file they can write there changes those snapshots. So
the directories this program creates are closed to other users (mode 0700,
see :func:`.operations.make_directory()`), and :func:`warn_if_open()` says
how to close a backup root that existed already and lets others in
(rsnapshot asks the same of its snapshot root, for the same reason).
"""

import logging
import os
import stat

from rsync_system_backup.target.operations import runs_in_process

OPEN_BITS = stat.S_IRWXG | stat.S_IRWXO
"""The permission bits that let users other than the owner in (group and other)."""

logger = logging.getLogger(__name__)


def directory_mode(context, directory, sudo=False):
    """
    Find out the permission bits of a directory.

    :param context: The execution context of the directory.
    :param directory: The directory's pathname (a string).
    :param sudo: :data:`True` to look with superuser privileges.
    :returns: The permission bits (an integer, for example ``0o755``).
    """
    if runs_in_process(context, sudo):
        return stat.S_IMODE(os.stat(directory).st_mode)
    return int(context.capture('stat', '--format=%a', '--', directory, sudo=sudo, shell=False, tty=False).strip(), 8)


def warn_if_open(context, directory, sudo=False, hostname=None):
    """
    Warn when users other than the owner can enter the backup root, and say how to close it.

    :param context: The execution context of the directory.
    :param directory: The directory that holds ``latest`` and the snapshots (a string).
    :param sudo: :data:`True` to look with superuser privileges.
    :param hostname: The system that holds it (a string), or :data:`None` for this one.
    :returns: :data:`True` when the directory lets other users in.
    """
    mode = directory_mode(context, directory, sudo=sudo)
    if not mode & OPEN_BITS:
        return False
    logger.warning("The backup directory %s lets other users in (mode %04o): a user could read the backed-up files "
                   "they own there, and change the copies that earlier snapshots share. Run 'chmod 700 %s'%s to "
                   "close it.", directory, mode, directory, " on %s" % hostname if hostname else "")
    return True
