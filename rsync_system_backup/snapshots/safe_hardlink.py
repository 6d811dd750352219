"""
The safe-hardlink snapshot method: hard-link snapshots that later backups never change.

Snapshots are ``cp --archive --link`` copies of ``latest``, as with the
hardlink method, which costs no space for unchanged files and works on every
filesystem. The transfer is a planned one (see :mod:`.transfer.plan`):
rsync's dry run lists what would change, every listed file that a snapshot
shares gets an inode of its own first (see :mod:`.snapshots.protection`),
and then rsync transfers only the listed entries. So the transfer updates
``latest`` in place, at about the cost of the hardlink method, and no
snapshot ever changes, not even when only the mode, owner, times, xattrs or
ACLs of a file change (which rsync applies to the file's inode itself).

The snapshot's copy is made while rsync plans the transfer and brought up
to date after it (see :mod:`.early_copy`); a snapshot alone is a copy made
by several cp processes together (see :mod:`.parallel_copy`).

The link limit is dealt with when it is hit: when ``cp --link`` fails with
"Too many links", the half-made snapshot is removed, the files near the
limit get fresh copies (see :func:`.relieve_link_limit()`), their
directories get their modification times back, and the snapshot is made
again. So no run walks ``latest`` an extra time for it, until it is needed.
"""

import contextlib
import logging
import posixpath

from rsync_system_backup.exceptions import SnapshotFailedError
from rsync_system_backup.processes.signals import cleanup
from rsync_system_backup.snapshots.early_copy import EarlyCopy
from rsync_system_backup.snapshots.filesystem_features import find_link_limit
from rsync_system_backup.snapshots.hard_links import find_crowded_files, relieve_link_limit
from rsync_system_backup.snapshots.methods import SnapshotMethod, TransferTarget
from rsync_system_backup.snapshots.parallel_copy import link_copy
from rsync_system_backup.snapshots.protection import protect

TOO_MANY_LINKS = b'Too many links'
"""How cp reports EMLINK (``strerror``; cp runs in the C locale for this)."""

RESTORE_TIMES_SCRIPT = '''
while [ $# -gt 1 ]; do
    touch -m -h -d "$1" -- "$2" || exit
    shift 2
done
'''
"""Shell code that gives directories modification times (its arguments: pairs of a time and a directory)."""

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
        return self.latest_existed

    early_copy = None
    """The :class:`.EarlyCopy` of this run, until the snapshot step takes it (:data:`None` when there is none)."""

    touched_names = ()
    """The names that the planned transfer touches (bytes, relative to ``latest``; set by :meth:`protect()`)."""

    touches_top = False
    """:data:`True` when the planned transfer touches the top directory of ``latest`` (set by :meth:`protect()`)."""

    @contextlib.contextmanager
    def transfer_target(self, snapshot=False):
        """
        Make the transfer a planned one into ``latest`` (see :meth:`protect()`).

        :param snapshot: :data:`True` when a snapshot follows: the snapshot's
                         copy is made while rsync plans the transfer, and
                         brought up to date when the block ends normally
                         (see :class:`.EarlyCopy`).
        :returns: A context manager that gives a :class:`.TransferTarget`.

        A first backup (no ``latest`` yet) is one plain rsync: no snapshot
        shares anything with it (the tree of an interrupted first backup
        becomes ``latest`` first, see :meth:`.Replacement.adopt_first_backup()`).
        """
        if not self.latest_existed:
            self.replacement.adopt_first_backup()
            yield TransferTarget(self.directory)
            return
        if snapshot:
            self.early_copy = EarlyCopy(self.context, self.directory, remove=self.remove_trees, sudo=self.sudo,
                                        ionice=self.ionice)
        try:
            yield TransferTarget(self.directory, protect=self.protect)
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
        Carry out the plan's deletions and give the files that the transfer touches inodes of their own.

        :param plan: The :class:`.TransferPlan`.
        :returns: More names for the apply and the planned deletions that failed (see :func:`.protection.protect()`).

        The snapshot's early copy must be done first: this changes ``latest``.
        """
        if self.early_copy is not None and not self.early_copy.wait():
            self.early_copy = None
        extra, undeleted = protect(self.context, self.directory, plan, sudo=self.sudo, ionice=self.ionice)
        self.touched_names = plan.apply_names(extra) + sorted(plan.deletions)
        self.touches_top = plan.touches_root(extra)
        return extra, undeleted

    def copy_tree(self, directory, target):
        """
        Make a snapshot with ``cp --archive --link`` processes, relieving the link limit when it is hit.

        The copy made during the transfer is renamed, when there is one (see
        :class:`.EarlyCopy`). Otherwise the copy is split between several cp
        processes (see :func:`.link_copy()`); after the link limit was
        relieved, one cp makes it again.

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
        crowded = find_crowded_files(self.context, directory, limit, sudo=self.sudo, ionice=self.ionice)
        parents = sorted(set(posixpath.dirname(posixpath.join(directory, path)) for paths in crowded for path in paths))
        times = self.context.capture('stat', '--format=%y', '--', *parents, sudo=self.sudo, shell=False,
                                     tty=False).splitlines() if parents else []
        relieve_link_limit(self.context, directory, limit, sudo=self.sudo, ionice=self.ionice)
        if parents:
            # The copies were renamed into place after the transfer: their directories get their times back.
            arguments = [value for pair in zip(times, parents) for value in pair]
            self.context.execute('sh', '-c', RESTORE_TIMES_SCRIPT, 'restore-times', *arguments, sudo=self.sudo,
                                 shell=False, tty=False)
        self.copy_with_cp(directory, target, '--link')
