"""
Unlocking and mounting the backup disk, as reusable context managers.

:class:`UnlockedDevice` opens an encrypted filesystem listed in
``/etc/crypttab`` with ``cryptdisks_start`` and :class:`MountedFilesystem`
mounts a filesystem listed in ``/etc/fstab``. Each one undoes on exit only
what it did on entry, also when the block in between fails, and both run
their commands through an execution context, so they work on the system
behind an SSH destination as well as on this one.
"""

import logging
import posixpath

from rsync_system_backup.exceptions import FailedToMountError, FailedToUnlockError, MissingBackupDiskError
from rsync_system_backup.tabfiles import find_crypttab_entry, parse_crypttab, resolve_device

CRYPTTAB_FILE = '/etc/crypttab'
"""Where the encrypted filesystems are configured."""

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

    @property
    def mapper_device(self):
        """The device that appears when the filesystem is unlocked (a string)."""
        return posixpath.join('/dev/mapper', self.target)

    def find_source_device(self):
        """
        Find the encrypted device of :attr:`target` in ``/etc/crypttab``.

        :returns: The device's pathname (a string).
        :raises: :exc:`.FailedToUnlockError` when crypttab has no such target.
        """
        if not self.context.exists(CRYPTTAB_FILE):
            raise FailedToUnlockError("%s doesn't exist: add an entry for %r to it." % (CRYPTTAB_FILE, self.target))
        text = self.context.read_file(CRYPTTAB_FILE).decode('utf-8', 'replace')
        entry = find_crypttab_entry(parse_crypttab(text), self.target)
        if entry is None:
            raise FailedToUnlockError("%s has no entry for %r: add one (see the documentation)."
                                      % (CRYPTTAB_FILE, self.target))
        return resolve_device(entry.source)

    def ensure_available(self):
        """
        Check that the encrypted device is connected.

        :raises: :exc:`.MissingBackupDiskError` when it isn't.
        """
        device = self.find_source_device()
        if not self.context.exists(device):
            raise MissingBackupDiskError("The backup disk %s (%s in %s) isn't connected."
                                         % (device, self.target, CRYPTTAB_FILE))

    def is_unlocked(self):
        """:data:`True` when :attr:`mapper_device` exists."""
        return self.context.exists(self.mapper_device)

    def __enter__(self):
        """Unlock the filesystem unless it is unlocked already."""
        self.ensure_available()
        if self.is_unlocked():
            logger.info("%s is unlocked already.", self.target)
            return self
        logger.info("Unlocking %s with cryptdisks_start ..", self.target)
        started = self.context.execute('cryptdisks_start', self.target, check=False,
                                       sudo=self.sudo, shell=False, tty=False)
        if not self.is_unlocked():
            raise FailedToUnlockError("cryptdisks_start %s (exit code %i) didn't unlock it: %s is still missing."
                                      % (self.target, started.returncode, self.mapper_device))
        self.unlocked_by_us = True
        return self

    def __exit__(self, exc_type=None, exc_value=None, traceback=None):
        """Lock the filesystem again if :meth:`__enter__` unlocked it."""
        if self.unlocked_by_us:
            logger.info("Locking %s with cryptdisks_stop ..", self.target)
            stopped = self.context.execute('cryptdisks_stop', self.target, check=False,
                                           sudo=self.sudo, shell=False, tty=False)
            if stopped.returncode != 0:
                logger.error("cryptdisks_stop %s failed with exit code %i.", self.target, stopped.returncode)
            self.unlocked_by_us = False


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
        """:data:`True` when :attr:`mount_point` is a mount point."""
        return self.context.test('mountpoint', '-q', self.mount_point, shell=False, tty=False)

    def __enter__(self):
        """Mount the filesystem unless it is mounted already."""
        if self.is_mounted():
            logger.info("%s is mounted already.", self.mount_point)
            return self
        logger.info("Mounting %s ..", self.mount_point)
        mounted = self.context.execute('mount', self.mount_point, check=False, sudo=self.sudo, shell=False, tty=False)
        if not self.is_mounted():
            raise FailedToMountError("Failed to mount %s (mount exited with code %i): check its entry in /etc/fstab."
                                     % (self.mount_point, mounted.returncode))
        self.mounted_by_us = True
        return self

    def __exit__(self, exc_type=None, exc_value=None, traceback=None):
        """Unmount the filesystem if :meth:`__enter__` mounted it."""
        if self.mounted_by_us:
            logger.info("Unmounting %s ..", self.mount_point)
            unmounted = self.context.execute('umount', self.mount_point, check=False,
                                             sudo=self.sudo, shell=False, tty=False)
            if unmounted.returncode != 0:
                logger.error("umount %s failed with exit code %i.", self.mount_point, unmounted.returncode)
            self.mounted_by_us = False
