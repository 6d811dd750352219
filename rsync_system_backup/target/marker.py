"""
Protection against writing a backup over a directory that isn't one.

A run refuses to mirror the source into a directory that already holds files
unless that directory has been a backup target before: rsync's ``--delete``
would otherwise wipe it (the classic accident is swapping SOURCE and
DESTINATION). A backup target is recognised by :data:`MARKER_FILE_NAME` in
the directory that holds ``latest`` and the snapshots, which this program
creates on the first backup; snapshots named by version 1.1 count as well,
so existing backup sets keep working.
"""

import logging
import posixpath

from rsync_system_backup.exceptions import UnmarkedDestinationError
from rsync_system_backup.snapshots.naming import LEGACY_SNAPSHOT_NAME_PATTERN
from rsync_system_backup.target.operations import list_directory, make_directory, write_file

MARKER_FILE_NAME = '.rsync-system-backup'
"""The name of the file that marks a backup target (hidden, and outside rsync's reach)."""

MARKER_TEXT = ("This directory holds backups made by rsync-system-backup.\n"
               "Removing this file makes the next backup refuse to overwrite an existing 'latest' directory.\n")
"""What the marker file says to a person who finds it."""

logger = logging.getLogger(__name__)


def has_legacy_snapshots(names):
    """
    Check for snapshots named by version 1.1 (``YYYY-MM-DD HH:MM:SS``).

    :param names: The names in the backup directory (strings).
    :returns: :data:`True` when one of them is such a snapshot.
    """
    return any(LEGACY_SNAPSHOT_NAME_PATTERN.match(name) for name in names)


def ensure_backup_target(context, directory, parent_directory, accept_existing=False, sudo=False, dry_run=False):
    """
    Check that a backup may write to a directory, and mark its parent as a backup target.

    :param context: The execution context of the directory.
    :param directory: The directory rsync writes to (``latest``, a string).
    :param parent_directory: The directory that holds it and the snapshots (a string).
    :param accept_existing: :data:`True` when the user confirmed that an
                            existing, unmarked directory may be overwritten.
    :param sudo: :data:`True` to list and write with superuser privileges.
    :param dry_run: :data:`True` to check without creating the marker.
    :raises: :exc:`.UnmarkedDestinationError` when the directory holds files
             but was never a backup target and the user didn't confirm.
    """
    names = list_directory(context, parent_directory, sudo=sudo)
    if MARKER_FILE_NAME in names:
        return
    if has_legacy_snapshots(names):
        reason = "it holds snapshots of rsync-system-backup 1.1"
    elif not list_directory(context, directory, sudo=sudo):
        reason = "it is new"
    elif accept_existing:
        reason = "its existing files may be overwritten (--accept-existing)"
    else:
        raise UnmarkedDestinationError(
            "The destination %s already holds files but was never a backup target: the backup would replace "
            "them with a copy of the source (did you swap SOURCE and DESTINATION?). If it really is the place "
            "for the backup, run again with --accept-existing." % directory
        )
    if dry_run:
        logger.info("Would mark %s as a backup target (%s).", parent_directory, reason)
        return
    logger.info("Marking %s as a backup target (%s).", parent_directory, reason)
    make_directory(context, parent_directory, sudo=sudo)
    write_file(context, posixpath.join(parent_directory, MARKER_FILE_NAME), MARKER_TEXT, sudo=sudo)
