"""
``--diff=OLD[:NEW]``: what was added, removed and changed between two snapshots.

``--diff OLD NEW DESTINATION`` reads the same, and ``--diff DESTINATION``
compares the newest snapshot with the one before it (see
:func:`.place_diff_operands()`).

From the two manifests when both snapshots have one (content included),
otherwise by walking both snapshots and comparing their metadata (see
:func:`.agent.manifests.diff_snapshots()`); either way on the destination's
side.
"""

import logging
import posixpath
import sys

from rsync_system_backup.actions.differences import render_differences
from rsync_system_backup.checks.backup_sets import LATEST_NAME
from rsync_system_backup.exceptions import InvalidOptionError
from rsync_system_backup.manifests.compare import Differences
from rsync_system_backup.manifests.remote import run_agent
from rsync_system_backup.snapshots.naming import is_snapshot_name

logger = logging.getLogger(__name__)


def check_snapshot(backup_set, name):
    """
    Refuse a name that isn't a complete snapshot of the set.

    :param backup_set: A :class:`.BackupSet`.
    :param name: The name given (a string).
    :returns: The name.
    :raises: :exc:`.InvalidOptionError` naming the snapshots there are.
    """
    if name not in backup_set.snapshots:
        known = backup_set.snapshots
        raise InvalidOptionError("%r is not a snapshot in %s: give one of its names (%s)." % (
            name, backup_set.directory, ', '.join(known[-5:]) + (' ...' if len(known) > 5 else '') or 'none'))
    return name


def choose_snapshots(backup_set, old, new):
    """
    Pick the two snapshots to compare.

    :param backup_set: A :class:`.BackupSet`.
    :param old: The older snapshot's name (a string), or :data:`None` for the one before the newest.
    :param new: The newer snapshot's name (a string), or :data:`None` for the newest.
    :returns: A tuple of two snapshot names.
    :raises: :exc:`.InvalidOptionError` for names that aren't snapshots, a
             DESTINATION that is named like a snapshot (``--diff OLD`` without
             DESTINATION), or fewer than two snapshots to compare.
    """
    if old is not None:
        return check_snapshot(backup_set, old), check_snapshot(backup_set, new or backup_set.newest or '')
    if is_snapshot_name(backup_set.latest):
        example = posixpath.join(backup_set.directory, LATEST_NAME) if backup_set.holds_set else '/mnt/backups/latest'
        raise InvalidOptionError("--diff %s gives a snapshot but no DESTINATION: give the latest of its backup set "
                                 "after it, as in --diff %s %s." % (backup_set.latest, backup_set.latest, example))
    snapshots = backup_set.snapshots
    if len(snapshots) < 2:
        raise InvalidOptionError("--diff without OLD compares the newest snapshot with the one before it, but %s "
                                 "holds %s: make another backup first, or give OLD and NEW."
                                 % (backup_set.directory, "only %s" % snapshots[0] if snapshots else "no snapshot"))
    return snapshots[-2], snapshots[-1]


def diff_snapshots(backup_set, names):
    """
    Print the differences between two snapshots on standard output.

    :param backup_set: A :class:`.BackupSet`.
    :param names: A tuple of the old and the new snapshot's names, each
                  :data:`None` for the default (see :func:`choose_snapshots()`).
    :returns: The exit code (0).
    :raises: :exc:`.InvalidOptionError` (see :func:`choose_snapshots()`).
    """
    old, new = choose_snapshots(backup_set, *names)
    program = backup_set.program
    result = run_agent(backup_set.context, 'diff', backup_set.directory, old, new, sudo=program.sudo_enabled,
                       ionice=program.ionice)
    differences = Differences.from_dict(result['differences'])
    sys.stdout.write(render_differences(differences, new))
    logger.info("%s -> %s: %i added, %i removed, %i changed (compared %s).", old, new, len(differences.added),
                len(differences.removed), len(differences.changed),
                "from the manifests" if result['source'] == 'manifests' else "by walking both snapshots")
    return 0
