"""
Protection against writing a backup over a directory that isn't one.

A run refuses to mirror the source into a directory that already holds files
unless that directory has been a backup target before: rsync's ``--delete``
would otherwise wipe it (the classic accident is swapping SOURCE and
DESTINATION). A backup target is recognised by :data:`MARKER_FILE_NAME` in
the directory that holds ``latest`` and the snapshots, which this program
creates on the first backup; snapshots named by version 1.1 count as well,
so existing backup sets keep working.

The marker also remembers the source that the set holds backups of (host
and path, see :func:`describe_source()`): a backup of another source is
refused, because it would replace the set's ``latest`` with a copy of
something else (``rsync-system-backup -b /srv/backups/latest`` backs up
``/``, whatever the set held before). Sets made before the marker recorded
the source learn it on their next backup.
"""

import logging
import posixpath
import re
import socket

from rsync_system_backup.exceptions import SourceMismatchError, UnmarkedDestinationError
from rsync_system_backup.snapshots.naming import LEGACY_SNAPSHOT_NAME_PATTERN
from rsync_system_backup.backup_set.operations import list_directory, make_directory, read_file, write_file

MARKER_FILE_NAME = '.rsync-system-backup'
"""The name of the file that marks a backup target (hidden, and outside rsync's reach)."""

MARKER_TEXT = ("This directory holds backups made by rsync-system-backup.\n"
               "Removing this file makes the next backup refuse to overwrite an existing 'latest' directory.\n")
"""What the marker file says to a person who finds it (the source follows, see :data:`SOURCE_LINE`)."""

SOURCE_LINE = re.compile(r'^Source: (.+)$', re.MULTILINE)
"""The marker file's line that names the source of the backups (``Source: HOST:PATH``)."""

logger = logging.getLogger(__name__)


def has_legacy_snapshots(names):
    """
    Check for snapshots named by version 1.1 (``YYYY-MM-DD HH:MM:SS``).

    :param names: The names in the backup directory (strings).
    :returns: :data:`True` when one of them is such a snapshot.
    """
    return any(LEGACY_SNAPSHOT_NAME_PATTERN.match(name) for name in names)


def describe_source(source, hostname=None):
    """
    Name a source the way the marker file records it.

    :param source: The source directory (an absolute path, a string).
    :param hostname: The name of the system that holds it (defaults to this system's).
    :returns: ``HOST:PATH`` (a string), for example ``backup-host:/home``.
    """
    path = source.rstrip('/') or '/'
    return '%s:%s' % (hostname or socket.gethostname(), path)


def check_recorded_source(context, marker, source, accept_existing=False, sudo=False, dry_run=False):
    """
    Compare the source that a backup set's marker records with the source of this run, and record it.

    :param context: The execution context of the marker file.
    :param marker: The marker file's pathname (a string).
    :param source: The source of this run (see :func:`describe_source()`).
    :param accept_existing: :data:`True` to make the set a backup of `source` from now on.
    :param sudo: :data:`True` to read and write with superuser privileges.
    :param dry_run: :data:`True` to check without writing.
    :raises: :exc:`.SourceMismatchError` when the marker records another
             source and `accept_existing` is :data:`False`.
    """
    match = SOURCE_LINE.search(read_file(context, marker, sudo=sudo))
    recorded = match.group(1).strip() if match else None
    if recorded == source:
        return
    if recorded is None:
        logger.info("%s the source %s in %s.", "Would record" if dry_run else "Recording", source, marker)
    elif not accept_existing:
        raise SourceMismatchError(
            "The backup set in %s holds backups of %s, not of %s: give %s as SOURCE (with one argument, "
            "SOURCE is /), or run again with --accept-existing to make the set a backup of %s from now on."
            % (posixpath.dirname(marker), recorded, source, recorded.split(':', 1)[-1], source)
        )
    else:
        logger.warning("The backup set in %s held backups of %s; it %s backups of %s from now on "
                       "(--accept-existing).", posixpath.dirname(marker), recorded,
                       "would hold" if dry_run else "holds", source)
    if not dry_run:
        write_file(context, marker, MARKER_TEXT + 'Source: %s\n' % source, sudo=sudo)


def ensure_backup_target(context, directory, parent_directory, accept_existing=False, sudo=False, dry_run=False,
                         source=None, check_new_set=None):
    """
    Check that a backup may write to a directory, and mark its parent as a backup target.

    :param context: The execution context of the directory.
    :param directory: The directory rsync writes to (``latest``, a string).
    :param parent_directory: The directory that holds it and the snapshots (a string).
    :param accept_existing: :data:`True` when the user confirmed that an
                            existing, unmarked directory may be overwritten,
                            or a set of another source may change its source.
    :param sudo: :data:`True` to list and write with superuser privileges.
    :param dry_run: :data:`True` to check without creating the marker.
    :param source: The source of the backup (see :func:`describe_source()`),
                   which the marker records, or :data:`None`.
    :param check_new_set: A function without arguments that is called before
                          a new backup set is marked (also in a dry run) and
                          raises to refuse its place (see
                          :func:`.check_new_set_location()`), or :data:`None`.
    :raises: :exc:`.UnmarkedDestinationError` when the directory holds files
             but was never a backup target and the user didn't confirm;
             :exc:`.SourceMismatchError` (see :func:`check_recorded_source()`);
             whatever `check_new_set` raises.
    """
    names = list_directory(context, parent_directory, sudo=sudo)
    marker = posixpath.join(parent_directory, MARKER_FILE_NAME)
    if MARKER_FILE_NAME in names:
        if source:
            check_recorded_source(context, marker, source, accept_existing=accept_existing, sudo=sudo,
                                  dry_run=dry_run)
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
    if check_new_set and not has_legacy_snapshots(names):
        check_new_set()
    if dry_run:
        logger.info("Would mark %s as a backup target (%s).", parent_directory, reason)
        return
    logger.info("Marking %s as a backup target (%s).", parent_directory, reason)
    make_directory(context, parent_directory, sudo=sudo)
    write_file(context, marker, MARKER_TEXT + ('Source: %s\n' % source if source else ''), sudo=sudo)


def mark_daemon_set(context, parent_directory, sudo=False, dry_run=False):
    """
    Mark the backup set of an rsync daemon's module, in the run of its ``post-xfer exec`` command.

    The daemon's transfer has filled ``latest``; the set gets its marker with
    its first snapshot, so that ``--max-age`` (see :mod:`.actions.max_age`)
    knows it as a backup set. The source is the client's, unknown here, so
    the marker records none.

    :param context: The execution context of the directory.
    :param parent_directory: The directory that holds the module's directory and the snapshots (a string).
    :param sudo: :data:`True` to list and write with superuser privileges.
    :param dry_run: :data:`True` to only say so.
    """
    if MARKER_FILE_NAME in list_directory(context, parent_directory, sudo=sudo):
        return
    if dry_run:
        logger.info("Would mark %s as a backup target (an rsync daemon's module).", parent_directory)
        return
    logger.info("Marking %s as a backup target (an rsync daemon's module).", parent_directory)
    write_file(context, posixpath.join(parent_directory, MARKER_FILE_NAME), MARKER_TEXT, sudo=sudo)
