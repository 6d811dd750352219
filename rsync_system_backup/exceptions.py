"""
Exceptions raised by `rsync-system-backup`.

Every problem that the program knows how to explain derives from
:class:`RsyncSystemBackupError`, so callers (the command line interface among
them) can tell a known failure, which deserves a one-line message, from a bug,
which deserves a traceback.
"""


class RsyncSystemBackupError(Exception):
    """Base class for every known problem reported by `rsync-system-backup`."""


class UnsupportedPlatformError(RsyncSystemBackupError):
    """Raised when the program runs on an operating system other than Linux (and isn't forced)."""


class InvalidDestinationError(RsyncSystemBackupError):
    """Raised when a destination expression can't be parsed as an rsync location."""


class MissingBackupDiskError(RsyncSystemBackupError):
    """Raised when the device of the encrypted filesystem, or of the mount point's fstab entry, isn't connected."""


class FailedToUnlockError(RsyncSystemBackupError):
    """Raised when an encrypted filesystem has no usable crypttab entry or stays locked after ``cryptdisks_start``."""


class FailedToMountError(RsyncSystemBackupError):
    """Raised when the mount point still isn't a mount point after ``mount`` ran."""


class DiskCleanupError(RsyncSystemBackupError):
    """Raised when the backup disk stays mounted or unlocked after a run (``umount`` or ``cryptdisks_stop`` failed)."""


class DestinationContextUnavailable(RsyncSystemBackupError):
    """Raised when commands must run on a destination that can't execute them (an rsync daemon)."""


class ParentDirectoryUnavailable(RsyncSystemBackupError):
    """Raised when the destination directory has no parent directory to hold snapshots."""


class InvalidDestinationDirectory(RsyncSystemBackupError):
    """
    Raised when the destination directory can't hold the backup.

    That is a relative path, the root directory, the source itself or a
    directory that holds the source, or a directory that isn't inside the
    mount point (see :func:`.ensure_inside_mount_point()`).
    """


class DestinationIsBackupSetError(InvalidDestinationDirectory):
    """
    Raised when the destination is a backup set itself, one of its snapshots, or lies inside one's data.

    The usual cause is a forgotten ``/latest`` (see :mod:`.checks.backup_sets`);
    the message names the ``latest`` that was probably meant.
    """


class NewBackupSetRefused(InvalidDestinationDirectory):
    """
    Raised when a new backup set would be created where the backup disk looks unmounted (see :mod:`.checks.new_sets`).

    :attr:`.RsyncSystemBackup.create_set` (``--create-set``) creates the set anyway.
    """


class NoBackupSetError(RsyncSystemBackupError):
    """Raised when an action's DESTINATION is neither a backup set's ``latest`` nor a set's directory."""


class InvalidSourceError(RsyncSystemBackupError):
    """Raised when the source of the backup doesn't exist or isn't a directory."""


class InvalidOptionError(RsyncSystemBackupError):
    """Raised when an option or its value is not acceptable."""


class TransferFailedError(RsyncSystemBackupError):
    """Raised when rsync fails to transfer the files (any exit code except 0, 23 and 24)."""


class SnapshotFailedError(RsyncSystemBackupError):
    """Raised when the snapshot of the destination directory can't be created."""


class SSHConnectionError(RsyncSystemBackupError):
    """Raised when an SSH connection (to the destination or the tunnel's host) can't be made or breaks."""


class CommandFailedError(RsyncSystemBackupError):
    """Raised when a command on this system fails (see :mod:`.processes.command_failures`)."""


class ProgramNotFoundError(RsyncSystemBackupError):
    """Raised when a program that a command names isn't installed (see :mod:`.processes.search_path`)."""


class SudoUnavailableError(RsyncSystemBackupError):
    """Raised when a run must become root with sudo on this system and sudo would ask for a password."""


class RemoteCommandError(RsyncSystemBackupError):
    """Raised when a command on a destination reached over SSH fails or isn't installed."""


class TunnelError(RsyncSystemBackupError):
    """Raised when the SSH tunnel to an rsync daemon opens but the daemon doesn't answer through it."""


class BackupInProgressError(RsyncSystemBackupError):
    """Raised when another run holds the lock on the destination."""


class LockFailedError(RsyncSystemBackupError):
    """Raised when the lock on the destination can't be taken for another reason than another run (no ``flock``)."""


class UnmarkedDestinationError(RsyncSystemBackupError):
    """Raised when a backup would overwrite a directory that holds files but was never a backup target."""


class SnapshotMethodError(RsyncSystemBackupError):
    """Raised when the destination can't be made ready for the snapshot method (see :mod:`.snapshots.methods`)."""


class TransferCheckError(SnapshotMethodError):
    """Raised when ``latest`` differs from the source after a planned transfer (see :mod:`.transfer.check`)."""


class DestinationAccessError(RsyncSystemBackupError):
    """Raised when the destination can't be written or read: a read-only or full filesystem, no permission, ..."""


class SourceMismatchError(RsyncSystemBackupError):
    """Raised when a backup set holds backups of another source than the one given (see :mod:`.backup_set.marker`)."""


class KeptSnapshotError(RsyncSystemBackupError):
    """Raised for a kept snapshot's name that is taken or unknown, or a record of them that can't be read."""


class ConfigError(RsyncSystemBackupError):

    """Raised for a configuration file with problems (``--config``): each problem is one line that names its place."""

    def __init__(self, problems):
        """
        Record the problems.

        :param problems: The lines (a list of strings, or a string for one problem).
        """
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super(ConfigError, self).__init__('\n'.join(self.problems))


class HookFailedError(RsyncSystemBackupError):
    """Raised when a job's hook can't start, exits with a status other than 0, or runs longer than its timeout."""
