"""
A backup set as the read-only actions see it: its directory, ``latest``, the snapshots and their ages.

:func:`open_backup_set()` reaches the destination as a backup does (a local
directory, or SSH with one shared connection; the backup disk unlocked and
mounted for the duration when ``-c``/``-m`` are given). An rsync daemon runs
no commands for its clients, so there it explains which command to run on
the server instead.
"""

import contextlib
import datetime
import logging
import posixpath

from rsync_system_backup.checks.backup_sets import LATEST_NAME, holds_backup_set
from rsync_system_backup.checks.configuration import check_local_sudo
from rsync_system_backup.connections.ssh import check_sudo
from rsync_system_backup.exceptions import DestinationContextUnavailable, NoBackupSetError
from rsync_system_backup.manifests.format import MANIFEST_DIRECTORY, MANIFEST_SUFFIX, manifest_owner
from rsync_system_backup.processes.signals import CleanupStack
from rsync_system_backup.snapshots.naming import (
    LEFTOVER_SUFFIXES,
    SNAPSHOT_NAME_PATTERN,
    is_leftover_name,
    is_snapshot_name,
)
from rsync_system_backup.backup_set.kept import group_by_snapshot, read_kept
from rsync_system_backup.backup_set.marker import MARKER_FILE_NAME, has_legacy_snapshots
from rsync_system_backup.backup_set.operations import list_directory

COMPLETE = 'complete'
"""The state of a snapshot that was made completely."""

logger = logging.getLogger(__name__)


class BackupSet(object):

    """
    The snapshots beside a destination directory, as listed once.

    DESTINATION is a set's ``latest``, and the set is the directory that
    holds it. A DESTINATION that is a set's directory itself (``/x/backups``
    for ``/x/backups/latest``: it holds the marker, or snapshots while the
    directory above it holds none) stands for that set: its ``latest`` is
    the one inside it. A DESTINATION in a set's directory is taken for a set
    of its own only when that set's ``latest`` is another directory named
    ``latest`` (a set nested in another set's directory): the ``latest`` of a
    set, whatever its name, is a copy of a source that may be a set's
    directory, and what it holds never decides which set a check looks at.
    """

    def __init__(self, program):
        """
        List a backup set.

        :param program: The :class:`.RsyncSystemBackup` whose destination it is.
        """
        self.program = program
        self.context = program.destination_context
        self.directory = program.destination.parent_directory
        self.latest = posixpath.basename(program.destination.directory.rstrip('/'))
        self.names = list_directory(self.context, self.directory, sudo=program.sudo_enabled)
        self.cached_manifests = None
        self.cached_kept = None
        parent_is_set = holds_backup_set(self.names)
        maybe_parents_latest = self.latest == LATEST_NAME or LATEST_NAME not in self.names
        if self.latest in self.names and not (parent_is_set and maybe_parents_latest):
            try:
                inner = list_directory(self.context, program.destination.directory, sudo=program.sudo_enabled)
            except NotADirectoryError:
                inner = []
            if MARKER_FILE_NAME in inner or (not parent_is_set and holds_backup_set(inner)):
                logger.info("%s is the directory of a backup set, not its latest: looking at that set.",
                            program.destination.directory)
                self.directory = program.destination.directory.rstrip('/')
                self.latest = LATEST_NAME
                self.names = inner

    @property
    def snapshots(self):
        """The names of the complete snapshots, oldest first (a list of strings)."""
        return chronological(name for name in self.names if is_snapshot_name(name) and snapshot_time(name))

    @property
    def leftovers(self):
        """The names of snapshots that an interrupted run left behind (a sorted list of strings)."""
        return chronological(name for name in self.names if is_leftover_name(name))

    @property
    def newest(self):
        """The name of the newest complete snapshot (a string), or :data:`None` when there is none."""
        snapshots = self.snapshots
        return snapshots[-1] if snapshots else None

    @property
    def manifests(self):
        """The names of the snapshots that have a manifest (a set of strings; listed on first use)."""
        if self.cached_manifests is None:
            self.cached_manifests = set()
            try:
                filenames = list_directory(self.context, self.pathname(MANIFEST_DIRECTORY),
                                           sudo=self.program.sudo_enabled) if MANIFEST_DIRECTORY in self.names else []
            except NotADirectoryError:
                filenames = []
            self.cached_manifests = set(manifest_owner(filename) for filename in filenames
                                        if filename.endswith(MANIFEST_SUFFIX))
        return self.cached_manifests

    @property
    def kept(self):
        """The names that keep each kept snapshot (a :class:`dict` of lists of strings, see :func:`.read_kept()`)."""
        if self.cached_kept is None:
            self.cached_kept = group_by_snapshot(read_kept(self.context, self.directory, self.names,
                                                           sudo=self.program.sudo_enabled))
        return self.cached_kept

    @property
    def is_marked(self):
        """
        :data:`True` when the directory is known as a backup set.

        That is, it holds the marker file (see :mod:`.backup_set.marker`) or
        snapshots of version 1.1, which made no marker.
        """
        return MARKER_FILE_NAME in self.names or has_legacy_snapshots(self.names)

    @property
    def holds_set(self):
        """:data:`True` when the directory holds a set's marker or snapshots (see :func:`.holds_backup_set()`)."""
        return holds_backup_set(self.names)

    def check_holds_set(self):
        """
        Refuse to go on where there is no backup set, which would take any directory for a set's ``latest``.

        :raises: :exc:`.NoBackupSetError`, saying what to give instead.
        """
        if self.holds_set:
            return
        destination = self.program.destination.directory
        raise NoBackupSetError(
            "%s is neither the latest of a backup set nor a set's directory (no %s file or snapshot in %s or in it): "
            "give the latest directory of a backup set, such as /mnt/backups/latest."
            % (destination, MARKER_FILE_NAME, self.directory))

    @property
    def has_latest(self):
        """:data:`True` when the destination directory exists."""
        return self.latest in self.names

    def pathname(self, name):
        """The pathname of an entry of the set (a string)."""
        return posixpath.join(self.directory, name)


def snapshot_state(name):
    """
    Give the state of a snapshot from its name.

    :param name: A snapshot's name, possibly with a leftover suffix (a string).
    :returns: :data:`COMPLETE`, or the leftover suffix without its dot (``incomplete``, ``removing``).
    """
    for suffix in LEFTOVER_SUFFIXES:
        if name.endswith(suffix):
            return suffix[1:]
    return COMPLETE


def chronological(names):
    """
    Sort snapshot names by the moments they name, oldest first.

    Sorting the names as text would put every name of version 1.1
    (``2024-05-01 13:45:00``) before the new names of the same day
    (``2024-05-01_09-00-00``), whatever their times.

    :param names: Snapshot names, possibly with a leftover suffix (strings).
    :returns: A list of the names (impossible dates first, by name).
    """
    return sorted(names, key=lambda name: (snapshot_time(name) or datetime.datetime.min, name))


def snapshot_time(name):
    """
    Read the moment a snapshot was made from its name.

    :param name: A snapshot's name, possibly with a leftover suffix (a string).
    :returns: A naive local :class:`datetime.datetime`, or :data:`None` for
              an impossible date (which rotation leaves alone too).
    """
    for suffix in LEFTOVER_SUFFIXES:
        if name.endswith(suffix):
            name = name[:-len(suffix)]
    match = SNAPSHOT_NAME_PATTERN.match(name)
    try:
        return datetime.datetime(*(int(match.group(field)) for field in
                                   ('year', 'month', 'day', 'hour', 'minute', 'second')))
    except (AttributeError, ValueError):
        return None


def snapshot_age(name, now=None):
    """
    Give a snapshot's age.

    :param name: A snapshot's name (a string).
    :param now: The current local time (a :class:`datetime.datetime`), or :data:`None` for now.
    :returns: The age in seconds (a float, negative for a name in the
              future), or :data:`None` for an impossible date.
    """
    moment = snapshot_time(name)
    if moment is None:
        return None
    return ((now or datetime.datetime.now()) - moment).total_seconds()


@contextlib.contextmanager
def open_backup_set(program, action):
    """
    Reach a destination's backup set for the duration of a ``with`` block.

    :param program: A :class:`.RsyncSystemBackup` with the destination and the options.
    :param action: The option that asked for it (``--list`` and so on), for messages.
    :returns: A context manager that gives a :class:`BackupSet`.
    :raises: :exc:`.DestinationContextUnavailable` for an rsync daemon,
             :exc:`.SudoUnavailableError` for a local destination that needs
             sudo, when sudo would ask for a password (see :func:`.check_local_sudo()`),
             and :exc:`.RemoteCommandError` for an SSH login that isn't
             root, when sudo would ask for a password there (see :func:`.check_sudo()`).
    """
    destination = program.destination
    if destination.is_daemon:
        raise DestinationContextUnavailable(
            "%s can't look at the rsync daemon %s's snapshots from here, because a daemon runs no commands for "
            "its clients: run 'rsync-system-backup %s /path/of/the/module' on %s itself (or give an SSH "
            "destination, HOST:/path/of/the/module)." % (action, destination.hostname, action, destination.hostname))
    check_local_sudo(program, transfer=False)
    # Unmounting and locking the disk again are cleanups that a signal can't cut short.
    with CleanupStack() as stack:
        stack.enter_context(program.share_connection())
        if destination.is_remote_shell and program.sudo_enabled:
            check_sudo(program.destination_context)
        stack.enter_context(program.unlock_device())
        stack.enter_context(program.mount_filesystem())
        yield BackupSet(program)
