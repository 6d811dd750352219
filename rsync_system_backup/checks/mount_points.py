"""
Refusing a destination directory that is a mount point, before anything is written.

``latest`` and its snapshots must live on one filesystem: snapshots are made
next to ``latest`` by renames and hard links (or reflinks), which can't cross
from one filesystem to another. A destination that is itself a mount point
(``rsync-system-backup / /mnt/usb`` with the disk mounted on ``/mnt/usb``)
would put the snapshots, and with the link-dest method the whole transfer,
on the filesystem *below* the mount point, which for ``/mnt`` is the root
filesystem. The same goes for a destination that is on another filesystem
than its parent directory for any other reason (a symbolic link, a bind
mount). :func:`check_destination_filesystem()` refuses both and says what to
give instead: a directory below the mount point.
"""

import os
import posixpath

from rsync_system_backup.disks.configured_mounts import MOUNTINFO_FILE, find_mount, parse_mountinfo
from rsync_system_backup.exceptions import InvalidDestinationDirectory
from rsync_system_backup.backup_set.operations import runs_in_process
from rsync_system_backup.processes.pending import PendingAnswer, ask

FILESYSTEM_SCRIPT = '''
[ -d "$1" ] || exit 0
mount=$(findmnt --noheadings --output=TARGET --target "$1" 2> /dev/null)
if [ ! -L "$1" ] && [ "$mount" = "$(realpath -- "$1")" ]; then
    echo mount-point
elif [ "$mount" != "$(findmnt --noheadings --output=TARGET --target "$2" 2> /dev/null)" ]; then
    echo other-filesystem
fi
'''
"""
Shell code that prints ``mount-point`` when its first argument is a mount
point, ``other-filesystem`` when it lies in another mount than its second
argument, and nothing otherwise (or when the first doesn't exist). Mounts
are compared (``findmnt`` reads the mount table), not device numbers: a
btrfs subvolume has a device number of its own (``df`` and ``mountpoint``
can take it for a mount point), but it is on the same filesystem as its
parent.
"""


def read_mount_points():
    """
    List the mount points of this process's mount namespace.

    :returns: A set of pathnames (strings), from ``/proc/self/mountinfo``.
    """
    with open(MOUNTINFO_FILE, 'rb') as handle:
        return parse_mountinfo(handle.read())


def ask_relation(context, directory, parent_directory, sudo=False):
    """
    Start finding out how a destination directory relates to the filesystem of its parent.

    :param context: The execution context of the directory.
    :param directory: The destination directory (``latest``, a string).
    :param parent_directory: The directory that holds it (a string).
    :param sudo: :data:`True` to look with superuser privileges.
    :returns: A :class:`.PendingAnswer` whose result is ``mount-point``,
              ``other-filesystem`` or an empty string (see
              :func:`check_destination_filesystem()`).
    """
    if not runs_in_process(context, sudo):
        return ask(context, 'sh', '-c', FILESYSTEM_SCRIPT, 'filesystem', directory, parent_directory, sudo=sudo)
    return PendingAnswer(value=find_local_relation(directory, parent_directory))


def find_local_relation(directory, parent_directory):
    """
    Find out how a local destination directory relates to the filesystem of its parent (see :func:`ask_relation()`).

    :param directory: The destination directory (``latest``, a string).
    :param parent_directory: The directory that holds it (a string).
    :returns: ``mount-point``, ``other-filesystem`` or an empty string.
    """
    if not os.path.isdir(directory):
        return ''
    mount_points = read_mount_points()
    mount = find_mount(os.path.realpath(directory), mount_points)
    if not os.path.islink(directory) and mount == os.path.realpath(directory):
        return 'mount-point'
    if mount != find_mount(os.path.realpath(parent_directory), mount_points):
        return 'other-filesystem'
    return ''


def check_destination_filesystem(directory, parent_directory, relation):
    """
    Refuse a destination directory that is a mount point or on another filesystem than its parent.

    :param directory: The destination directory (``latest``, a string).
    :param parent_directory: The directory that holds it and the snapshots (a string).
    :param relation: What :func:`ask_relation()` found out (a string).
    :raises: :exc:`.InvalidDestinationDirectory`, naming a directory below
             the mount point to give instead.
    """
    relation = relation.strip()
    if not relation:
        return
    if relation == 'mount-point':
        problem = "is a mount point"
        advice = "a directory below it instead, such as %s" % posixpath.join(directory, 'backups', 'latest')
    else:
        problem = "is on another filesystem than %s, which holds it" % parent_directory
        advice = "the directory itself, not a symbolic link to it, or a directory below a mount point"
    raise InvalidDestinationDirectory("The destination %s %s, but latest and the snapshots beside it must be on "
                                      "one filesystem: give %s." % (directory, problem, advice))
