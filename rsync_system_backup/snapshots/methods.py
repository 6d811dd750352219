"""
Snapshot methods: how ``latest`` is written, snapshotted and cleaned up.

Every method keeps the same layout (``latest`` beside timestamped snapshots)
and the same atomic naming (see :mod:`.snapshots.naming`); they differ in how
snapshots share storage with ``latest``, and so in whether a later backup can
change an earlier snapshot:

``btrfs``
    ``latest`` is a btrfs subvolume, written in place by rsync; a snapshot is
    a read-only ``btrfs subvolume snapshot`` of it, and rotation removes
    snapshots with ``btrfs subvolume delete``. Snapshots never change.

``reflink``
    ``latest`` is written in place by rsync; a snapshot is a copy made with
    ``cp --archive --reflink=always``: new inodes that share data blocks with
    ``latest`` until either side changes. Snapshots never change.

These two apply a plan from the source's snapshots, when there is one, to
``latest`` in place (see :attr:`SnapshotMethod.plans_in_place`), so that
rsync doesn't walk the whole tree.

``link-dest``
    rsync builds each backup as a new tree beside ``latest``, hard-linking
    the files that are unchanged in every attribute to ``latest`` (with
    ``--link-dest``) and writing new files for everything else; the new tree
    then replaces ``latest`` (see :mod:`.replacement`). A snapshot is a
    ``cp --archive --link`` of ``latest``. No file that a snapshot shares is
    ever changed in place, so snapshots never change.

``hardlink``
    The flow of version 1.1: rsync updates ``latest`` in place and a
    snapshot is a ``cp --archive --link`` of it. rsync applies a change of
    mode, owner, group, timestamps, xattrs or ACLs to the existing file, which
    the earlier snapshots share, so they change with it.

The safe-hardlink method lives in :mod:`.snapshots.safe_hardlink`, and
:mod:`.snapshots.choice` picks the method for a destination.
"""

import contextlib
import logging
import posixpath

from rsync_system_backup.exceptions import SnapshotFailedError, SnapshotMethodError, TransferCheckError
from rsync_system_backup.processes.signals import cleanup
from rsync_system_backup.snapshots.btrfs import create_subvolume, delete_subvolumes, find_subvolumes, snapshot_subvolume
from rsync_system_backup.snapshots.filesystem_features import BTRFS, find_link_limit
from rsync_system_backup.snapshots.hard_links import count_shared_files, relieve_link_limit
from rsync_system_backup.snapshots.replacement import Replacement
from rsync_system_backup.backup_set.operations import add_suffix, remove_trees
from rsync_system_backup.transfer.check import check_transfer

logger = logging.getLogger(__name__)


class TransferTarget(object):

    """Where rsync writes a backup, and the options that go with it."""

    def __init__(self, directory, rsync_options=(), protect=None, check=None, in_place=False, dry_run_plan=False):
        """
        Describe where rsync writes.

        :param directory: The directory that rsync writes to (a string).
        :param rsync_options: Extra rsync options (a sequence of strings).
        :param protect: :data:`None` for one rsync, or a function that makes
                        the transfer a planned one (see :func:`.transfer_planned()`):
                        it gets the checked :class:`.TransferPlan` before
                        anything is written and returns the names that the
                        apply must leave out and the planned deletions it
                        couldn't carry out.
        :param check: With `protect`, the function that checks ``latest``
                      after the apply (see :meth:`.SafeHardlinkMethod.check()`).
        :param in_place: :data:`True` when no snapshot shares an inode with
                         ``latest``: the transfer is a planned one only when
                         the source's snapshots give the plan or
                         `dry_run_plan` is set (otherwise one rsync walks
                         the whole tree), and its apply changes
                         attributes in place and carries out the deletions
                         and new hard links itself (see :data:`.IN_PLACE_APPLY_OPTIONS`).
        :param dry_run_plan: With `in_place`: :data:`True` to plan with
                             rsync's dry run when the source's snapshots give
                             no plan (so that the manifest can be built from
                             the plan's names), :data:`False` for one rsync
                             over the whole tree then.
        """
        self.directory = directory
        self.rsync_options = list(rsync_options)
        self.protect = protect
        self.check = check
        self.in_place = in_place
        self.dry_run_plan = dry_run_plan

    @property
    def needs_send_plan(self):
        """
        :data:`True` for an in-place target that plans only from the source's
        snapshots: without such a plan, its transfer is one rsync over the
        whole tree (see `in_place` and `dry_run_plan`).
        """
        return self.in_place and not self.dry_run_plan


class SnapshotMethod(object):

    """The parts that every snapshot method shares; subclasses make the snapshots."""

    name = None
    """The method's name, as ``--snapshot-method`` takes it (a string)."""

    shares_files_with_latest = False
    """:data:`True` when snapshots share inodes with ``latest`` (hard links)."""

    copies_reach_disk = False
    """
    :data:`True` when :meth:`copy_tree()` returns only once the snapshot,
    with all of ``latest``'s data in it, is on disk; otherwise the
    filesystem is flushed before the snapshot gets its final name (see
    :func:`.create_snapshot()`).
    """

    writes_shared_files = True
    """
    :data:`True` when the transfer updates the files in ``latest`` in place,
    also those that snapshots share (rather than building a new tree, or
    giving them private copies first).
    """

    changes = None
    """
    What this run's transfer changed in ``latest``: a tuple of the names it
    touched and those among them it deleted (lists of bytes, relative to
    ``latest``), and maybe a third list, of those whose attributes it
    changed in place, maybe without naming the inode's other names (see
    :attr:`.TransferPlan.attributes_only`), or :data:`None` when the
    method doesn't know (then the manifest is built by walking all of
    ``latest``, see :mod:`.manifests.recording`).
    """

    plans_in_place = False
    """
    :data:`True` for the methods whose snapshots share no inode with
    ``latest`` (btrfs and reflink): when the source's snapshots give the plan
    (see :mod:`.transfer.send_plan`), the transfer applies it to ``latest``
    in place without rsync's walk of the whole tree (see :meth:`transfer_target()`).
    """

    def __init__(self, context, directory, filesystem_type, sudo=False, ionice=None):
        """
        Prepare to work on a destination.

        :param context: The destination's execution context.
        :param directory: The destination directory (``latest``, a string).
        :param filesystem_type: The type of its filesystem (see :func:`.ask_filesystem_type()`).
        :param sudo: :data:`True` to run commands with superuser privileges.
        :param ionice: The I/O scheduling class for the copies and removals.
        """
        self.context = context
        self.filesystem_type = filesystem_type
        self.sudo = sudo
        self.ionice = ionice
        self.replacement = Replacement(context, directory, self.remove_trees, sudo=sudo, ionice=ionice)

    @property
    def directory(self):
        """The destination directory (``latest``, a string, without a trailing slash)."""
        return self.replacement.directory

    def prepare(self):
        """
        Get the destination ready before anything is transferred or snapshotted (under the lock).

        :returns: :data:`True` when ``latest`` exists.

        This puts right what an interrupted replacement of ``latest`` left
        behind (see :meth:`.Replacement.recover()`); subclasses add their own
        preparations.
        """
        return self.replacement.recover()

    @contextlib.contextmanager
    def transfer_target(self, snapshot=False, changes_wanted=False):
        """
        Tell rsync where to write, for the duration of a ``with`` block that runs it.

        :param snapshot: :data:`True` when a snapshot follows the transfer in
                         this run (safe-hardlink starts copying then, see
                         :mod:`.early_copy`; the other methods don't need to know).
        :param changes_wanted: :data:`True` when this run's manifest can be
                               built from what the transfer changed (see
                               :attr:`changes`): the methods that
                               :attr:`plans_in_place` then plan with rsync's
                               dry run when the source's snapshots give no
                               plan, rather than run one rsync over the whole
                               tree, after which the manifest would read all of ``latest``.
        :returns: A context manager that gives a :class:`TransferTarget`:
                  ``latest`` itself, for the methods that write in place.

        When a first backup with a method that builds a new tree (link-dest)
        was interrupted, its tree becomes ``latest`` here, so that what it
        transferred is not transferred again. For the methods that
        :attr:`plans_in_place`, the target takes a plan from the source's
        snapshots when there is one (see :meth:`note_plan()` and :meth:`check()`).
        """
        self.replacement.adopt_first_backup()
        if self.plans_in_place:
            yield TransferTarget(self.directory, protect=self.note_plan, check=self.check, in_place=True,
                                 dry_run_plan=changes_wanted)
        else:
            yield TransferTarget(self.directory)

    def note_plan(self, plan):
        """
        Take note of what an in-place apply will change, for the manifest (see :attr:`changes`).

        :param plan: The checked :class:`.TransferPlan`.
        :returns: Two empty lists: the apply itself deletes and links (see :data:`.IN_PLACE_APPLY_OPTIONS`),
                  so nothing is left out or undeleted here.

        A transfer planned with rsync's dry run may plan twice (see
        :func:`.transfer_planned()`): the changes of both passes add up.
        """
        touched, deleted, attributes_only = self.changes or ((), (), ())
        self.changes = (sorted(set(touched) | set(plan.touched_names())), sorted(set(deleted) | plan.deletions),
                        sorted(set(attributes_only) | plan.attributes_only))
        return [], []

    def check(self, plan, source, carried_out, incomplete=False):
        """
        Check ``latest`` after the apply of a planned transfer (see :func:`.check_transfer()`).

        :param plan: The checked :class:`.TransferPlan`.
        :param source: The :class:`.SourceView` of the source.
        :param carried_out: The names that the transfer carried out (a set of bytes).
        :param incomplete: :data:`True` when rsync reported files it couldn't
                           transfer (exit code 23): differences are a warning
                           then, as the run is incomplete anyway.
        :raises: :exc:`.TransferCheckError` when ``latest`` differs from the
                 source (and the transfer wasn't incomplete), see :meth:`reject_transfer()`.
        """
        problems = check_transfer(self.context, self.directory, plan, source, carried_out, sudo=self.sudo,
                                  ionice=self.ionice)
        if problems and incomplete:
            logger.warning("After the planned transfer, %i name(s) differ from the source, like the files rsync "
                           "couldn't transfer: %s.", len(problems), problems[0])
        elif problems:
            self.reject_transfer(problems)

    def reject_transfer(self, problems):
        """
        Fail the run after the check of a planned transfer found differences.

        :param problems: The differences (strings, see :func:`.check_transfer()`).
        :raises: :exc:`.TransferCheckError`. The backup set's record of the
                 source snapshot was removed before the transfer (see
                 :mod:`.transfer.plan_choice`), so the next run's rsync walks the whole tree.
        """
        raise TransferCheckError("After the planned transfer, %i name(s) differ from the source: %s; no snapshot "
                                 "was made, the earlier snapshots are intact, and the next run transfers the whole "
                                 "tree to put it right." % (len(problems), problems[0]))

    def copy_tree(self, directory, target):
        """
        Make a snapshot.

        :param directory: The directory to snapshot (``latest``, a string).
        :param target: The pathname of the new snapshot (a string that doesn't exist yet).
        :raises: :exc:`.SnapshotFailedError` when the snapshot can't be made.
        """
        raise NotImplementedError()

    def run_cp(self, *arguments):
        """
        Run ``cp --archive`` in the destination's context.

        :param arguments: More arguments for cp (strings).
        :returns: The finished command (check its ``returncode``).
        """
        return self.context.execute('cp', '--archive', *arguments, check=False, sudo=self.sudo, ionice=self.ionice,
                                    shell=False, tty=False)

    def copy_with_cp(self, directory, target, option):
        """
        Make a snapshot with ``cp --archive``.

        :param directory: The directory to snapshot (a string).
        :param target: The pathname of the new snapshot (a string).
        :param option: The cp option that decides how data is shared (``--link`` or ``--reflink=always``).
        :raises: :exc:`.SnapshotFailedError` when cp fails.
        """
        copy = self.run_cp(option, directory, target)
        if copy.returncode != 0:
            raise SnapshotFailedError("cp --archive %s failed with exit code %i while snapshotting %s; the earlier "
                                      "snapshots are intact." % (option, copy.returncode, directory))

    def remove_trees(self, context, pathnames, sudo=False, ionice=None, doomed_suffix=None):
        """
        Remove snapshots or other trees: btrfs subvolumes with ``btrfs subvolume delete``, others with ``rm``.

        :param context: The execution context of the trees.
        :param pathnames: The pathnames to remove (a list of strings).
        :param sudo: :data:`True` to remove them with superuser privileges.
        :param ionice: The I/O scheduling class for the removal.
        :param doomed_suffix: See :func:`.operations.remove_trees()`.

        It takes the arguments of :func:`.operations.remove_trees()`, so it
        can take its place. On btrfs every method needs it: ``latest`` and
        the snapshots may be subvolumes from an earlier run with the btrfs
        method, and ``rm`` can't remove read-only ones.
        """
        subvolumes = find_subvolumes(context, pathnames, sudo=sudo) if self.filesystem_type == BTRFS else []
        remove_trees(context, [p for p in pathnames if p not in subvolumes], sudo=sudo, ionice=ionice,
                     doomed_suffix=doomed_suffix)
        if subvolumes and doomed_suffix:
            subvolumes = add_suffix(context, subvolumes, doomed_suffix, sudo=sudo)
        delete_subvolumes(context, subvolumes, sudo=sudo, ionice=ionice)

    def replace_latest(self, build, description):
        """
        Replace ``latest`` with a copy made beside it (see :mod:`.replacement`).

        :param build: A function that builds the copy at the pathname it is given.
        :param description: What is done, for the log (a string).
        :raises: :exc:`.SnapshotMethodError` when building the copy fails;
                 ``latest`` is unchanged then.
        """
        logger.info("%s ..", description)
        new = self.replacement.new_pathname
        try:
            if not build(new):
                raise SnapshotMethodError("Failed to copy %s (see cp's message above); it is unchanged and "
                                          "the earlier snapshots are intact." % self.directory)
        except BaseException:
            with cleanup(failing=True):
                self.replacement.discard(new)
            raise
        self.replacement.swap(existed=True)


class HardlinkMethod(SnapshotMethod):

    """rsync writes ``latest`` in place and snapshots are ``cp --archive --link`` copies of it (version 1.1)."""

    name = 'hardlink'
    shares_files_with_latest = True

    def prepare(self):
        """
        Recover from interrupted runs and keep the files in ``latest`` under the link limit (see :mod:`.hard_links`).

        :returns: :data:`True` when ``latest`` exists.
        """
        exists = super(HardlinkMethod, self).prepare()
        limit = find_link_limit(self.filesystem_type)
        if exists and limit:
            relieve_link_limit(self.context, self.directory, limit, sudo=self.sudo, ionice=self.ionice)
        return exists

    def copy_tree(self, directory, target):
        """Make a snapshot with ``cp --archive --link`` (see :meth:`SnapshotMethod.copy_tree()`)."""
        self.copy_with_cp(directory, target, '--link')


class LinkDestMethod(HardlinkMethod):

    """rsync builds each backup as a new tree (``--link-dest``) that replaces ``latest``; snapshots are hard links."""

    name = 'link-dest'
    writes_shared_files = False

    @contextlib.contextmanager
    def transfer_target(self, snapshot=False, changes_wanted=False):
        """
        Let rsync build a new tree beside ``latest``, which replaces ``latest`` when the block ends normally.

        :param snapshot: See :meth:`SnapshotMethod.transfer_target()`.
        :param changes_wanted: See :meth:`SnapshotMethod.transfer_target()` (the new tree's manifest walks it).
        :returns: A context manager that gives a :class:`TransferTarget`.

        When the block raises (rsync failed or was interrupted), the new tree
        is removed and ``latest`` stays as it was; a first backup's tree is
        kept for the next run to go on with (see :meth:`.Replacement.keep_first_backup()`).
        """
        existed = self.replacement.directory_exists()
        options = ['--link-dest=../%s' % posixpath.basename(self.directory)] if existed else []
        try:
            yield TransferTarget(self.replacement.new_pathname, options)
        except BaseException:
            with cleanup(failing=True):
                self.replacement.keep_first_backup(existed, self.replacement.new_pathname)
            raise
        self.replacement.swap(existed)


class ReflinkMethod(SnapshotMethod):

    """rsync writes ``latest`` in place and snapshots are ``cp --archive --reflink=always`` copies of it."""

    name = 'reflink'
    plans_in_place = True

    def prepare(self):
        """
        Recover from interrupted runs and make sure ``latest`` shares no files with earlier snapshots.

        :returns: :data:`True` when ``latest`` exists.
        """
        exists = super(ReflinkMethod, self).prepare()
        if exists:
            shared = count_shared_files(self.context, self.directory, sudo=self.sudo, ionice=self.ionice)
            if shared:
                self.replace_latest(
                    lambda new: self.run_cp('--reflink=always', self.directory, new).succeeded,
                    "Copying %s with reflinks, because %i of its files are hard-linked to earlier snapshots "
                    "(this happens once, after snapshots with hard links)" % (self.directory, shared),
                )
        return exists

    def copy_tree(self, directory, target):
        """Make a snapshot with ``cp --archive --reflink=always`` (see :meth:`SnapshotMethod.copy_tree()`)."""
        self.copy_with_cp(directory, target, '--reflink=always')


class BtrfsMethod(SnapshotMethod):

    """``latest`` is a btrfs subvolume and snapshots are read-only snapshots of it."""

    name = 'btrfs'
    plans_in_place = True
    copies_reach_disk = True
    """``btrfs subvolume snapshot`` writes ``latest``'s dirty data and commits a transaction before it returns."""

    def prepare(self):
        """
        Recover from interrupted runs and make ``latest`` a subvolume (creating or converting it).

        :returns: :data:`True` (``latest`` exists afterwards).
        """
        if not super(BtrfsMethod, self).prepare():
            logger.info("Creating %s as a btrfs subvolume.", self.directory)
            create_subvolume(self.context, self.directory, sudo=self.sudo)
        elif not find_subvolumes(self.context, [self.directory], sudo=self.sudo):
            self.replace_latest(self.build_subvolume, "Converting %s into a btrfs subvolume (this happens once)"
                                % self.directory)
        return True

    def build_subvolume(self, pathname):
        """
        Create a subvolume holding a copy of ``latest`` (made with reflinks, so it takes no space).

        :param pathname: Where to create it (a string).
        :returns: :data:`True` when the copy succeeded.
        """
        create_subvolume(self.context, pathname, sudo=self.sudo)
        return self.run_cp('--reflink=always', self.directory + '/.', pathname).succeeded

    def copy_tree(self, directory, target):
        """Make a read-only ``btrfs subvolume snapshot`` (see :meth:`SnapshotMethod.copy_tree()`)."""
        snapshot = snapshot_subvolume(self.context, directory, target, sudo=self.sudo)
        if snapshot.returncode != 0:
            raise SnapshotFailedError("btrfs subvolume snapshot failed with exit code %i while snapshotting %s; "
                                      "the earlier snapshots are intact." % (snapshot.returncode, directory))
