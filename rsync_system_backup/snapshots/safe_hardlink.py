"""
The safe-hardlink snapshot method: hard-link snapshots that later backups never change.

Snapshots are ``cp --archive --link`` copies of ``latest``, as with the
hardlink method, which costs no space for unchanged files and works on every
filesystem. The transfer is a planned one (see :mod:`.transfer.plan`):
rsync's dry run lists what would change; rsync then transfers only the
listed entries, writing every file anew, so not even a change of a file's
mode, owner, times, xattrs or ACLs (which rsync otherwise applies to the
file's inode itself) reaches a snapshot; the few entries it still changes
in place (symbolic links, devices, special files) get inodes of their own
first if a snapshot shares them (see :mod:`.snapshots.protection`); and a
check compares every listed name of ``latest`` with the source (see
:mod:`.transfer.check`). So the transfer updates ``latest`` in place, at
about the cost of the hardlink method, and no snapshot ever changes. When
the check finds a difference the run fails, and the next transfer is made
without a plan (see :data:`UNPLANNED_MARKER`).

The snapshot's copy is made while rsync plans the transfer and brought up
to date after it (see :mod:`.early_copy`); a snapshot alone is a copy made
by several cp processes together (see :mod:`.parallel_copy`).

The link limit is dealt with when it is hit: when ``cp --link`` fails with
"Too many links", the half-made snapshot is removed, the files near the
limit get fresh copies (see :func:`.relieve_link_limit()`), and the snapshot
is made again with hard links where the limit allows and a copy of each file
that can't get one more link (see :func:`.copy_at_link_limit()`). So no run
walks ``latest`` an extra time for it, until it is needed.
"""

import contextlib
import logging
import posixpath

from rsync_system_backup.exceptions import SnapshotFailedError, TransferCheckError
from rsync_system_backup.processes.signals import cleanup
from rsync_system_backup.snapshots.early_copy import EarlyCopy
from rsync_system_backup.snapshots.filesystem_features import find_link_limit
from rsync_system_backup.snapshots.hard_links import copy_at_link_limit, relieve_link_limit
from rsync_system_backup.snapshots.methods import LinkDestMethod, SnapshotMethod, TransferTarget
from rsync_system_backup.snapshots.parallel_copy import link_copy
from rsync_system_backup.snapshots.protection import protect
from rsync_system_backup.backup_set.operations import remove_trees, write_file

TOO_MANY_LINKS = b'Too many links'
"""How cp reports EMLINK (``strerror``; cp runs in the C locale for this)."""

UNPLANNED_MARKER = '.rsync-system-backup.unplanned'
"""
The file beside ``latest`` that says the check after the last planned
transfer found a difference (see :meth:`SafeHardlinkMethod.check()`): the
next transfer is made without a plan.
"""

logger = logging.getLogger(__name__)


class SafeHardlinkMethod(SnapshotMethod):

    """rsync updates ``latest`` in place after shared files got copies of their own; snapshots are hard links."""

    name = 'safe-hardlink'
    shares_files_with_latest = True
    writes_shared_files = False

    latest_existed = True
    """:data:`False` when :meth:`prepare()` found no ``latest`` (a first backup)."""

    def prepare(self):
        """
        Recover from interrupted runs and remember whether ``latest`` exists (see :meth:`transfer_target()`).

        :returns: :data:`True` when ``latest`` exists.
        """
        self.latest_existed = super(SafeHardlinkMethod, self).prepare()
        self.unplanned = UNPLANNED_MARKER in self.replacement.parent_names
        return self.latest_existed

    unplanned = False
    """:data:`True` when :meth:`prepare()` found :data:`UNPLANNED_MARKER`."""

    @property
    def marker_pathname(self):
        """The pathname of :data:`UNPLANNED_MARKER` (a string)."""
        return posixpath.join(self.replacement.parent_directory, UNPLANNED_MARKER)

    early_copy = None
    """The :class:`.EarlyCopy` of this run, until the snapshot step takes it (:data:`None` when there is none)."""

    touched_names = ()
    """The names that the planned transfer touches (bytes, relative to ``latest``; set by :meth:`protect()`)."""

    touches_top = False
    """:data:`True` when the planned transfer touches the top directory of ``latest`` (set by :meth:`protect()`)."""

    deleted_names = ()
    """The names that the planned transfer deletes (bytes, relative to ``latest``; set by :meth:`protect()`)."""

    planned = False
    """:data:`True` once a planned transfer began to change ``latest`` (set by :meth:`protect()`)."""

    @property
    def changes(self):
        """The names that the planned transfer touched and deleted (see :attr:`.SnapshotMethod.changes`)."""
        return (self.touched_names, self.deleted_names) if self.planned else None

    @contextlib.contextmanager
    def transfer_target(self, snapshot=False, changes_wanted=False):
        """
        Make the transfer a planned one into ``latest`` (see :meth:`protect()`).

        :param snapshot: :data:`True` when a snapshot follows: the snapshot's
                         copy is made while rsync plans the transfer, and
                         brought up to date when the block ends normally
                         (see :class:`.EarlyCopy`).
        :param changes_wanted: See :meth:`.SnapshotMethod.transfer_target()`
                               (the plan names the changes anyway).
        :returns: A context manager that gives a :class:`.TransferTarget`.

        A first backup (no ``latest`` yet) is one plain rsync: no snapshot
        shares anything with it (the tree of an interrupted first backup
        becomes ``latest`` first, see :meth:`.Replacement.adopt_first_backup()`).
        """
        if not self.latest_existed:
            self.replacement.adopt_first_backup()
            yield TransferTarget(self.directory)
            return
        if self.unplanned:
            logger.warning("Transferring without a plan this time (rsync --link-dest builds a new %s): the check "
                           "after the last planned transfer found a difference.", self.directory)
            with LinkDestMethod.transfer_target(self, snapshot) as target:
                yield target
            remove_trees(self.context, [self.marker_pathname], sudo=self.sudo)
            return
        if snapshot:
            self.early_copy = EarlyCopy(self.context, self.directory, remove=self.remove_trees, sudo=self.sudo,
                                        ionice=self.ionice)
        try:
            yield TransferTarget(self.directory, protect=self.protect, check=self.check)
            if self.early_copy is not None and not self.early_copy.update(self.touched_names, top=self.touches_top):
                self.early_copy = None
        except BaseException:
            if self.early_copy is not None:
                early_copy, self.early_copy = self.early_copy, None
                with cleanup(failing=True):
                    early_copy.discard()
            raise

    def protect(self, plan):
        """
        Prepare ``latest`` for the plan: its deletions, and inodes of their own for what rsync changes in place.

        :param plan: The checked :class:`.TransferPlan`.
        :returns: The names that the apply must leave out and the planned deletions that failed (see
                  :func:`.protection.protect()`).

        The snapshot's early copy must be done first: this changes ``latest``.
        """
        if self.early_copy is not None and not self.early_copy.wait():
            self.early_copy = None
        self.planned = True
        left_out, undeleted = protect(self.context, self.directory, plan, sudo=self.sudo, ionice=self.ionice)
        # A transfer may plan twice (see transfer_planned()): the early copy and the manifest need the names of both.
        self.touched_names = sorted(set(self.touched_names) | set(plan.touched_names()))
        self.deleted_names = sorted(set(self.deleted_names) | plan.deletions)
        self.touches_top = self.touches_top or plan.touches_root()
        return left_out, undeleted

    def reject_transfer(self, problems):
        """
        Fail the run after the check found differences, and make the next transfer one without a plan.

        :param problems: The differences (strings, see :func:`.check_transfer()`).
        :raises: :exc:`.TransferCheckError`, after writing :data:`UNPLANNED_MARKER`.
        """
        write_file(self.context, self.marker_pathname, "The check after a planned transfer found: %s\n"
                   % "\n".join(problems), sudo=self.sudo)
        raise TransferCheckError("After the planned transfer, %i name(s) differ from the source: %s; no "
                                 "snapshot was made, the earlier snapshots are intact, and the next run "
                                 "transfers without a plan to put it right." % (len(problems), problems[0]))

    def copy_tree(self, directory, target):
        """
        Make a snapshot with ``cp --archive --link`` processes, relieving the link limit when it is hit.

        The copy made during the transfer is renamed, when there is one (see
        :class:`.EarlyCopy`). Otherwise the copy is split between several cp
        processes (see :func:`.parallel_copy.link_copy()`); at the link limit
        it is made again, with copies of what can't be linked (see the module
        documentation).

        :param directory: The directory to snapshot (``latest``, a string).
        :param target: The pathname of the new snapshot (a string).
        :raises: :exc:`.SnapshotFailedError` when cp fails.
        """
        if self.early_copy is not None:
            early_copy, self.early_copy = self.early_copy, None
            early_copy.take(target)
            return
        copy = link_copy(self.context, directory, target, sudo=self.sudo, ionice=self.ionice)
        if copy.returncode == 0:
            return
        limit = find_link_limit(self.filesystem_type)
        if not (limit and TOO_MANY_LINKS in (copy.stderr or b'')):
            logger.error("%s", (copy.stderr or b'').decode('utf-8', 'replace').strip())
            raise SnapshotFailedError("cp --archive --link failed with exit code %i while snapshotting %s; the "
                                      "earlier snapshots are intact." % (copy.returncode, directory))
        self.remove_trees(self.context, [target], sudo=self.sudo, ionice=self.ionice)
        relieve_link_limit(self.context, directory, limit, sudo=self.sudo, ionice=self.ionice)
        copy_at_link_limit(self.context, directory, target, limit, sudo=self.sudo, ionice=self.ionice)
