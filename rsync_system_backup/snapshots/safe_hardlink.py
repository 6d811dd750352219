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
from rsync_system_backup.snapshots.filesystem_features import find_link_limit
from rsync_system_backup.snapshots.hard_links import find_crowded_files, relieve_link_limit
from rsync_system_backup.snapshots.methods import SnapshotMethod, TransferTarget
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

    @contextlib.contextmanager
    def transfer_target(self):
        """
        Make the transfer a planned one into ``latest`` (see :meth:`protect()`).

        :returns: A context manager that gives a :class:`.TransferTarget`.

        A first backup (no ``latest`` yet) is one plain rsync: no snapshot
        shares anything with it (the tree of an interrupted first backup
        becomes ``latest`` first, see :meth:`.Replacement.adopt_first_backup()`).
        """
        if self.latest_existed:
            yield TransferTarget(self.directory, protect=self.protect)
        else:
            self.replacement.adopt_first_backup()
            yield TransferTarget(self.directory)

    def protect(self, plan):
        """
        Carry out the plan's deletions and give the files that the transfer touches inodes of their own.

        :param plan: The :class:`.TransferPlan`.
        :returns: More names for the apply and the planned deletions that failed (see :func:`.protection.protect()`).
        """
        return protect(self.context, self.directory, plan, sudo=self.sudo, ionice=self.ionice)

    def copy_tree(self, directory, target):
        """
        Make a snapshot with ``cp --archive --link``, relieving the link limit when it is hit.

        :param directory: The directory to snapshot (``latest``, a string).
        :param target: The pathname of the new snapshot (a string).
        :raises: :exc:`.SnapshotFailedError` when cp fails.
        """
        copy = self.context.execute('cp', '--archive', '--link', directory, target, check=False, sudo=self.sudo,
                                    ionice=self.ionice, shell=False, tty=False, capture_stderr=True,
                                    environment=dict(LC_ALL='C'))
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
