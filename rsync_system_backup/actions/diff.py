"""
``--diff=OLD[:NEW]``: what was added, removed and changed between two snapshots.

From the two manifests when both snapshots have one (content included),
otherwise by walking both snapshots and comparing their metadata (see
:func:`.agent.manifests.diff_snapshots()`); either way on the destination's
side.
"""

import logging
import sys

from rsync_system_backup.actions.differences import render_differences
from rsync_system_backup.exceptions import InvalidOptionError
from rsync_system_backup.manifests.compare import Differences
from rsync_system_backup.manifests.remote import run_agent

logger = logging.getLogger(__name__)


def parse_diff_spec(value):
    """
    Split the value of ``--diff``.

    :param value: ``OLD`` or ``OLD:NEW`` (a string). Snapshot names of
                  version 1.1 contain colons (``2024-05-01 13:45:00``), so
                  the split is at the colon that starts a second snapshot name.
    :returns: A tuple of the old name and the new name (:data:`None` for the newest).
    """
    for index, character in enumerate(value):
        if character == ':' and value[index + 1:index + 5].isdigit() and len(value) - index - 1 >= 19:
            return value[:index], value[index + 1:]
    return value, None


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


def diff_snapshots(backup_set, spec):
    """
    Print the differences between two snapshots on standard output.

    :param backup_set: A :class:`.BackupSet`.
    :param spec: The value of ``--diff`` (see :func:`parse_diff_spec()`).
    :returns: The exit code (0).
    :raises: :exc:`.InvalidOptionError` for names that aren't snapshots.
    """
    old, new = parse_diff_spec(spec)
    old = check_snapshot(backup_set, old)
    new = check_snapshot(backup_set, new or backup_set.newest or '')
    program = backup_set.program
    result = run_agent(backup_set.context, 'diff', backup_set.directory, old, new, sudo=program.sudo_enabled,
                       ionice=program.ionice)
    differences = Differences.from_dict(result['differences'])
    sys.stdout.write(render_differences(differences, new))
    logger.info("%s -> %s: %i added, %i removed, %i changed (compared %s).", old, new, len(differences.added),
                len(differences.removed), len(differences.changed),
                "from the manifests" if result['source'] == 'manifests' else "by walking both snapshots")
    return 0
