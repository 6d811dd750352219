"""
``--verify`` and ``--verify-all``: reading snapshots back and comparing them with their manifests.

Every file of the snapshot is read and its checksum compared, along with
each entry's type, size, mode, owner, group, modification time and link
target; every changed, missing or extra entry is named. Only the snapshot
and its manifest are read (never ``latest`` or the source), with the run's
I/O scheduling class (``-i/--ionice``).
"""

import logging
import sys

from rsync_system_backup.actions.differences import EXIT_DIFFERENT, render_differences
from rsync_system_backup.exceptions import RsyncSystemBackupError
from rsync_system_backup.manifests.compare import Differences
from rsync_system_backup.manifests.remote import run_agent

logger = logging.getLogger(__name__)


WITHOUT_ENTRIES = ("The newest snapshot %s has no manifest with entries (it was made with --no-manifest, or by an "
                   "older version), so it can't be verified: make backups without --no-manifest.")
"""The message for a newest snapshot that can't be verified."""


class NothingToVerifyError(RsyncSystemBackupError):
    """Raised when no snapshot has a manifest to verify it with."""


def choose_snapshots(backup_set, every=False):
    """
    Pick the snapshots to verify.

    :param backup_set: A :class:`.BackupSet`.
    :param every: :data:`True` for every snapshot that has a manifest, :data:`False` for the newest.
    :returns: Snapshot names, oldest first (a list of strings).
    :raises: :exc:`NothingToVerifyError` when there is nothing to verify.
    """
    present = backup_set.manifests
    if every:
        names = [name for name in backup_set.snapshots if name in present]
        if not names:
            raise NothingToVerifyError("No snapshot in %s has a manifest, so none can be verified: "
                                       "make backups without --no-manifest." % backup_set.directory)
        return names
    newest = backup_set.newest
    if newest is None:
        raise NothingToVerifyError("There is no snapshot in %s to verify." % backup_set.directory)
    if newest not in present:
        raise NothingToVerifyError(WITHOUT_ENTRIES % backup_set.pathname(newest))
    return [newest]


def verify_snapshots(backup_set, every=False, show_progress=False):
    """
    Verify snapshots and print what differs on standard output.

    :param backup_set: A :class:`.BackupSet`.
    :param every: See :func:`choose_snapshots()`.
    :param show_progress: :data:`True` to show progress on standard error.
    :returns: The exit code: 0 when every snapshot is intact, :data:`EXIT_DIFFERENT` otherwise.
    """
    program = backup_set.program
    names = choose_snapshots(backup_set, every)
    skipped = len(backup_set.snapshots) - len(names)
    damaged = verified = 0
    for name in names:
        result = run_agent(backup_set.context, 'verify', backup_set.directory, name, sudo=program.sudo_enabled,
                           ionice=program.ionice, progress=show_progress)
        if result['entries'] is None:
            if not every:
                raise NothingToVerifyError(WITHOUT_ENTRIES % backup_set.pathname(name))
            skipped += 1
            continue
        verified += 1
        differences = Differences.from_dict(result['differences'])
        if differences:
            damaged += 1
            sys.stdout.write(render_differences(differences, name, extra='extra', missing='missing'))
            logger.error("The snapshot %s differs from its manifest (see above).", backup_set.pathname(name))
        else:
            logger.info("The snapshot %s is intact (%i entries).", backup_set.pathname(name), result['entries'])
    if every and not verified:
        raise NothingToVerifyError("No snapshot in %s has a manifest with entries, so none can be verified: "
                                   "make backups without --no-manifest." % backup_set.directory)
    if every and skipped:
        logger.info("Left out %i snapshot(s) without a manifest.", skipped)
    return EXIT_DIFFERENT if damaged else 0
