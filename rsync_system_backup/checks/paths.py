"""
Checks on the source and destination paths, and keeping a backup out of its own source.

The checks refuse paths that would make rsync damage the source or the
system (before anything is written); :func:`exclude_backup_from_source()`
turns a backup directory that lies inside the source into rsync filter
patterns, so the backup never copies itself.
"""

import os

from rsync_system_backup.exceptions import InvalidDestinationDirectory, InvalidSourceError
from rsync_system_backup.snapshots.naming import SNAPSHOT_GLOB
from rsync_system_backup.backup_set.marker import MARKER_FILE_NAME


def is_inside(pathname, directory):
    """
    Check whether a path lies strictly inside a directory (both absolute and normalised).

    :param pathname: The path (a string).
    :param directory: The directory (a string).
    :returns: :data:`True` when `pathname` is below `directory`.
    """
    return pathname != directory and os.path.commonpath([pathname, directory]) == directory


def escape_pattern(pathname):
    """
    Escape the characters that rsync's filter patterns treat as wildcards.

    :param pathname: A literal path (a string).
    :returns: The path as a pattern that only matches itself.
    """
    return ''.join('\\' + c if c in '*?[\\' else c for c in pathname)


def check_source(source):
    """
    Refuse a source that isn't an existing directory.

    :param source: The source (a string).
    :raises: :exc:`.InvalidSourceError`.
    """
    if not os.path.isdir(source):
        problem = "is not a directory" if os.path.exists(source) else "doesn't exist"
        raise InvalidSourceError("The source %s %s: give the directory to back up." % (source, problem))


def check_local_destination(source, directory):
    """
    Refuse a local destination that would damage the source or the system.

    :param source: The source (a string), or :data:`None` when nothing is transferred.
    :param directory: The destination directory (a string).
    :raises: :exc:`.InvalidDestinationDirectory`.
    """
    destination = os.path.realpath(directory)
    if destination == '/':
        raise InvalidDestinationDirectory("The destination is the root directory, which the backup would "
                                          "overwrite: give a directory such as /mnt/backups/latest.")
    if source is None:
        return
    source = os.path.realpath(source)
    if destination == source:
        raise InvalidDestinationDirectory("The destination %s is the source itself: give another directory."
                                          % directory)
    if is_inside(source, destination):
        raise InvalidDestinationDirectory("The source %s is inside the destination %s, which the backup would "
                                          "overwrite: give a destination outside the source." % (source, directory))


def exclude_backup_from_source(source, directory, parent_directory):
    """
    Leave a local backup out of its own source.

    :param source: The source directory (a string).
    :param directory: The directory rsync writes to (``latest``, a string).
    :param parent_directory: The directory that holds it and the snapshots (a string).
    :returns: rsync filter patterns of absolute paths (for ``--filter=-/``):
              the whole backup directory when it lies inside the source;
              ``latest``, the snapshots and the marker and lock files when
              they sit directly in the source; nothing otherwise.
    """
    source = os.path.realpath(source)
    backups = os.path.realpath(parent_directory)
    if backups == source:
        return [escape_pattern(os.path.realpath(directory)) + '/',
                escape_pattern(backups) + '/' + SNAPSHOT_GLOB,
                escape_pattern(backups) + '/' + escape_pattern(MARKER_FILE_NAME) + '*']
    if is_inside(backups, source):
        return [escape_pattern(backups) + '/']
    return []
