"""
The names of source snapshots: the values of ``--source-snapshot`` and the hidden directory that holds them.

They live apart from :mod:`.sources.snapshots` so that the command line
can check the option, and ``--show-excludes`` name the directory, without
importing executor.
"""

import os
import posixpath

from rsync_system_backup.exceptions import InvalidOptionError

SNAPSHOT_AUTOMATICALLY = 'auto'
"""Snapshot the source when it is a btrfs subvolume that can be snapshotted (the default)."""

SNAPSHOT_NEVER = 'never'
"""Always transfer from the live source."""

SOURCE_SNAPSHOT_MODES = (SNAPSHOT_AUTOMATICALLY, SNAPSHOT_NEVER)
"""The values that ``--source-snapshot`` accepts."""

SNAPSHOT_DIRECTORY = '.rsync-system-backup.source-snapshots'
"""
The directory at the top of the source's subvolume that holds its snapshots
(only root may enter it; see :mod:`.agent.source_directory`).
"""


def check_mode(value):
    """
    Refuse an unknown value of ``--source-snapshot``.

    :param value: The value (a string).
    :returns: The value.
    :raises: :exc:`.InvalidOptionError` for anything but :data:`SOURCE_SNAPSHOT_MODES`.
    """
    if value not in SOURCE_SNAPSHOT_MODES:
        raise InvalidOptionError("Unknown source snapshot mode %r (--source-snapshot): use %s or %s."
                                 % (value, SNAPSHOT_AUTOMATICALLY, SNAPSHOT_NEVER))
    return value


def snapshot_directory(source):
    """
    Give the pathname of the directory of a source's snapshots.

    :param source: The source directory (an absolute pathname, a string).
    :returns: The pathname (a string).
    """
    return posixpath.join(source, SNAPSHOT_DIRECTORY)


def exclude_snapshot_directory(source):
    """
    Leave the directory of the source's snapshots out of the transfer, where it is.

    :param source: The source directory (an absolute pathname, a string).
    :returns: An absolute path for rsync's filter (see :data:`.DEFAULT_EXCLUDED_ROOTS`) in a list, or an empty
              list when the source holds no such directory (so other sources' command lines stay as they were).
    """
    from rsync_system_backup.sources.rerooting import literal_pattern
    pathname = snapshot_directory(os.path.realpath(source))
    return [literal_pattern(pathname) + '/'] if os.path.lexists(pathname) else []
