"""
Unlocking and mounting the backup disk, as reusable context managers.

:class:`UnlockedDevice` opens an encrypted filesystem listed in
``/etc/crypttab`` with ``cryptdisks_start`` and :class:`MountedFilesystem`
mounts a filesystem listed in ``/etc/fstab``. Each one undoes on exit only
what it did on entry, also when the block in between fails, and both run
their commands through an execution context, so they work on the system
behind an SSH destination as well as on this one. Stacked, unlocking comes
first::

    with UnlockedDevice(context, 'backups'), MountedFilesystem(context, '/mnt/backups'):
        ...  # write to /mnt/backups
"""

import logging
import re

from executor.contexts import LocalContext

from rsync_system_backup.disks.tabfiles import (
    find_crypttab_entry,
    find_fstab_entry,
    parse_crypttab,
    parse_fstab,
    resolve_device,
)
from rsync_system_backup.exceptions import (
    DiskCleanupError,
    FailedToMountError,
    FailedToUnlockError,
    MissingBackupDiskError,
    ProgramNotFoundError,
)
from rsync_system_backup.processes.search_path import check_program_found, require_program

CRYPTTAB_FILE = '/etc/crypttab'
"""Where the encrypted filesystems are configured."""

FSTAB_FILE = '/etc/fstab'
"""Where the filesystems that ``mount DIRECTORY`` knows are configured."""

UDEV_PLAIN_VALUE = re.compile(r'(?:[0-9A-Za-z#+.:=@_-]|\\x2f|[^\x00-\x7f])+\Z')
"""
A tag's value in a ``/dev/disk/by-*`` link name that udev writes as it is:
any other character (a space, say) becomes a ``\\xNN`` escape there, which
:func:`.resolve_device()` reproduces only for ``/``.
"""

logger = logging.getLogger(__name__)


class UnlockedDevice(object):

    """Keeps an encrypted filesystem unlocked for the duration of a ``with`` block."""

    def __init__(self, context, target, sudo=False):
        """
        Prepare to unlock an encrypted filesystem.

        :param context: The execution context of the system with the disk.
        :param target: The target name in ``/etc/crypttab`` (a string).
        :param sudo: :data:`True` to run ``cryptdisks_start/stop`` with sudo.
        """
        self.context = context
        self.target = target
        self.sudo = sudo
        self.unlocked_by_us = False

    def find_entry(self):
        """
        Find :attr:`target` in ``/etc/crypttab``.

        :returns: A :class:`.CrypttabEntry`.
        :raises: :exc:`.FailedToUnlockError` when the file can't be read or
                 has no entry for :attr:`target`.
        """
        text = read_table(self.context, CRYPTTAB_FILE, FailedToUnlockError)
        entry = find_crypttab_entry(parse_crypttab(text), self.target)
        if entry is None:
            raise FailedToUnlockError("%s has no entry for %r: add one (see the documentation on encrypted disks)."
                                      % (CRYPTTAB_FILE, self.target))
        return entry

    def find_source_device(self):
        """
        Find the encrypted device of :attr:`target`.

        :returns: The device's pathname (a string): the source field of its
                  ``/etc/crypttab`` entry, where ``UUID=``, ``LABEL=``,
                  ``PARTUUID=`` and ``PARTLABEL=`` lead to ``/dev/disk/by-*``.
        :raises: :exc:`.FailedToUnlockError` (see :meth:`find_entry()`, and
                 for a tag without a value such as ``UUID=``).
        """
        entry = self.find_entry()
        try:
            return entry.device
        except ValueError as e:
            raise FailedToUnlockError("The entry for %r in %s names no device: %s" % (self.target, CRYPTTAB_FILE, e))

    def ensure_available(self):
        """
        Check that the encrypted device is connected.

        :raises: :exc:`.MissingBackupDiskError` when it isn't, or
                 :exc:`.FailedToUnlockError` (see :meth:`find_source_device()`).
        """
        device = self.find_source_device()
        if not self.context.exists(device):
            raise MissingBackupDiskError("The backup disk %s (%s in %s) isn't connected."
                                         % (device, self.target, CRYPTTAB_FILE))

    @property
    def mapper_device(self):
        """The device that appears when the filesystem is unlocked (a string)."""
        return '/dev/mapper/' + self.target

    def is_unlocked(self):
        """:data:`True` when :attr:`mapper_device` exists."""
        return self.context.exists(self.mapper_device)

    def __enter__(self):
        """
        Unlock the filesystem unless it is unlocked already.

        :raises: :exc:`.MissingBackupDiskError` when the disk isn't connected,
                 :exc:`.ProgramNotFoundError` when ``cryptdisks_start``
                 isn't installed, or (on this system) ``cryptdisks_stop``,
                 which would lock it again, :exc:`.FailedToUnlockError` when the
                 disk is still locked after ``cryptdisks_start`` ran (or
                 has no usable crypttab entry).
        """
        self.ensure_available()
        if self.is_unlocked():
            logger.info("%s is unlocked already.", self.target)
            return self
        if isinstance(self.context, LocalContext):
            require_program('cryptdisks_start')
            require_program('cryptdisks_stop')
        logger.info("Unlocking %s with cryptdisks_start ..", self.target)
        started = check_program_found(self.context.execute('cryptdisks_start', self.target, check=False,
                                                           sudo=self.sudo, shell=False, tty=False))
        if not self.is_unlocked():
            raise FailedToUnlockError("cryptdisks_start %s (exit code %i) didn't unlock it: %s is still missing."
                                      % (self.target, started.returncode, self.mapper_device))
        self.unlocked_by_us = True
        return self

    def __exit__(self, exc_type=None, exc_value=None, traceback=None):
        """
        Lock the filesystem again if :meth:`__enter__` unlocked it.

        :raises: :exc:`.DiskCleanupError` when it stays unlocked after a
                 block that succeeded (after a failed block, which is
                 reported already, this is logged as an error).
        """
        if self.unlocked_by_us:
            self.unlocked_by_us = False
            logger.info("Locking %s with cryptdisks_stop ..", self.target)
            try:
                stopped = self.context.execute('cryptdisks_stop', self.target, check=False,
                                               sudo=self.sudo, shell=False, tty=False)
            except ProgramNotFoundError as error:
                report_cleanup_failure(exc_type, "the disk is still unlocked: %s Then lock it with "
                                                 "'cryptdisks_stop %s' before you unplug it." % (error, self.target))
                return
            # cryptdisks_stop exits 0 even when it fails, so look for the device.
            if stopped.returncode != 0 or self.is_unlocked():
                report_cleanup_failure(exc_type, "cryptdisks_stop %s (exit code %i) didn't lock it: %s still exists, "
                                                 "so the disk is still unlocked; lock it with 'cryptdisks_stop %s' "
                                                 "before you unplug it."
                                       % (self.target, stopped.returncode, self.mapper_device, self.target))


class MountedFilesystem(object):

    """Keeps a filesystem (listed in ``/etc/fstab``) mounted for the duration of a ``with`` block."""

    def __init__(self, context, mount_point, sudo=False):
        """
        Prepare to mount a filesystem.

        :param context: The execution context of the system with the disk.
        :param mount_point: The directory to mount (a string).
        :param sudo: :data:`True` to run ``mount`` and ``umount`` with sudo.
        """
        self.context = context
        self.mount_point = mount_point
        self.sudo = sudo
        self.mounted_by_us = False

    def is_mounted(self):
        """
        Check whether :attr:`mount_point` is a mount point.

        :returns: :data:`True` when it is, :data:`False` otherwise.
        :raises: :exc:`.ProgramNotFoundError` when ``mountpoint`` isn't installed.
        """
        probe = self.context.execute('mountpoint', '-q', '--', self.mount_point, check=False, silent=True,
                                     shell=False, tty=False)
        return check_program_found(probe).succeeded

    def find_device(self):
        """
        Find the device that :attr:`mount_point`'s entry in ``/etc/fstab`` mounts.

        :returns: The device's pathname (a string; ``UUID=``, ``LABEL=``, ...
                  lead to ``/dev/disk/by-*``), or :data:`None` when the file
                  can't be read, has no entry for the mount point, or its
                  device is no pathname (``server:/export``, ``tmpfs``) or a
                  tag whose value udev would write with escapes (see
                  :data:`UDEV_PLAIN_VALUE`): a pathname that is wrong would
                  make a connected disk look unplugged, and the run skip quietly.
        """
        try:
            text = read_table(self.context, FSTAB_FILE, FailedToMountError)
        except FailedToMountError:
            return None
        entry = find_fstab_entry(parse_fstab(text), self.mount_point)
        if entry is None:
            return None
        try:
            device = resolve_device(entry.device)
        except ValueError:
            return None
        if device != entry.device and not UDEV_PLAIN_VALUE.match(device.rpartition('/')[2]):
            return None
        return device if device.startswith('/') else None

    def ensure_available(self):
        """
        Check that the disk to mount is connected, unless :attr:`mount_point` is mounted already.

        :raises: :exc:`.MissingBackupDiskError` when the device of its entry
                 in ``/etc/fstab`` (see :meth:`find_device()`) doesn't exist.
                 Anything else that keeps it from being mounted is left to
                 :meth:`__enter__` to report.
        """
        if self.is_mounted():
            return
        device = self.find_device()
        if device and not self.context.exists(device):
            raise MissingBackupDiskError("The backup disk %s (%s in %s) isn't connected."
                                         % (device, self.mount_point, FSTAB_FILE))

    def __enter__(self):
        """
        Mount the filesystem unless it is mounted already.

        :raises: :exc:`.ProgramNotFoundError` when ``mount`` isn't
                 installed, or (on this system) ``umount``, which would
                 unmount it again, :exc:`.FailedToMountError` when :attr:`mount_point`
                 still isn't a mount point after ``mount`` ran.
        """
        if self.is_mounted():
            logger.info("%s is mounted already.", self.mount_point)
            return self
        if isinstance(self.context, LocalContext):
            require_program('umount')
        logger.info("Mounting %s ..", self.mount_point)
        mounted = check_program_found(self.context.execute('mount', '--', self.mount_point, check=False,
                                                           sudo=self.sudo, shell=False, tty=False))
        if not self.is_mounted():
            if mounted.returncode == 0:
                problem = "mount reported success, but it still isn't a mount point"
            else:
                problem = "mount exited with code %i" % mounted.returncode
            raise FailedToMountError("Failed to mount %s (%s): %s"
                                     % (self.mount_point, problem, self.describe_fstab_entry()))
        self.mounted_by_us = True
        return self

    def describe_fstab_entry(self):
        """
        Tell the user where to look when mounting failed.

        :returns: Advice that quotes :attr:`mount_point`'s entry in
                  ``/etc/fstab``, or says that it has none (a string).
        """
        try:
            entry = find_fstab_entry(parse_fstab(read_table(self.context, FSTAB_FILE, FailedToMountError)),
                                     self.mount_point)
        except FailedToMountError as e:
            return str(e)
        if entry is None:
            return "%s has no entry for it: add one (with the noauto option)." % FSTAB_FILE
        return "check its entry in %s (device %s, type %s, options %s) and whether the device is there." % (
            FSTAB_FILE, entry.device, entry.fs_type, ','.join(entry.options))

    def __exit__(self, exc_type=None, exc_value=None, traceback=None):
        """
        Unmount the filesystem if :meth:`__enter__` mounted it.

        :raises: :exc:`.DiskCleanupError` when it stays mounted after a
                 block that succeeded (after a failed block, which is
                 reported already, this is logged as an error).
        """
        if self.mounted_by_us:
            self.mounted_by_us = False
            logger.info("Unmounting %s ..", self.mount_point)
            try:
                unmounted = self.context.execute('umount', '--', self.mount_point, check=False,
                                                 sudo=self.sudo, shell=False, tty=False)
            except ProgramNotFoundError as error:
                report_cleanup_failure(exc_type, "the disk is still mounted: %s Then unmount it with 'umount %s'."
                                       % (error, self.mount_point))
                return
            if unmounted.returncode != 0 or self.is_mounted():
                report_cleanup_failure(exc_type, "umount %s failed with exit code %i: the disk is still mounted; "
                                                 "see what keeps it busy with 'fuser -vm %s' and unmount it with "
                                                 "'umount %s'." % (self.mount_point, unmounted.returncode,
                                                                   self.mount_point, self.mount_point))


def report_cleanup_failure(exc_type, message):
    """
    Report a backup disk that stays mounted or unlocked.

    :param exc_type: The type of the exception that ended the ``with`` block, or :data:`None`.
    :param message: What failed and what to do (a string).
    :raises: :exc:`.DiskCleanupError` when the block succeeded, so that the
             run doesn't end as a success; otherwise the block's own failure
             stays the reported one and this is logged as an error.
    """
    if exc_type is None:
        raise DiskCleanupError("The backup is done, but %s" % message)
    logger.error("%s", message)


def read_table(context, filename, exception_type):
    """
    Read ``/etc/crypttab`` or ``/etc/fstab`` in an execution context.

    :param context: The execution context of the system with the file.
    :param filename: The pathname of the file (a string).
    :param exception_type: The exception to raise when it can't be read.
    :returns: The contents of the file (a string).
    :raises: `exception_type` with ``cat``'s complaint when the file is missing or unreadable.
    """
    cat = context.execute('cat', '--', filename, capture=True, capture_stderr=True, check=False, shell=False, tty=False)
    if cat.returncode != 0:
        complaint = cat.stderr.decode('utf-8', 'replace').strip() or "cat exited with code %i" % cat.returncode
        raise exception_type("Can't read %s: %s" % (filename, complaint))
    return cat.stdout.decode('utf-8', 'surrogateescape')
