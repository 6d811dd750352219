"""
Linux system backups with rsync, snapshots and rotation.

The package's API is :class:`RsyncSystemBackup`, with the default rotation
scheme in :data:`DEFAULT_ROTATION_SCHEME`. :class:`RsyncSystemBackup` is
imported on first use, so that the command line can answer ``--help`` and
option errors without loading the libraries a backup needs.
"""

__version__ = '2.0.0'
"""The version of `rsync-system-backup` (a string)."""

DEFAULT_ROTATION_SCHEME = dict(hourly=24, daily=7, weekly=4, monthly='always')
"""
The default rotation scheme: the last 24 hours, 7 days and 4 weeks keep one
snapshot per hour, day and week, and every month keeps one snapshot forever.
"""

__all__ = ('DEFAULT_ROTATION_SCHEME', 'RsyncSystemBackup', '__version__')


def __getattr__(name):
    """Import :class:`RsyncSystemBackup` when it is first asked for."""
    if name == 'RsyncSystemBackup':
        from rsync_system_backup.backup import RsyncSystemBackup
        return RsyncSystemBackup
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
