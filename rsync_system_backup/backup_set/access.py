"""
Who can enter the backup set.

A backup holds every user's files with their owners and modes. A local user
of the backup system who can enter the directory that holds ``latest`` and
the snapshots (the backup root) can read the copies of the files their uid
owns, in ``latest`` and, through the inodes that hard-linked snapshots share,
in older snapshots; a file they can write there changes those snapshots. So
the directories this program creates are closed to other users (mode 0700,
see :func:`.operations.make_directory()`), and :func:`prepare_backup_root()`
says how to close a backup root that existed already and lets others in
(rsnapshot asks the same of its snapshot root, for the same reason).
"""

import logging
import os
import stat

from rsync_system_backup.backup_set.operations import MAKE_DIRECTORY_SCRIPT, make_private_directories, runs_in_process

CREATE_SCRIPT = MAKE_DIRECTORY_SCRIPT + ' && exec stat --format=%a -- "$1"'
"""
Shell code that creates a directory as :data:`.MAKE_DIRECTORY_SCRIPT` does
and prints its permission bits (in octal), so that both cost one command.
"""

OPEN_BITS = stat.S_IRWXG | stat.S_IRWXO
"""The permission bits that let users other than the owner in (group and other)."""

logger = logging.getLogger(__name__)


def create_directory(context, directory, sudo=False):
    """
    Create a directory and its missing parents, closed to other users (see :func:`.make_directory()`).

    :param context: The execution context of the directory.
    :param directory: The directory's pathname (a string; it may exist).
    :param sudo: :data:`True` to work with superuser privileges.
    :returns: The directory's permission bits (an integer, for example ``0o700``).
    """
    if runs_in_process(context, sudo):
        make_private_directories(directory)
        return stat.S_IMODE(os.stat(directory).st_mode)
    output = context.capture('sh', '-c', CREATE_SCRIPT, 'mkdir', directory, sudo=sudo, shell=False, tty=False)
    return int(output.strip(), 8)


def prepare_backup_root(context, directory, sudo=False, hostname=None):
    """
    Create the backup root when it is missing, and warn (saying how to close it) when it lets other users in.

    On another system (or with sudo) both are one command (see :data:`CREATE_SCRIPT`).

    :param context: The execution context of the directory.
    :param directory: The directory that holds ``latest`` and the snapshots (a string).
    :param sudo: :data:`True` to work with superuser privileges.
    :param hostname: The system that holds it (a string), or :data:`None` for this one.
    :returns: :data:`True` when the directory lets other users in.
    """
    mode = create_directory(context, directory, sudo=sudo)
    if not mode & OPEN_BITS:
        return False
    logger.warning("The backup directory %s lets other users in (mode %04o): a user could read the backed-up files "
                   "they own there, and change the copies that earlier snapshots share. Run 'chmod 700 %s'%s to "
                   "close it.", directory, mode, directory, " on %s" % hostname if hostname else "")
    return True
