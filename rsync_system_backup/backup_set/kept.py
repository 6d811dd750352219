"""
Kept snapshots: snapshots that rotation never removes, each under a name.

``--keep=NAME`` keeps the snapshot that a run makes (say, before an
upgrade), ``--keep=NAME:SNAPSHOT`` an existing one, and
``--release=NAME`` lets one go: from then on rotation treats it like any
other. A kept snapshot stays outside rotation altogether (see
:func:`.plan_rotation()`): rotation neither removes it nor counts it, so the
other snapshots are kept and removed as if it weren't there.

The names are recorded in :data:`KEPT_FILE_NAME`, in the set's directory
beside the marker, one ``NAME SNAPSHOT`` line each. The file is written the
way the marker is (see :func:`.operations.write_file()`): under an
unpredictable name beside it, then renamed into place, so a symbolic link
planted under its name is replaced, never followed; it is read without
following one (see :func:`.operations.read_file()`). On an SSH destination
each is one command there, through the run's shared connection. Changes are
made under the set's lock (see :mod:`.backup_set.lock`). A name whose
snapshot is gone (removed by hand) is dropped the next time the file is written.

A line that can't be read stops rotation before it removes anything, until
it is put right: a mark that is misread could let a kept snapshot go.
"""

import logging
import posixpath

from rsync_system_backup.checks.values import is_keep_name
from rsync_system_backup.exceptions import KeptSnapshotError
from rsync_system_backup.snapshots.naming import is_snapshot_name
from rsync_system_backup.backup_set.marker import MARKER_FILE_NAME
from rsync_system_backup.backup_set.operations import list_directory, read_file, write_file

KEPT_FILE_NAME = MARKER_FILE_NAME + '.kept'
"""The name of the file that records the kept snapshots (beside the marker, hidden and outside rsync's reach)."""

KEPT_FILE_HEADER = ("# Snapshots that rotation never removes, one 'NAME SNAPSHOT' a line; change them with\n"
                    "# rsync-system-backup --keep=NAME:SNAPSHOT and --release=NAME.\n")
"""The comment at the top of :data:`KEPT_FILE_NAME`, for a person who finds it."""

logger = logging.getLogger(__name__)


def parse_kept(text, pathname):
    """
    Read the names of the kept snapshots from the text of :data:`KEPT_FILE_NAME`.

    :param text: The file's text (a string).
    :param pathname: The file's pathname (a string, for the message).
    :returns: A list of (name, snapshot) tuples, in the file's order.
    :raises: :exc:`.KeptSnapshotError` for a line that isn't a name and a snapshot's name.
    """
    marks = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith('#'):
            continue
        name, _, snapshot = line.partition(' ')
        if not (is_keep_name(name) and is_snapshot_name(snapshot)):
            raise KeptSnapshotError("Line %i of %s is not 'NAME SNAPSHOT' (%r): correct or remove it; until then "
                                    "no snapshot is removed, so that none that is kept goes."
                                    % (number, pathname, line))
        marks.append((name, snapshot))
    return marks


def read_kept(context, directory, names, sudo=False):
    """
    Read the kept snapshots of a backup set.

    :param context: The execution context of the set's directory.
    :param directory: The set's directory, which holds ``latest`` and the snapshots (a string).
    :param names: The names in that directory (strings; the file is read only when it is among them).
    :param sudo: :data:`True` to read with superuser privileges.
    :returns: A list of (name, snapshot) tuples (see :func:`parse_kept()`).
    :raises: :exc:`.KeptSnapshotError` (see :func:`parse_kept()`).
    """
    if KEPT_FILE_NAME not in names:
        return []
    pathname = posixpath.join(directory, KEPT_FILE_NAME)
    return parse_kept(read_file(context, pathname, sudo=sudo), pathname)


def group_by_snapshot(marks):
    """
    Give the names that keep each snapshot.

    :param marks: A list of (name, snapshot) tuples.
    :returns: A :class:`dict` from snapshot names to lists of names.
    """
    kept = {}
    for name, snapshot in marks:
        kept.setdefault(snapshot, []).append(name)
    return kept


def read_present_marks(context, directory, sudo=False):
    """
    List a set's directory and the marks of its kept snapshots that are still there.

    :param context: The execution context of the set's directory.
    :param directory: The set's directory (a string).
    :param sudo: :data:`True` to list and read with superuser privileges.
    :returns: A tuple of the names in the directory (a list of strings) and
              the marks whose snapshots are there (a list of (name, snapshot)
              tuples; a mark of a snapshot removed by hand is left out).
    :raises: :exc:`.KeptSnapshotError` (see :func:`parse_kept()`).
    """
    names = list_directory(context, directory, sudo=sudo)
    return names, [mark for mark in read_kept(context, directory, names, sudo=sudo) if mark[1] in names]


def find_free_marks(context, directory, name, sudo=False):
    """
    List a set's kept snapshots that are still there, and refuse a name that keeps one of them already.

    :param context: The execution context of the set's directory.
    :param directory: The set's directory (a string).
    :param name: The name to keep a snapshot under (a string).
    :param sudo: :data:`True` to list and read with superuser privileges.
    :returns: A tuple of the names in the directory (a list of strings) and
              the marks whose snapshots are there (a list of (name, snapshot) tuples).
    :raises: :exc:`.KeptSnapshotError` when `name` keeps a snapshot already,
             or the file can't be read (see :func:`parse_kept()`).
    """
    names, marks = read_present_marks(context, directory, sudo=sudo)
    for other, snapshot in marks:
        if other == name:
            raise KeptSnapshotError("The name %s keeps the snapshot %s in %s already: give another name, or let "
                                    "that snapshot go first with --release=%s." % (name, snapshot, directory, name))
    return names, marks


def write_kept(context, directory, marks, sudo=False):
    """
    Replace the record of a set's kept snapshots.

    :param context: The execution context of the set's directory.
    :param directory: The set's directory (a string).
    :param marks: A list of (name, snapshot) tuples.
    :param sudo: :data:`True` to write with superuser privileges.
    """
    write_file(context, posixpath.join(directory, KEPT_FILE_NAME),
               KEPT_FILE_HEADER + ''.join('%s %s\n' % mark for mark in marks), sudo=sudo)


def keep_snapshot(context, directory, name, snapshot, sudo=False, dry_run=False, marks=None):
    """
    Keep a snapshot under a name, so that rotation never removes it (call it under the set's lock).

    :param context: The execution context of the set's directory.
    :param directory: The set's directory (a string).
    :param name: The name (a string that :func:`.is_keep_name()` accepts).
    :param snapshot: The snapshot's name (a string).
    :param sudo: :data:`True` to list, read and write with superuser privileges.
    :param dry_run: :data:`True` to only say what would be done.
    :param marks: For a snapshot that the run has just made: the other marks
                  to record (what :func:`find_free_marks()` gave before it
                  was made, under the same lock); :data:`None` to read them
                  now and check that `snapshot` is there.
    :raises: :exc:`.KeptSnapshotError` when the snapshot isn't there or the name is taken.
    """
    if marks is None:
        names, marks = find_free_marks(context, directory, name, sudo=sudo)
        if not is_snapshot_name(snapshot) or snapshot not in names:
            raise KeptSnapshotError("%r is not a snapshot in %s: give one of the names that --list shows."
                                    % (snapshot, directory))
    if dry_run:
        logger.info("Would keep %s as %s.", posixpath.join(directory, snapshot), name)
        return
    write_kept(context, directory, marks + [(name, snapshot)], sudo=sudo)
    logger.info("Keeping %s as %s: rotation never removes it (--release=%s lets it go).",
                posixpath.join(directory, snapshot), name, name)


def release_snapshot(context, directory, name, sudo=False, dry_run=False):
    """
    Let a kept snapshot go: rotation treats it like any other from then on (call it under the set's lock).

    :param context: The execution context of the set's directory.
    :param directory: The set's directory (a string).
    :param name: The name that keeps it (a string).
    :param sudo: :data:`True` to list, read and write with superuser privileges.
    :param dry_run: :data:`True` to only say what would be done.
    :raises: :exc:`.KeptSnapshotError` when no snapshot there is kept under `name`.
    """
    marks = read_present_marks(context, directory, sudo=sudo)[1]
    released = [snapshot for other, snapshot in marks if other == name]
    if not released:
        raise KeptSnapshotError("No snapshot in %s is kept as %s: give one of the names that --list shows (%s)."
                                % (directory, name, ', '.join(sorted(set(other for other, _ in marks))) or 'none'))
    if dry_run:
        logger.info("Would let %s go (kept as %s).", posixpath.join(directory, released[0]), name)
        return
    write_kept(context, directory, [mark for mark in marks if mark[0] != name], sudo=sudo)
    logger.info("Let %s go (kept as %s): rotation treats it like any other snapshot from now on.",
                posixpath.join(directory, released[0]), name)
