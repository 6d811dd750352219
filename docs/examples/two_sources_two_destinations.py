#!/usr/bin/env python3
"""
Back up two directories to two destinations, with a rotation scheme of their own.

Every source goes to every destination, into a directory named after the
source, so each pair has its own ``latest`` and its own snapshots. A failure
of one backup doesn't stop the others; the exit code says whether all
succeeded.
"""

import logging
import sys

import coloredlogs

from rsync_system_backup import RsyncSystemBackup
from rsync_system_backup.exceptions import RsyncSystemBackupError

SOURCES = {'system': '/', 'home': '/home'}
"""The directories to back up, by the name their backups get."""

DESTINATIONS = ['/mnt/usb-disk/backups', 'backup-server:/srv/backups']
"""Where the backups go: a local disk and a directory reached over SSH."""

ROTATION_SCHEME = dict(daily=14, weekly=8, monthly=12, yearly='always')
"""Two weeks of daily, two months of weekly and a year of monthly snapshots; one per year forever."""

logger = logging.getLogger('backup-two-sources')


def back_up(sources, destinations, rotation_scheme):
    """
    Back up every source to every destination.

    :param sources: A dict from names to the directories to back up.
    :param destinations: The directories that receive the backups.
    :param rotation_scheme: The rotation scheme for every backup.
    :returns: The number of backups that failed.
    """
    failures = 0
    for destination in destinations:
        for name, source in sorted(sources.items()):
            program = RsyncSystemBackup(
                source=source,
                destination='%s/%s/latest' % (destination.rstrip('/'), name),
                rotation_scheme=rotation_scheme,
                prefer_recent=True,
                ionice='idle',
                notifications_enabled=False,
            )
            try:
                program.execute()
            except RsyncSystemBackupError as e:
                logger.error("Backup of %s to %s failed: %s", source, destination, e)
                failures += 1
            else:
                print(program.summary.format_line())
    return failures


if __name__ == '__main__':
    coloredlogs.install()
    sys.exit(1 if back_up(SOURCES, DESTINATIONS, ROTATION_SCHEME) else 0)
