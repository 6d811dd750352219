"""
Read-only snapshots of a btrfs source: the run transfers from one instant, and keeps it as the next run's parent.

A backup of a live system copies files while they change: a database file
half old and half new, a directory renamed halfway through rsync's walk.
When SOURCE is the top of a btrfs subvolume, :class:`SourceSnapshot` first
takes a read-only snapshot of it (``btrfs subvolume snapshot -r``, in the
source's execution context, with sudo like rsync) and rsync reads that
instead, so the whole backup is one instant.

The snapshots live in :data:`.SNAPSHOT_DIRECTORY` at the top of the
subvolume (snapshots can't cross filesystems), a directory that only root
can enter and that every transfer leaves out; the checks that no other user
can steer it are :mod:`.agent.source_directory`'s. A run holds the lock of
that directory (see :class:`.DestinationLock`) while it works there, and:

1. deletes the snapshots called ``new.*`` that an interrupted run left behind;
2. takes ``new.RANDOM``, the snapshot that it transfers from;
3. after a complete transfer, deletes ``parent`` and renames its snapshot
   to ``parent``: the snapshot that ``latest`` now equals, for the next run;
   after an incomplete one (rsync's exit codes 23 and 24) it deletes both,
   since ``latest`` then equals neither; after a failure it deletes its own
   and the earlier ``parent`` stays, as ``latest`` does.

So a crash leaves at most the one ``parent`` and a ``new.*`` that the next
run deletes. Everything else falls back to the live source with one INFO
line saying why: ``--source-snapshot=never``, a dry run (which changes
nothing, so takes no snapshot), ``--multi-fs`` (a snapshot holds one
subvolume), a source that isn't the top of a btrfs subvolume, no root and no
sudo, no ``btrfs`` program, a path to the source that other users could
change, another run working on the same source's snapshots, or an excluded
path that can't be moved onto the snapshot (see :mod:`.sources.rerooting`).
A snapshot that btrfs refuses on a subvolume that passed those checks (no
space left, a quota) falls back with a WARNING: a backup of the live
system is what every run made before, and better than none.
"""

import json
import logging
import os
import posixpath
import secrets

from executor.contexts import LocalContext

from rsync_system_backup.agent.shipping import run_program
from rsync_system_backup.backup_set.lock import DestinationLock
from rsync_system_backup.backup_set.operations import list_directory, rename_directory
from rsync_system_backup.exceptions import BackupInProgressError
from rsync_system_backup.processes.search_path import find_on_search_path
from rsync_system_backup.snapshots.btrfs import delete_subvolumes, snapshot_subvolume
from rsync_system_backup.sources.names import SNAPSHOT_DIRECTORY, SNAPSHOT_NEVER
from rsync_system_backup.sources.rerooting import anchor_patterns, literal_pattern, move_patterns

PROGRAM_MODULES = ('rsync_system_backup.agent.source_directory',)
"""The modules of the program that checks the source and prepares the snapshots' directory."""

PARENT_NAME = 'parent'
"""The name of the snapshot that the last complete transfer read, kept for the next run."""

NEW_PREFIX = 'new.'
"""The start of the name of a run's own snapshot until it becomes the parent."""

logger = logging.getLogger(__name__)


class SourceSnapshot(object):

    """The tree that a transfer reads, for the duration of a ``with`` block: a snapshot of the source, or the source."""

    def __init__(self, context, source, excluded_paths, mode, sudo=True, dry_run=False, multi_fs=False):
        """
        Prepare to snapshot a source.

        :param context: The source's execution context.
        :param source: The source directory (an absolute pathname, a string).
        :param excluded_paths: The absolute paths that the transfer leaves out (see :meth:`.excluded_paths()`).
        :param mode: ``auto`` or ``never`` (see :data:`.SOURCE_SNAPSHOT_MODES`).
        :param sudo: :data:`True` to run the commands with sudo when not root.
        :param dry_run: :data:`True` for a dry run (no snapshot is taken).
        :param multi_fs: :data:`True` when the transfer crosses filesystems (no snapshot is taken).
        """
        self.context = context
        self.source = source
        self.excluded = list(excluded_paths)
        self.mode = mode
        self.sudo = sudo
        self.dry_run = dry_run
        self.multi_fs = multi_fs
        self.directory = source
        self.filters = self.excluded
        self.anchored = None
        """The excluded paths as patterns anchored at the transfer's top (see :func:`.anchor_patterns()`), or
        :data:`None` when the transfer reads the live source."""
        self.snapshot = None
        self.holder = None
        self.lock = None
        self.had_parent = False
        self.kept = False
        """:data:`True` once :meth:`keep()` made this run's snapshot the parent."""

    def __enter__(self):
        """Take the snapshot, or say why the transfer reads the live source."""
        reason = self.take()
        if reason:
            logger.info("Transferring from the live source: %s.", reason)
        return self

    def __exit__(self, exc_type=None, exc_value=None, traceback=None):
        """Delete a snapshot that :meth:`keep()` didn't keep, and let go of the lock."""
        try:
            if self.snapshot is not None:
                snapshot, self.snapshot = self.snapshot, None
                delete_subvolumes(self.context, [snapshot], sudo=self.sudo)
        finally:
            self.release()

    def obstacle(self):
        """
        Find what keeps this run from snapshotting the source, before looking at the source.

        :returns: The reason (a string), or :data:`None`.
        """
        local = isinstance(self.context, LocalContext)
        if self.mode == SNAPSHOT_NEVER:
            return "--source-snapshot=never"
        if self.multi_fs:
            return "with --multi-fs the transfer crosses filesystems, and a snapshot holds one"
        if local and not self.sudo and os.geteuid() != 0:
            return "snapshots need root, and sudo is off (--no-sudo)"
        if local and find_on_search_path('btrfs') is None:
            return "the btrfs program isn't installed (btrfs-progs)"
        return None

    def take(self):
        """
        Take a read-only snapshot of the source, under the lock of its snapshots' directory.

        :returns: Why the transfer reads the live source (a string), or :data:`None` when it reads the snapshot.
        """
        reason = self.obstacle()
        if reason:
            return reason
        finished = run_program(self.context, "A snapshot of the source", PROGRAM_MODULES,
                               [self.source, SNAPSHOT_DIRECTORY, 'look' if self.dry_run else 'create'],
                               sudo=self.sudo)
        if finished.returncode != 0:
            logger.warning("Transferring from the live source: failed to look at it for a snapshot: %s.",
                           finished.problem)
            return None
        answer = json.loads(finished.stdout.decode())
        if 'fallback' in answer:
            return answer['fallback']
        if self.dry_run:
            return "a dry run takes no snapshot (a real run reads a snapshot of %s)" % self.source
        self.holder = answer['directory']
        snapshot = posixpath.join(self.holder, NEW_PREFIX + secrets.token_hex(8))
        # The snapshot holds the directory of the snapshots too, which every transfer leaves out.
        excluded = self.excluded + [literal_pattern(self.holder) + '/']
        filters = move_patterns(excluded, posixpath.dirname(self.holder), snapshot)
        if filters is None:
            return "an excluded path can't be moved onto the snapshot (a ** or a relative path with a slash)"
        try:
            self.lock = DestinationLock(self.context, self.holder, sudo=self.sudo).__enter__()
        except BackupInProgressError:
            return "another run is working with the snapshots of %s" % self.source
        self.delete_leftovers()
        taken = snapshot_subvolume(self.context, posixpath.dirname(self.holder), snapshot, sudo=self.sudo)
        if taken.returncode != 0:
            self.release()
            logger.warning("Transferring from the live source: btrfs failed to snapshot %s (exit code %i, see "
                           "its message above), so files that change during the transfer may be copied half old, "
                           "half new.", self.source, taken.returncode)
            return None
        self.snapshot = self.directory = snapshot
        self.filters = filters
        self.anchored = anchor_patterns(excluded, posixpath.dirname(self.holder))
        logger.info("Transferring from a read-only snapshot of %s (%s).", self.source, snapshot)
        return None

    def delete_leftovers(self):
        """Delete the snapshots that interrupted runs left behind, and see whether there is a parent."""
        names = list_directory(self.context, self.holder, sudo=self.sudo)
        self.had_parent = PARENT_NAME in names
        leftovers = sorted(posixpath.join(self.holder, name) for name in names if name.startswith(NEW_PREFIX))
        if leftovers:
            logger.info("Deleting %i snapshot(s) of %s that an interrupted run left behind.", len(leftovers),
                        self.source)
            delete_subvolumes(self.context, leftovers, sudo=self.sudo)

    @property
    def parent(self):
        """The pathname of the parent snapshot (a string), or :data:`None` when the transfer reads the live source."""
        return posixpath.join(self.holder, PARENT_NAME) if self.snapshot is not None else None

    def keep(self, complete):
        """
        Keep the snapshot as the parent of the next run, after the transfer from it.

        :param complete: :data:`True` when rsync transferred everything:
                         otherwise ``latest`` equals no snapshot, and neither
                         is kept.
        """
        if self.snapshot is None:
            return
        parent = self.parent
        if self.had_parent:
            delete_subvolumes(self.context, [parent], sudo=self.sudo)
            self.had_parent = False
        if complete:
            rename_directory(self.context, self.snapshot, parent, sudo=self.sudo)
            self.snapshot = None
            self.kept = True
            logger.info("Kept the snapshot of %s as %s for the next run.", self.source, parent)
        else:
            logger.info("Keeping no snapshot of %s: the transfer was incomplete.", self.source)
        self.__exit__()

    def release(self):
        """Let go of the lock of the snapshots' directory."""
        if self.lock is not None:
            lock, self.lock = self.lock, None
            lock.__exit__()
