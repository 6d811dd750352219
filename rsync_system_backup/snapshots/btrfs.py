"""
btrfs subvolumes: recognising, creating, snapshotting and deleting them.

Each function takes the execution context of the destination, so the
``btrfs`` commands run where the filesystem is (locally or over SSH).
"""

import os

from rsync_system_backup.backup_set.operations import runs_in_process

SUBVOLUME_INODE = 256
"""The inode number of the top directory of every btrfs subvolume."""

INODES_SCRIPT = 'for path do stat --format=%i -- "$path" 2> /dev/null || echo 0; done'
"""Shell code that prints the inode number of each of its arguments (0 for those that don't exist)."""


def find_subvolumes(context, pathnames, sudo=False):
    """
    Pick the btrfs subvolumes out of a list of directories on a btrfs filesystem.

    :param context: The execution context of the directories.
    :param pathnames: Pathnames of directories on btrfs (a list of strings;
                      those that don't exist are no subvolumes).
    :param sudo: :data:`True` to look with superuser privileges.
    :returns: The pathnames that are subvolumes (a list of strings, in the given order).

    On btrfs, and only there, the top directory of a subvolume (and nothing
    else) has inode number :data:`SUBVOLUME_INODE`.
    """
    if not pathnames:
        return []
    if runs_in_process(context, sudo):
        inodes = [os.lstat(pathname).st_ino if os.path.lexists(pathname) else 0 for pathname in pathnames]
    else:
        output = context.capture('sh', '-c', INODES_SCRIPT, 'inodes', *pathnames, sudo=sudo, shell=False, tty=False)
        inodes = [int(line) for line in output.split()]
    return [pathname for pathname, inode in zip(pathnames, inodes) if inode == SUBVOLUME_INODE]


def create_subvolume(context, pathname, sudo=False):
    """
    Create an empty btrfs subvolume.

    :param context: The execution context of the filesystem.
    :param pathname: Where to create it (a string; it must not exist, its parent must).
    :param sudo: :data:`True` to create it with superuser privileges.
    """
    context.execute('btrfs', '-q', 'subvolume', 'create', '--', pathname, sudo=sudo, shell=False, tty=False)


def snapshot_subvolume(context, subvolume, pathname, sudo=False):
    """
    Take a read-only snapshot of a btrfs subvolume.

    :param context: The execution context of the filesystem.
    :param subvolume: The subvolume to snapshot (a string).
    :param pathname: Where to create the snapshot (a string; it must not exist).
    :param sudo: :data:`True` to snapshot with superuser privileges.
    :returns: The finished command (check its ``returncode``).
    """
    return context.execute('btrfs', '-q', 'subvolume', 'snapshot', '-r', '--', subvolume, pathname,
                           check=False, sudo=sudo, shell=False, tty=False)


def delete_subvolumes(context, pathnames, sudo=False, ionice=None):
    """
    Delete btrfs subvolumes (read-only snapshots too), all of them with one command.

    :param context: The execution context of the filesystem.
    :param pathnames: The subvolumes (a list of strings).
    :param sudo: :data:`True` to delete them with superuser privileges.
    :param ionice: The I/O scheduling class for the command (a string or :data:`None`).

    The directories go at once; btrfs frees their blocks in the background.
    """
    if pathnames:
        context.execute('btrfs', '-q', 'subvolume', 'delete', '--', *pathnames,
                        sudo=sudo, ionice=ionice, shell=False, tty=False)


def subvolume_uuid(context, pathname, sudo=False):
    """
    Read the UUID of a btrfs subvolume (its own, which every snapshot gets anew and keeps when renamed).

    :param context: The execution context of the filesystem.
    :param pathname: The subvolume (a string).
    :param sudo: :data:`True` to look with superuser privileges.
    :returns: The UUID (a string), or :data:`None` when ``btrfs subvolume show`` fails or doesn't name one.
    """
    shown = context.execute('btrfs', 'subvolume', 'show', '--', pathname, capture=True, capture_stderr=True,
                            check=False, sudo=sudo, shell=False, tty=False)
    if shown.returncode != 0:
        return None
    for line in shown.stdout.decode('utf-8', 'replace').splitlines():
        label, _, value = line.strip().partition(':')
        if label == 'UUID' and value.strip() not in ('', '-'):
            return value.strip()
    return None
