"""
``--keep=NAME:SNAPSHOT`` and ``--release=NAME``: keeping an existing snapshot, and letting a kept one go.

These change nothing but the record of the kept snapshots (see
:mod:`.backup_set.kept`), under the set's lock, as a backup would; the
snapshot that a backup makes is kept with ``--keep=NAME`` alone (see
:attr:`.RsyncSystemBackup.keep_as`).
"""

import contextlib

from rsync_system_backup.backup_set.kept import keep_snapshot, release_snapshot
from rsync_system_backup.backup_set.lock import DestinationLock


def change_kept(backup_set, action, value):
    """
    Keep a snapshot or let one go, under the set's lock (a dry run only says what it would do, without the lock).

    :param backup_set: A :class:`.BackupSet`.
    :param action: ``--keep`` or ``--release``.
    :param value: For ``--keep`` a tuple of the name and the snapshot's
                  name, for ``--release`` the name (strings).
    :returns: The exit code (0).
    :raises: :exc:`.NoBackupSetError` where there is no backup set,
             :exc:`.KeptSnapshotError` (see :func:`.keep_snapshot()` and
             :func:`.release_snapshot()`), and :exc:`.BackupInProgressError`
             when another run holds the lock (see ``--wait``).
    """
    backup_set.check_holds_set()
    program = backup_set.program
    options = dict(sudo=program.sudo_enabled, dry_run=program.dry_run)
    lock = contextlib.nullcontext() if program.dry_run else DestinationLock(
        backup_set.context, backup_set.directory, sudo=program.sudo_enabled, wait=program.wait_for_lock)
    with lock:
        if action == '--keep':
            keep_snapshot(backup_set.context, backup_set.directory, *value, **options)
        else:
            release_snapshot(backup_set.context, backup_set.directory, value, **options)
    return 0
