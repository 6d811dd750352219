"""
Creating a new backup set only where it is clearly meant, not on the filesystem below an unmounted backup disk.

When the backup disk isn't mounted, its mount point is an empty directory
on the filesystem underneath (usually the root filesystem), and a first
backup into it would quietly create a new backup set there: the backup
fills the wrong disk, and the snapshots it makes there fool the monitoring.
Before a new set gets its marker (see :func:`.ensure_backup_target()`),
:func:`check_new_set_location()` refuses:

1. a set below a mount point that ``/etc/fstab`` or a systemd mount unit
   names, whose filesystem isn't mounted (see :mod:`.disks.configured_mounts`;
   an encrypted disk is mounted through its fstab entry);
2. a set whose nearest existing directory (the set's directory itself, or
   the directory it would be created in) is empty and looks like a mount
   point (it lies in ``/mnt``, ``/media`` or ``/run/media``, or is a
   directory of its own directly below ``/``), while nothing is mounted
   there: the set would go to the filesystem that holds ``/mnt`` and so on,
   usually the root filesystem. A disk mounted on that directory, or on one
   between it and ``/mnt`` (``/mnt/usb`` for ``/mnt/usb/backups``), counts
   as mounted, also when it is empty. This check is left out when ``-m``
   names the mount point, which is mounted by then.

Each message says which check fired and how to go on: mount the disk, give
``-m`` to mount it for the run, or ``--create-set``
(:attr:`.RsyncSystemBackup.create_set`) to create the set there anyway.
Existing sets (with a marker, or version 1.1's snapshots) aren't checked.
"""

import os
import posixpath

from rsync_system_backup.disks.configured_mounts import (
    FSTAB_FILE,
    find_mount,
    find_unmounted_mount_point,
    is_at_or_below,
    read_mount_configuration,
)
from rsync_system_backup.exceptions import NewBackupSetRefused
from rsync_system_backup.backup_set.operations import runs_in_process

MOUNT_DIRECTORIES = ('/mnt', '/media', '/run/media')
"""The directories that hold mount points by convention (``/run/media`` is where udisks mounts)."""

TOP_DIRECTORIES = frozenset([
    'bin', 'boot', 'dev', 'etc', 'home', 'lib', 'lib32', 'lib64', 'libx32', 'lost+found', 'media', 'mnt', 'opt',
    'proc', 'root', 'run', 'sbin', 'snap', 'srv', 'sys', 'tmp', 'usr', 'var',
])
"""The standard directories directly below ``/``; any other one there (``/backup``) may be a mount point."""

SURVEY_SCRIPT = r'''
resolved=$(realpath -m -- "$1" && echo .) || exit
resolved=${resolved%??}
existing=$resolved
while [ ! -d "$existing" ]; do existing=${existing%/*}; existing=${existing:-/}; done
if [ -n "$(find "$existing" -mindepth 1 -maxdepth 1 -printf x -quit)" ]; then state=full; else state=empty; fi
printf '%s\0%s\0%s\0' "$resolved" "$existing" "$state"
'''
"""
Shell code that prints, each followed by a NUL byte, its first argument
with symbolic links resolved, the nearest directory at or above it that
exists, and ``empty`` or ``full`` for that directory. As in
:data:`.MARKED_DIRECTORIES_SCRIPT`, trailing newlines of a name survive and
parents are found by cutting the resolved path; ``find`` prints an ``x``
for the first entry, whatever its name (``ls`` would print a name of only
newlines as nothing).
"""

OVERRIDE_ADVICE = "--create-set creates the set there anyway"
"""The end of each message: how to create the set where it was refused."""


def survey_set_directory(context, directory, sudo=False):
    """
    Find where a new set's directory would be created.

    :param context: The execution context of the directory.
    :param directory: The set's directory (a string; it may not exist).
    :param sudo: :data:`True` to look with superuser privileges.
    :returns: A tuple of the directory with symbolic links resolved, the
              nearest directory at or above it that exists (strings) and
              :data:`True` when that one is empty.
    """
    if not runs_in_process(context, sudo):
        output = context.capture('sh', '-c', SURVEY_SCRIPT, 'survey', directory, sudo=sudo, shell=False, tty=False)
        resolved, existing, state = output.split('\0')[:3]
        return resolved, existing, state == 'empty'
    resolved = os.path.realpath(directory)
    existing = resolved
    while not os.path.isdir(existing):
        existing = os.path.dirname(existing)
    return resolved, existing, not os.listdir(existing)


def find_mount_area(directory):
    """
    Find the directory by whose convention a directory looks like a mount point.

    :param directory: An absolute, normalised path (a string).
    :returns: The one of :data:`MOUNT_DIRECTORIES` that holds `directory`
              (or is it); ``/`` for a directory directly below ``/`` that
              isn't one of :data:`TOP_DIRECTORIES`; :data:`None` otherwise.
    """
    for area in MOUNT_DIRECTORIES:
        if is_at_or_below(directory, area):
            return area
    if directory != '/' and posixpath.dirname(directory) == '/' and directory[1:] not in TOP_DIRECTORIES:
        return '/'
    return None


def is_unmounted_mount_point(directory, mount):
    """
    Check whether a directory looks like a mount point with nothing mounted on it.

    :param directory: An absolute, normalised path (a string).
    :param mount: The mount point of the filesystem that holds it (see :func:`.find_mount()`).
    :returns: :data:`True` when `directory` looks like a mount point (see
              :func:`find_mount_area()`) but is on a filesystem mounted on
              that area or further up: ``/mnt/usb`` on the root filesystem,
              not ``/mnt/usb`` itself mounted, nor ``/mnt/usb/backups``
              with ``/mnt/usb`` mounted.
    """
    area = find_mount_area(directory)
    if area is None or mount == directory:
        return False
    return not (mount != area and is_at_or_below(mount, area))


def describe_origin(origin):
    """
    Name the file that configures a mount point, for a message.

    :param origin: ``/etc/fstab`` or a mount unit's pathname (a string).
    :returns: ``/etc/fstab`` or ``the systemd unit PATHNAME`` (a string).
    """
    return origin if origin == FSTAB_FILE else "the systemd unit %s" % origin


def check_new_set_location(context, directory, sudo=False, mount_point=None):
    """
    Refuse to create a new backup set below a backup disk's mount point that isn't mounted.

    :param context: The execution context of the directory.
    :param directory: The new set's directory (the one that holds ``latest``, a string).
    :param sudo: :data:`True` to look with superuser privileges.
    :param mount_point: The mount point of ``-m`` (mounted by now), or :data:`None`.
    :raises: :exc:`.NewBackupSetRefused` naming the check that fired (see the
             module's documentation) and what to do.
    """
    resolved, existing, empty = survey_set_directory(context, directory, sudo=sudo)
    # Every user may read these files (and the mount table), so no sudo is needed.
    configuration = read_mount_configuration(context)
    underneath = find_mount(existing, configuration.mounted)
    unmounted = find_unmounted_mount_point(configuration, resolved)
    if unmounted:
        configured, origin = unmounted
        raise NewBackupSetRefused(
            "Refusing to create the new backup set %s: it lies below %s, which %s names as a mount point, but "
            "nothing is mounted there, so the backup would go to the filesystem mounted on %s. Mount the backup "
            "disk first, or give -m %s to mount it for the run; %s."
            % (directory, configured, describe_origin(origin), underneath, configured, OVERRIDE_ADVICE)
        )
    if mount_point or not empty or not is_unmounted_mount_point(existing, underneath):
        return
    raise NewBackupSetRefused(
        "Refusing to create the new backup set %s: %s is an empty directory that looks like a mount point, but "
        "nothing is mounted there, so the backup would go to the filesystem mounted on %s. Mount the backup disk "
        "first, or give -m MOUNT_POINT to mount it for the run; %s."
        % (directory, existing, underneath, OVERRIDE_ADVICE)
    )
