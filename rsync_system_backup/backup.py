"""
The :class:`RsyncSystemBackup` orchestrator.

It strings the steps of a system backup together: unlock and mount the backup
disk when asked to, transfer the system with rsync, snapshot the result and
rotate old snapshots, then undo the unlocking and mounting. Each step lives in
a module of its own; this class holds the configuration and the order.
"""

import contextlib
import logging
import os
import posixpath

from executor.contexts import create_context
from humanfriendly import Timer
from property_manager import PropertyManager, cached_property, lazy_property, mutable_property, set_property

from rsync_system_backup import DEFAULT_ROTATION_SCHEME
from rsync_system_backup.destinations import Destination
from rsync_system_backup.disks import MountedFilesystem, UnlockedDevice
from rsync_system_backup.exceptions import (
    DestinationContextUnavailable,
    InvalidDestinationDirectory,
    InvalidDestinationError,
    InvalidSourceError,
    TransferFailedError,
    UnsupportedPlatformError,
)
from rsync_system_backup.filesystem import make_directory
from rsync_system_backup.notifications import notify
from rsync_system_backup.rotation import rotate_snapshots
from rsync_system_backup.rsync_command import DEFAULT_EXCLUDED_ROOTS, WARNING_EXIT_CODES, build_rsync_command
from rsync_system_backup.snapshots import create_snapshot

logger = logging.getLogger(__name__)


class RsyncSystemBackup(PropertyManager):

    """
    Make a full system backup with rsync, a hard-link snapshot and rotation.

    Give the properties as keyword arguments and call :meth:`execute()`::

        from rsync_system_backup import RsyncSystemBackup
        RsyncSystemBackup(destination='/mnt/backups/latest').execute()
    """

    @mutable_property
    def backup_enabled(self):
        """:data:`True` to transfer the source to the destination with rsync (the default)."""
        return True

    @mutable_property
    def snapshot_enabled(self):
        """:data:`True` to snapshot the destination directory after the transfer (the default)."""
        return True

    @mutable_property
    def rotate_enabled(self):
        """:data:`True` to rotate old snapshots after the snapshot (the default)."""
        return True

    @mutable_property
    def crypto_device(self):
        """The target name in ``/etc/crypttab`` of an encrypted filesystem to unlock (a string or :data:`None`)."""
        return None

    @mutable_property
    def mount_point(self):
        """A directory listed in ``/etc/fstab`` to mount during the backup (a string or :data:`None`)."""
        return None

    @mutable_property
    def destination(self):
        """
        Where the backup goes (a :class:`.Destination`; strings are parsed).

        It defaults to ``$RSYNC_MODULE_PATH``, which an rsync daemon sets for
        its ``post-xfer exec`` command.

        :raises: :exc:`.InvalidDestinationError` when neither was given.
        """
        module_path = os.environ.get('RSYNC_MODULE_PATH')
        if not module_path:
            raise InvalidDestinationError("No destination given (and $RSYNC_MODULE_PATH is not set).")
        value = Destination(expression=module_path)
        set_property(self, 'destination', value)
        return value

    @destination.setter
    def destination(self, value):
        """Parse a string into a :class:`.Destination` and forget the old destination's context."""
        if not isinstance(value, Destination):
            value = Destination(expression=value)
        set_property(self, 'destination', value)
        if 'destination_context' in self.__dict__:
            del self.destination_context

    @cached_property
    def destination_context(self):
        """
        The execution context of the system that holds the destination directory.

        A local context for local destinations and an SSH context for
        ``host:directory`` destinations.

        :raises: :exc:`.DestinationContextUnavailable` for rsync daemon
                 destinations, where the client can't run commands.
        """
        if self.destination.is_daemon:
            raise DestinationContextUnavailable(
                "Can't run commands on the rsync daemon %s, so snapshots and rotation can't be done from here: "
                "use -b/--backup alone and let the daemon run 'rsync-system-backup --snapshot --rotate' "
                "as its post-xfer exec command." % self.destination.hostname
            )
        if self.destination.is_remote_shell:
            return create_context(ssh_alias=self.destination.ssh_alias, ssh_user=self.destination.username or None,
                                  tty=False)
        return create_context()

    @mutable_property
    def dry_run(self):
        """:data:`True` to only report what would change (rsync runs with ``--dry-run``)."""
        return False

    @mutable_property
    def multi_fs(self):
        """:data:`True` to let rsync cross filesystem boundaries (no ``--one-file-system``)."""
        return False

    @lazy_property(writable=True)
    def exclude_list(self):
        """rsync exclude patterns given by the user (a list of strings)."""
        return []

    @lazy_property(writable=True)
    def excluded_roots(self):
        """
        Absolute paths on the source system that are left out of the backup (a list of strings).

        See :data:`.DEFAULT_EXCLUDED_ROOTS` for the defaults and how they match.
        """
        return list(DEFAULT_EXCLUDED_ROOTS)

    @mutable_property
    def force(self):
        """:data:`True` to run on operating systems other than Linux."""
        return False

    @mutable_property
    def ionice(self):
        """The I/O scheduling class (``idle``, ``best-effort`` or ``realtime``) for rsync, cp and rm, or :data:`None`."""
        return None

    @mutable_property
    def notifications_enabled(self):
        """:data:`True` to show desktop notifications when the backup starts, finishes and fails."""
        return True

    @lazy_property(writable=True)
    def rotation_scheme(self):
        """The rotation scheme (a :class:`dict`, see :data:`.DEFAULT_ROTATION_SCHEME`)."""
        return dict(DEFAULT_ROTATION_SCHEME)

    @mutable_property
    def source(self):
        """The directory to back up (a string, ``/`` by default)."""
        return '/'

    @lazy_property(writable=True)
    def source_context(self):
        """The execution context in which rsync runs (the local system)."""
        return create_context()

    @mutable_property
    def sudo_enabled(self):
        """:data:`True` to run rsync, cp and rm with sudo when not running as root (the default)."""
        return True

    def execute(self):
        """
        Run the enabled steps: unlock, mount, transfer, snapshot, rotate, unmount and lock.

        :raises: :exc:`.RsyncSystemBackupError` subclasses for known
                 problems; every cleanup has run by then.
        """
        self.ensure_supported_platform()
        self.check_configuration()
        timer = Timer()
        self.notify_starting()
        try:
            with contextlib.ExitStack() as stack:
                stack.enter_context(self.unlock_device())
                stack.enter_context(self.mount_filesystem())
                if self.backup_enabled:
                    self.transfer_changes()
                if self.snapshot_enabled:
                    self.create_snapshot()
                if self.rotate_enabled:
                    self.rotate_snapshots()
        except BaseException:
            self.notify_failed(timer)
            raise
        self.notify_finished(timer)

    def check_configuration(self):
        """
        Refuse a configuration that can't work, before anything is written.

        :raises: :exc:`.InvalidSourceError`,
                 :exc:`.DestinationContextUnavailable`,
                 :exc:`.InvalidDestinationDirectory` or
                 :exc:`.MissingBackupDiskError`.
        """
        if self.backup_enabled and not os.path.isdir(self.source):
            problem = "is not a directory" if os.path.exists(self.source) else "doesn't exist"
            raise InvalidSourceError("The source %s %s: give the directory to back up." % (self.source, problem))
        if self.snapshot_enabled or self.rotate_enabled:
            # Raises DestinationContextUnavailable for rsync daemons.
            self.destination_context
        if self.mount_point and not self.destination.module:
            self.ensure_inside_mount_point()
        if self.crypto_device:
            UnlockedDevice(self.crypto_context, self.crypto_device).ensure_available()

    def ensure_inside_mount_point(self):
        """
        Check that the destination directory is on the filesystem that gets mounted.

        :raises: :exc:`.InvalidDestinationDirectory` when it isn't, since the
                 backup would then fill the filesystem under the mount point.
        """
        mount_point = posixpath.normpath(self.mount_point)
        directory = posixpath.normpath(self.destination.directory)
        if posixpath.commonpath([mount_point, directory]) != mount_point or directory == mount_point:
            raise InvalidDestinationDirectory(
                "The destination %s is not inside the mount point %s: put it in a subdirectory of %s."
                % (self.destination.directory, self.mount_point, self.mount_point)
            )

    @property
    def crypto_context(self):
        """The execution context for unlocking and mounting: the destination's, or this system's for daemons."""
        return self.source_context if self.destination.is_daemon else self.destination_context

    def ensure_supported_platform(self):
        """
        Refuse to run anywhere but on Linux, unless :attr:`force` is set.

        :raises: :exc:`.UnsupportedPlatformError`.
        """
        system = self.source_context.capture('uname', shell=False).strip()
        if system != 'Linux':
            if not self.force:
                raise UnsupportedPlatformError(
                    "This program was made for Linux, not %s: use -f/--force to run it anyway." % (system or "an unknown system")
                )
            logger.warning("Running on %s, which is not supported (forced).", system)

    def unlock_device(self):
        """
        Unlock :attr:`crypto_device` for the duration of a ``with`` block.

        :returns: An :class:`.UnlockedDevice`, or a context manager that does
                  nothing when :attr:`crypto_device` isn't set.
        """
        if not self.crypto_device:
            return contextlib.nullcontext()
        return UnlockedDevice(self.crypto_context, self.crypto_device, sudo=self.sudo_enabled)

    def mount_filesystem(self):
        """
        Mount :attr:`mount_point` for the duration of a ``with`` block.

        :returns: A :class:`.MountedFilesystem`, or a context manager that
                  does nothing when :attr:`mount_point` isn't set.
        """
        if not self.mount_point:
            return contextlib.nullcontext()
        return MountedFilesystem(self.crypto_context, self.mount_point, sudo=self.sudo_enabled)

    def transfer_changes(self):
        """
        Transfer the source to the destination with rsync.

        Exit codes 23 and 24 (some files couldn't be read, or vanished) are
        logged as warnings; the backup goes on.

        :raises: :exc:`.TransferFailedError` for any other nonzero exit code.
        """
        if not self.dry_run and not self.destination.is_daemon:
            make_directory(self.destination_context, self.destination.directory, sudo=self.sudo_enabled)
        command = build_rsync_command(
            source=self.source,
            destination=self.destination.expression,
            dry_run=self.dry_run,
            multi_fs=self.multi_fs,
            excluded_roots=self.excluded_roots,
            exclude_list=self.exclude_list,
        )
        logger.info("Transferring %s to %s ..", self.source, self.destination.expression)
        timer = Timer()
        rsync = self.source_context.execute(
            *command, check=False, shell=False, environment=dict(HOME=''),
            ionice=self.ionice, sudo=self.sudo_enabled,
        )
        if rsync.returncode in WARNING_EXIT_CODES:
            logger.warning("rsync exited with code %i: %s; the backup goes on.",
                           rsync.returncode, WARNING_EXIT_CODES[rsync.returncode])
        elif rsync.returncode != 0:
            raise TransferFailedError("rsync failed with exit code %i; no snapshot was made and the earlier "
                                      "snapshots are intact." % rsync.returncode)
        logger.info("Transferred %s to %s in %s.", self.source, self.destination.expression, timer)

    def create_snapshot(self):
        """
        Snapshot the destination directory into its parent directory.

        :returns: The pathname of the new snapshot (a string).
        """
        return create_snapshot(
            self.destination_context,
            directory=self.destination.directory,
            parent_directory=self.destination.parent_directory,
            sudo=self.sudo_enabled,
            dry_run=self.dry_run,
            ionice=self.ionice,
        )

    def rotate_snapshots(self):
        """
        Remove the snapshots that :attr:`rotation_scheme` doesn't keep.

        :returns: The :class:`.RotationPlan` that was carried out.
        """
        return rotate_snapshots(
            self.destination_context,
            directory=self.destination.parent_directory,
            rotation_scheme=self.rotation_scheme,
            dry_run=self.dry_run,
            ionice=self.ionice,
            sudo=self.sudo_enabled,
        )

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
