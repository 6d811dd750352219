"""
Timestamped snapshots of the destination directory.

A snapshot is made by the snapshot method (see :mod:`.snapshots.methods`)
under a temporary name that ends in :data:`INCOMPLETE_SUFFIX`, and renamed to
its final name only when the copy succeeded; a snapshot that rotation removes
is first renamed to a name ending in :data:`REMOVING_SUFFIX`. So a directory
with a snapshot name is always complete. What an interrupted copy or removal leaves behind is removed
by the next snapshot or rotation.
"""

import datetime
import logging
import posixpath
import re
import time

from rsync_system_backup.processes.signals import cleanup
from rsync_system_backup.backup_set.operations import list_directory, remove_trees, rename_directory

SNAPSHOT_NAME_FORMAT = '%Y-%m-%d_%H-%M-%S'
"""The :func:`~time.strftime()` format of new snapshot names (no spaces or colons)."""

INCOMPLETE_SUFFIX = '.incomplete'
"""The suffix of a snapshot that is still being copied."""

REMOVING_SUFFIX = '.removing'
"""The suffix of a snapshot that is being removed."""

LEFTOVER_SUFFIXES = (INCOMPLETE_SUFFIX, REMOVING_SUFFIX)
"""The suffixes of snapshots that an interrupted run may leave behind."""

SNAPSHOT_NAME_PATTERN = re.compile(r'''
    ^ (?P<year>\d{4}) - (?P<month>\d{2}) - (?P<day>\d{2})
    (?: _ (?=\d{2}-) | \x20 (?=\d{2}:\d{2}:\d{2}$) )
    (?P<hour>\d{2}) [-:] (?P<minute>\d{2}) [-:] (?P<second>\d{2}) $
''', re.VERBOSE)
"""
Matches exactly the snapshot names this program writes: the current format
(``2024-05-01_13-45-00``) and the format of version 1.1
(``2024-05-01 13:45:00``). The named groups are the ones rotate-backups
expects of a timestamp pattern.
"""

LEGACY_SNAPSHOT_NAME_PATTERN = re.compile(r'^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$')
"""Matches the snapshot names of rsync-system-backup 1.1 (``2024-05-01 13:45:00``)."""

SNAPSHOT_GLOB = '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9][_ ][0-9][0-9][-:][0-9][0-9][-:][0-9][0-9]*'
"""A shell and rsync pattern that matches snapshot names in both formats, and their temporary variants."""

logger = logging.getLogger(__name__)


def format_snapshot_name(moment):
    """
    Name the snapshot taken at a given moment.

    :param moment: A :class:`datetime.datetime` value.
    :returns: The snapshot's name (a string).
    """
    return moment.strftime(SNAPSHOT_NAME_FORMAT)


def is_snapshot_name(name):
    """
    Check whether a name is that of a complete snapshot.

    :param name: A directory entry's name (a string).
    :returns: :data:`True` when the name matches :data:`SNAPSHOT_NAME_PATTERN`.
    """
    return SNAPSHOT_NAME_PATTERN.match(name) is not None


def is_leftover_name(name):
    """
    Check whether a name is that of a snapshot being copied or removed (or left behind by an interrupted run).

    :param name: A directory entry's name (a string).
    :returns: :data:`True` for a snapshot name followed by one of :data:`LEFTOVER_SUFFIXES`.
    """
    return any(name.endswith(suffix) and is_snapshot_name(name[:-len(suffix)]) for suffix in LEFTOVER_SUFFIXES)


def choose_snapshot_name(existing_names, clock=datetime.datetime.now):
    """
    Pick a name for a new snapshot that no existing entry has.

    Names have a resolution of one second; when the current second's name is
    taken (two runs within one second), this waits for the next second.

    :param existing_names: The names in the snapshot directory (a collection of strings).
    :param clock: A function returning the current local time.
    :returns: The new snapshot's name (a string).
    """
    while True:
        name = format_snapshot_name(clock())
        if name not in existing_names:
            return name
        time.sleep(0.1)


def remove_leftovers(context, parent_directory, names, sudo=False, ionice=None, remove=remove_trees):
    """
    Remove what interrupted snapshot copies and removals left behind.

    :param context: The destination's execution context.
    :param parent_directory: The directory that holds the snapshots (a string).
    :param names: The names in that directory (a list of strings).
    :param sudo: :data:`True` to remove them with superuser privileges.
    :param ionice: The I/O scheduling class for the removal.
    :param remove: The function that removes them (with the signature of
                   :func:`.operations.remove_trees()`, which is the default).
    :returns: The removed names (a list of strings).
    """
    leftovers = sorted(name for name in names if is_leftover_name(name))
    for name in leftovers:
        logger.warning("Removing %s, left behind by an interrupted run.", posixpath.join(parent_directory, name))
    remove(context, [posixpath.join(parent_directory, name) for name in leftovers], sudo=sudo, ionice=ionice)
    return leftovers


def create_snapshot(context, directory, parent_directory, copy_tree, sudo=False, dry_run=False, ionice=None,
                    remove=remove_trees, flush=True, names=None):
    """
    Snapshot a directory, atomically.

    :param context: The destination's execution context.
    :param directory: The directory to snapshot (a string).
    :param parent_directory: The directory that holds the snapshots (a string).
    :param copy_tree: The function that makes the snapshot: it takes the
                      directory and the (temporary) pathname of the snapshot
                      and raises :exc:`.SnapshotFailedError` when it fails
                      (see :meth:`.SnapshotMethod.copy_tree()`).
    :param sudo: :data:`True` to list, rename and remove with superuser privileges.
    :param dry_run: :data:`True` to only say what would be done.
    :param ionice: The I/O scheduling class for removals.
    :param remove: The function that removes leftovers and a failed copy
                   (with the signature of :func:`.operations.remove_trees()`,
                   which is the default).
    :param flush: :data:`True` to flush the filesystem before the snapshot
                  gets its final name (see :func:`.rename_directory()`),
                  :data:`False` when `copy_tree` leaves the snapshot on disk
                  by itself (see :attr:`.SnapshotMethod.copies_reach_disk`).
    :param names: The names in `parent_directory` (strings), when they were
                  listed under the lock that the run still holds (see
                  :attr:`.Replacement.parent_names`): no other run adds or
                  removes a snapshot there meanwhile, and nothing else of
                  this run has a name like a snapshot's, so they serve, and
                  the snapshot costs one listing less (one round trip over
                  SSH). :data:`None` (the default) to list them here.
    :returns: The pathname of the new snapshot (a string).
    :raises: :exc:`.SnapshotFailedError` when the copy fails; nothing is left
             behind under a snapshot name then.
    """
    if names is None:
        names = list_directory(context, parent_directory, sudo=sudo)
    name = choose_snapshot_name(set(names))
    final_pathname = posixpath.join(parent_directory, name)
    if dry_run:
        logger.info("Would create snapshot %s (dry run).", final_pathname)
        return final_pathname
    remove_leftovers(context, parent_directory, names, sudo=sudo, ionice=ionice, remove=remove)
    temporary_pathname = final_pathname + INCOMPLETE_SUFFIX
    logger.info("Creating snapshot %s ..", final_pathname)
    try:
        copy_tree(directory, temporary_pathname)
        rename_directory(context, temporary_pathname, final_pathname, sudo=sudo, flush=flush)
    except BaseException:
        with cleanup(failing=True):
            remove(context, [temporary_pathname], sudo=sudo)
        raise
    return final_pathname
