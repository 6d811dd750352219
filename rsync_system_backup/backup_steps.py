"""
The steps of a backup run, as methods of :class:`.RsyncSystemBackup`.

:class:`BackupSteps` is the part of :class:`.RsyncSystemBackup` that turns
its settings into the context managers, commands and checks of one run:
:meth:`.RsyncSystemBackup.execute()` calls these methods in order. Each
method hands the real work to the module of its job.
"""

import contextlib
import logging
import os
import posixpath

from rsync_system_backup.checks.configuration import (
    check_configuration,
    check_destination_access,
    ensure_inside_mount_point,
    ensure_supported_platform,
)
from rsync_system_backup.checks.backup_sets import check_not_backup_set, holds_marker
from rsync_system_backup.checks.mount_points import ask_relation, check_destination_filesystem
from rsync_system_backup.checks.new_sets import check_new_set_location
from rsync_system_backup.checks.paths import exclude_backup_from_source
from rsync_system_backup.connections.shared_connection import shared_connection
from rsync_system_backup.connections.tunnel import RSYNCD_PORT, create_tunnel, open_tunnel
from rsync_system_backup.destinations import Destination
from rsync_system_backup.disks.unlock_and_mount import MountedFilesystem, UnlockedDevice
from rsync_system_backup.manifests.recording import ManifestBuilder, ManifestRecorder, take_latest_description
from rsync_system_backup.reporting.notifications import notify
from rsync_system_backup.rotation.plan import rotate_snapshots
from rsync_system_backup.rotation.schemes import check_rotation_scheme
from rsync_system_backup.snapshots.filesystem_features import ask_filesystem_type
from rsync_system_backup.snapshots.method_names import AUTOMATIC
from rsync_system_backup.snapshots.naming import create_snapshot
from rsync_system_backup.backup_set.access import prepare_backup_root, report_open_backup_root
from rsync_system_backup.backup_set.free_space import measure_disk_space
from rsync_system_backup.backup_set.kept import find_free_marks, keep_snapshot
from rsync_system_backup.backup_set.lock import DestinationLock
from rsync_system_backup.backup_set.marker import describe_source, ensure_backup_target, mark_daemon_set
from rsync_system_backup.sources.names import exclude_snapshot_directory
from rsync_system_backup.sources.snapshots import SourceSnapshot
from rsync_system_backup.backup_set.source_record import RECORD_FILE_NAME, remove_record
from rsync_system_backup.transfer.execution import transfer_changes
from rsync_system_backup.transfer.plan_choice import PlanChoice

logger = logging.getLogger(__name__)


class BackupSteps:

    """The steps of one run; :class:`.RsyncSystemBackup` supplies the settings they read."""

    def resolve_relative_paths(self):
        """
        Make a relative source and a relative local destination absolute, against the working directory.

        Version 1.1 let rsync resolve them; resolving them once, here, lets
        the checks, the log and the summary show the paths that are used.
        """
        if not self.source.startswith('/'):
            self.source = os.path.abspath(self.source)
        if self.destination.is_local and not self.destination.directory.startswith('/'):
            self.destination = Destination(directory=os.path.abspath(self.destination.directory))

    def ensure_supported_platform(self):
        """
        Refuse to run anywhere but on Linux, unless :attr:`~.RsyncSystemBackup.force` is set.

        :raises: :exc:`.UnsupportedPlatformError` (see :func:`.ensure_supported_platform()`).
        """
        ensure_supported_platform(self.source_context, self.force)

    def check_configuration(self):
        """
        Refuse a configuration that can't work, before anything is written.

        :raises: See :func:`.check_configuration()`.
        """
        check_configuration(self)

    def check_destination_access(self):
        """
        Refuse a destination system that can't take the backup, through the shared SSH connection.

        :raises: See :func:`.check_destination_access()`.
        """
        check_destination_access(self)

    def check_mounted_destination(self):
        """
        Refuse a destination outside the mounted filesystem, a backup set, or one on another filesystem than its parent.

        This runs once the backup disk is mounted (when there is one) and
        before anything is written: symbolic links on the mounted filesystem
        can be followed then, and a destination that is a mount point or a
        backup set shows. The type of the set's filesystem is found out
        alongside (see :attr:`destination_filesystem_type`).

        :raises: :exc:`.InvalidDestinationDirectory` (see
                 :func:`.ensure_inside_mount_point()`,
                 :func:`.check_not_backup_set()` and
                 :func:`.check_destination_filesystem()`).
        """
        if self.mount_point and self.destination.is_local:
            ensure_inside_mount_point(self)
        if not self.destination.is_daemon:
            context, directory, parent_directory = (self.destination_context, self.destination.directory,
                                                    self.destination.parent_directory)
            # Two questions for later go out first; on an SSH destination their commands run meanwhile.
            with ask_relation(context, directory, parent_directory, sudo=self.sudo_enabled) as relation, \
                    ask_filesystem_type(context, parent_directory, sudo=self.sudo_enabled) as filesystem_type:
                # After an rsync daemon's transfer, or from a source that is a set's directory, the destination
                # holds a copy of the source's entries (a marker, a latest, snapshots): they don't count.
                look_inside = self.daemon_exit_status is None and not holds_marker(self.source)
                check_not_backup_set(context, directory, sudo=self.sudo_enabled, look_inside=look_inside)
                check_destination_filesystem(directory, parent_directory, relation.result())
                self.destination_filesystem_type = filesystem_type.result().strip()

    destination_filesystem_type = None
    """
    The type of the filesystem that holds the backup set, as :meth:`check_mounted_destination()` found it out
    (for :attr:`~.RsyncSystemBackup.snapshot_method_in_use`, which takes it once), or :data:`None`.
    """

    @property
    def crypto_context(self):
        """The execution context for unlocking and mounting: the destination's, or this system's for daemons."""
        return self.source_context if self.destination.is_daemon else self.destination_context

    def ensure_backup_target(self):
        """
        Refuse to overwrite a directory that holds files but was never a backup target, and mark a new target.

        :raises: :exc:`.UnmarkedDestinationError` or, for a set that holds
                 backups of another source, :exc:`.SourceMismatchError`
                 (see :mod:`.backup_set.marker`); :exc:`.NewBackupSetRefused`
                 for a new set where the backup disk looks unmounted.
        """
        ensure_backup_target(self.destination_context, self.destination.directory, self.destination.parent_directory,
                             accept_existing=self.accept_existing, sudo=self.sudo_enabled, dry_run=self.dry_run,
                             source=describe_source(self.source),
                             check_new_set=None if self.create_set else self.check_new_set_location)

    def check_new_set_location(self):
        """
        Refuse a new backup set where the backup disk looks unmounted (unless :attr:`~.RsyncSystemBackup.create_set`).

        :raises: :exc:`.NewBackupSetRefused` (see :func:`.check_new_set_location()`).
        """
        check_new_set_location(self.destination_context, self.destination.parent_directory, sudo=self.sudo_enabled,
                               mount_point=self.mount_point)

    def mark_daemon_set(self):
        """Mark the set of an rsync daemon's module in its ``post-xfer exec`` run (see :func:`.mark_daemon_set()`)."""
        mark_daemon_set(self.destination_context, self.destination.parent_directory, sudo=self.sudo_enabled,
                        dry_run=self.dry_run)

    def lock_destination(self):
        """
        Lock the destination's backup directory against other runs, for the duration of a ``with`` block.

        The directory is created first (closed to other users), or a warning
        says how to close it when it lets them in (see
        :func:`.prepare_backup_root()`; a dry run creates nothing and only
        warns, see :func:`.report_open_backup_root()`).

        :returns: A :class:`.DestinationLock`, or a context manager that does
                  nothing for dry runs (which change nothing) and for rsync
                  daemons (where the daemon's ``post-xfer exec`` run locks).
        """
        if self.destination.is_daemon:
            return contextlib.nullcontext()
        directory = self.destination.parent_directory
        hostname = self.destination.ssh_alias or None
        if self.dry_run:
            report_open_backup_root(self.destination_context, directory, sudo=self.sudo_enabled, hostname=hostname)
            return contextlib.nullcontext()
        prepare_backup_root(self.destination_context, directory, sudo=self.sudo_enabled, hostname=hostname)
        return DestinationLock(self.destination_context, directory, sudo=self.sudo_enabled, wait=self.wait_for_lock)

    def unlock_device(self):
        """
        Unlock :attr:`~.RsyncSystemBackup.crypto_device` for the duration of a ``with`` block.

        :returns: An :class:`.UnlockedDevice`, or a context manager that does
                  nothing when :attr:`~.RsyncSystemBackup.crypto_device` isn't set.
        """
        if not self.crypto_device:
            return contextlib.nullcontext()
        return UnlockedDevice(self.crypto_context, self.crypto_device, sudo=self.sudo_enabled)

    def mount_filesystem(self):
        """
        Mount :attr:`~.RsyncSystemBackup.mount_point` for the duration of a ``with`` block.

        :returns: A :class:`.MountedFilesystem`, or a context manager that
                  does nothing when :attr:`~.RsyncSystemBackup.mount_point` isn't set.
        """
        if not self.mount_point:
            return contextlib.nullcontext()
        return MountedFilesystem(self.crypto_context, self.mount_point, sudo=self.sudo_enabled)

    def share_connection(self):
        """
        Send every command on an SSH destination, and the transfer, through one SSH connection.

        :returns: A context manager (see :func:`.shared_connection()`), or
                  one that does nothing for destinations not reached over SSH.
        """
        if not self.destination.is_remote_shell:
            return contextlib.nullcontext()
        return shared_connection(self.destination_context)

    def open_tunnel(self):
        """
        Open :attr:`~.RsyncSystemBackup.tunnel` for the duration of a ``with`` block.

        :returns: A context manager that gives the open tunnel (see
                  :func:`.open_tunnel()`), or one that gives :data:`None`
                  when :attr:`~.RsyncSystemBackup.tunnel` isn't set.
        """
        if not self.tunnel:
            return contextlib.nullcontext()
        if isinstance(self.tunnel, str):
            return open_tunnel(create_tunnel(self.tunnel, remote_port=self.daemon_port or RSYNCD_PORT))
        return open_tunnel(self.tunnel)

    def prepare_snapshot_method(self):
        """
        Choose the snapshot method afresh and get the destination ready for it (after mounting and locking).

        For an rsync daemon nothing is chosen: the daemon's ``post-xfer exec``
        run makes the snapshots, with a method of its own.
        """
        if self.destination.is_daemon:
            if self.snapshot_method != AUTOMATIC:
                logger.warning("The snapshot method %s has no effect here: the rsync daemon's post-xfer exec command "
                               "makes the snapshots, with its own --snapshot-method.", self.snapshot_method)
            return
        del self.snapshot_method_in_use
        if (self.backup_enabled or self.snapshot_enabled) and not self.dry_run:
            self.snapshot_method_in_use.prepare()

    def transfer_target(self, changes_wanted=False):
        """
        Choose where rsync writes, for the duration of a ``with`` block that runs it.

        :param changes_wanted: :data:`True` when the snapshot's manifest can be
                               built from what the transfer changed (see
                               :attr:`.ManifestBuilder.uses_changes`).
        :returns: A context manager that gives a :class:`.TransferTarget`
                  (see :meth:`.SnapshotMethod.transfer_target()`), or one
                  that gives :data:`None` for dry runs and rsync daemons,
                  where rsync writes to the destination itself.
        """
        if self.dry_run or self.destination.is_daemon:
            return contextlib.nullcontext()
        return self.snapshot_method_in_use.transfer_target(snapshot=self.snapshot_enabled,
                                                           changes_wanted=changes_wanted)

    def snapshot_source(self):
        """
        Take a read-only snapshot of the source for the transfer, where it can be taken.

        :returns: A :class:`.SourceSnapshot`, for a ``with`` block around the
                  transfer (see :attr:`~.RsyncSystemBackup.source_snapshot`).
        """
        return SourceSnapshot(self.source_context, self.source, self.excluded_paths(), mode=self.source_snapshot,
                              sudo=self.sudo_enabled, dry_run=self.dry_run, multi_fs=self.multi_fs)

    def choose_plan(self, origin):
        """
        Read and remove the backup set's record of the source snapshot that ``latest`` equals, before the transfer.

        :param origin: The :class:`.SourceSnapshot` that rsync reads (see :meth:`snapshot_source()`).
        :returns: A :class:`.PlanChoice` (see :mod:`.transfer.plan_choice`),
                  or :data:`None` for dry runs and rsync daemons (whose sets
                  this side can't reach; their ``post-xfer exec`` run removes
                  the record, see :meth:`forget_source_snapshot()`).
        """
        if self.dry_run or self.destination.is_daemon:
            return None
        choice = PlanChoice(self.destination_context, self.destination.parent_directory, origin, self.exclude_list,
                            full_check=self.full_check, sudo=self.sudo_enabled)
        choice.prepare(self.snapshot_method_in_use.replacement.parent_names)
        return choice

    def forget_source_snapshot(self):
        """
        Remove the record of the source snapshot that ``latest`` equals, in an rsync daemon's ``post-xfer exec`` run.

        The transfer that just wrote ``latest`` ran on the client, which can't
        reach the set: whatever the record said is no longer known to be true.
        """
        if not self.dry_run and RECORD_FILE_NAME in self.snapshot_method_in_use.replacement.parent_names:
            remove_record(self.destination_context, self.destination.parent_directory, sudo=self.sudo_enabled)

    def transfer_changes(self, tunnel=None, target=None, origin=None, choice=None):
        """
        Transfer the source to the destination with rsync.

        :param tunnel: An open tunnel to the destination's rsync daemon (see
                       :meth:`open_tunnel()`), or :data:`None`.
        :param target: Where rsync writes (a :class:`.TransferTarget` from
                       :meth:`transfer_target()`), or :data:`None`.
        :param origin: The :class:`.SourceSnapshot` that rsync reads (see
                       :meth:`snapshot_source()`), or :data:`None` for the live source.
        :param choice: The :class:`.PlanChoice` of :meth:`choose_plan()`, or :data:`None`.
        :returns: The :class:`.TransferStatistics` that rsync reported.
        :raises: :exc:`.TransferFailedError` (see :func:`.transfer_changes()`).
        """
        return transfer_changes(self, tunnel, target, origin, choice)

    def excluded_paths(self):
        """
        Everything the transfer leaves out by absolute path (what ``--show-excludes`` shows before the ``-x`` patterns).

        :returns: rsync filter patterns of absolute paths (a list of strings):
                  :attr:`~.RsyncSystemBackup.excluded_roots`, then those of :meth:`backup_inside_source()`,
                  then the directory of the source's snapshots where the source holds one (see
                  :func:`.exclude_snapshot_directory()`).
        """
        return self.excluded_roots + self.backup_inside_source() + exclude_snapshot_directory(self.source)

    def backup_inside_source(self):
        """
        Keep the backup out of its own source.

        :returns: rsync filter patterns (absolute paths, like
                  :attr:`~.RsyncSystemBackup.excluded_roots`) that leave out the backup directory
                  when it lies inside the source (also with :attr:`~.RsyncSystemBackup.multi_fs`).
        """
        if not self.destination.is_local:
            return []
        return exclude_backup_from_source(self.source, self.destination.directory, self.destination.parent_directory)

    def create_snapshot(self, builder=None, names=None):
        """
        Snapshot the destination directory into its parent directory.

        :param builder: The :class:`.ManifestBuilder` of this run (see
                        :meth:`manifest_builder()`), or :data:`None` to start
                        one here (for a caller of this step alone).
        :param names: The names in the parent directory, listed under the
                      lock that the run holds since (see
                      :func:`.naming.create_snapshot()`), or :data:`None`
                      (for a caller of this step alone) to list them.
        :returns: The pathname of the new snapshot (a string).
        """
        if builder is None and not self.dry_run:
            with self.manifest_builder() as started:
                return self.copy_latest(started, names)
        return self.copy_latest(builder, names)

    def copy_latest(self, builder, names=None):
        """
        Snapshot the destination directory, with the manifest that a builder records.

        :param builder: A :class:`.ManifestBuilder`, or :data:`None` (for a dry run).
        :param names: See :meth:`create_snapshot()`.
        :returns: The pathname of the new snapshot (a string).
        """
        method = self.snapshot_method_in_use
        return create_snapshot(
            self.destination_context,
            directory=self.destination.directory,
            parent_directory=self.destination.parent_directory,
            copy_tree=self.snapshot_copier(builder),
            sudo=self.sudo_enabled,
            dry_run=self.dry_run,
            ionice=self.ionice,
            remove=method.remove_trees,
            flush=not method.copies_reach_disk,
            names=names,
        )

    def claim_keep_name(self):
        """
        Refuse a :attr:`~.RsyncSystemBackup.keep_as` that keeps another snapshot already, before anything is written.

        :returns: The marks of the kept snapshots that are there (see :func:`.find_free_marks()`), for
                  :meth:`keep_new_snapshot()`.
        :raises: :exc:`.KeptSnapshotError` (see :func:`.find_free_marks()`).
        """
        return find_free_marks(self.destination_context, self.destination.parent_directory, self.keep_as,
                               sudo=self.sudo_enabled)[1]

    def keep_new_snapshot(self, pathname, marks):
        """
        Keep the snapshot that this run made under :attr:`~.RsyncSystemBackup.keep_as` (before rotation runs).

        :param pathname: The snapshot's pathname (a string; in a dry run, the snapshot it would have made).
        :param marks: What :meth:`claim_keep_name()` gave before the snapshot was made: a mark whose
                      snapshot was gone then stays gone, even when this snapshot got that snapshot's name
                      (two runs in one second).
        :raises: :exc:`.KeptSnapshotError` (see :func:`.keep_snapshot()`).
        """
        if self.dry_run:
            logger.info("Would keep the snapshot %s as %s.", pathname, self.keep_as)
            return
        keep_snapshot(self.destination_context, self.destination.parent_directory, self.keep_as,
                      posixpath.basename(pathname), sudo=self.sudo_enabled, marks=marks)

    @contextlib.contextmanager
    def manifest_builder(self):
        """
        Take note of the manifest that describes ``latest``, and start the program that builds the next one.

        :returns: A context manager that gives a :class:`.ManifestBuilder`
                  when this run makes a snapshot (:data:`None` for dry runs,
                  rsync daemons and runs without a snapshot), and stops it
                  at the end of the ``with`` block when no snapshot came.

        This comes before anything writes to ``latest``: the record of the
        manifest that describes it is taken away (see
        :func:`.take_latest_description()`), so that no manifest is taken for
        a description of ``latest`` after a run that died while changing it.
        """
        if self.dry_run or self.destination.is_daemon or not (self.backup_enabled or self.snapshot_enabled):
            yield None
            return
        described = take_latest_description(self.destination_context, self.destination.parent_directory,
                                            sudo=self.sudo_enabled)
        if not self.snapshot_enabled:
            yield None
            return
        builder = ManifestBuilder(self.destination_context, self.destination.parent_directory,
                                  self.destination.directory if self.manifests_enabled else '',
                                  self.snapshot_method_in_use.name, described, sudo=self.sudo_enabled,
                                  ionice=self.ionice)
        try:
            yield builder
        finally:
            builder.stop()

    def snapshot_copier(self, builder=None):
        """
        Choose the function that copies ``latest`` into a snapshot.

        :param builder: See :meth:`copy_latest()`.
        :returns: The snapshot method's :meth:`~.SnapshotMethod.copy_tree()`,
                  wrapped in a :class:`.ManifestRecorder` (except for dry
                  runs) that records a manifest, with every entry when
                  :attr:`~.RsyncSystemBackup.manifests_enabled` is set.

        The recorder tells the builder what this run's transfer changed in
        ``latest`` (see :meth:`transferred_changes()`).
        """
        method = self.snapshot_method_in_use
        if builder is None:
            return method.copy_tree
        return ManifestRecorder(self.destination_context, self.destination.parent_directory, method.copy_tree,
                                builder, self.transferred_changes(), sudo=self.sudo_enabled)

    def transferred_changes(self):
        """
        Say what this run's transfer changed in ``latest``, for the manifest (see :meth:`.ManifestBuilder.finish()`).

        :returns: The snapshot method's :attr:`~.SnapshotMethod.changes`
                  after a transfer, two empty lists when this run
                  transferred nothing, or :data:`None` after an rsync
                  daemon's transfer (a ``post-xfer exec`` run can't know
                  what the daemon changed).
        """
        if self.backup_enabled:
            return self.snapshot_method_in_use.changes
        return ([], []) if self.daemon_exit_status is None else None

    def rotate_snapshots(self):
        """
        Remove the snapshots that :attr:`~.RsyncSystemBackup.rotation_scheme` doesn't keep.

        :returns: The :class:`.RotationPlan` that was carried out.
        :raises: :exc:`.InvalidOptionError` when :attr:`~.RsyncSystemBackup.rotation_scheme`
                 isn't valid (see :func:`.check_rotation_scheme()`).
        """
        return rotate_snapshots(
            self.destination_context,
            directory=self.destination.parent_directory,
            rotation_scheme=check_rotation_scheme(self.rotation_scheme),
            prefer_recent=self.prefer_recent,
            strict=self.strict,
            dry_run=self.dry_run,
            ionice=self.ionice,
            sudo=self.sudo_enabled,
            remove=self.snapshot_method_in_use.remove_trees,
            planned_snapshot=self.summary.snapshot_pathname if self.dry_run and self.summary else None,
            planned_keep=self.keep_as if self.dry_run else None,
        )

    def measure_disk_space(self):
        """
        Measure the free space on the destination's filesystem.

        :returns: A :class:`.DiskSpace`, or :data:`None` for rsync daemons
                  (which run no commands for us) and for destinations that
                  can't be measured.

        A dry run's destination directory may not exist yet; its parent
        directory is measured then.
        """
        if self.destination.is_daemon:
            return None
        context = self.destination_context
        return (measure_disk_space(context, self.destination.directory)
                or measure_disk_space(context, self.destination.parent_directory))

    def notify_starting(self):
        """Show a desktop notification that the backup starts."""
        if self.notifications_enabled and not self.dry_run:
            notify("Starting the backup to %s." % self.destination.expression)

    def notify_finished(self, timer):
        """
        Show a desktop notification that the backup finished.

        :param timer: A :class:`~humanfriendly.Timer` started with the backup.
        """
        if self.notifications_enabled and not self.dry_run:
            notify("Finished the backup to %s in %s." % (self.destination.expression, timer))

    def notify_failed(self, timer):
        """
        Show a desktop notification that the backup failed.

        :param timer: A :class:`~humanfriendly.Timer` started with the backup.
        """
        if self.notifications_enabled and not self.dry_run:
            notify("The backup to %s failed after %s." % (self.destination.expression, timer), urgency='critical')
