"""
``--list``: the snapshots of a backup set with their age, state, exclusive size, method and the names that keep them.

The sizes come from one walk over the whole set on the destination's side
(see :mod:`.backup_set.exclusive_sizes`; over SSH that walk runs there with
``python3``, see :mod:`.manifests.remote`). ``--json`` prints the same
as one JSON object for scripts.
"""

import json
import sys

from humanfriendly import format_size, format_timespan

from rsync_system_backup.actions.set_view import chronological, snapshot_age, snapshot_state
from rsync_system_backup.manifests.remote import run_agent
from rsync_system_backup.backup_set.free_space import measure_disk_space

UNKNOWN_METHOD = 'unknown'
"""The method shown for a snapshot without a manifest (made by version 1.1, say, or with --no-manifest)."""


def describe_backup_set(backup_set):
    """
    Gather what ``--list`` shows.

    :param backup_set: A :class:`.BackupSet`.
    :returns: A JSON-friendly dict: ``directory``, ``snapshots`` (a list of
              dicts with ``name``, ``state``, ``age_seconds``,
              ``exclusive_bytes``, ``method`` and ``kept``, the names that
              keep it from rotation, oldest first), ``latest``
              (its ``name``, whether it ``exists`` and its
              ``exclusive_bytes``), ``free_bytes`` and ``total_bytes`` of the
              filesystem, and the ``newest`` complete snapshot's ``name`` and
              ``age_seconds`` (:data:`None` without snapshots).
    :raises: :exc:`.NoBackupSetError` where there is no set (its ``latest`` would be any directory, however large).
    """
    backup_set.check_holds_set()
    program = backup_set.program
    names = chronological(backup_set.snapshots + backup_set.leftovers)
    trees = names + ([backup_set.latest] if backup_set.has_latest else [])
    measured = run_agent(backup_set.context, 'usage', backup_set.directory, *trees, sudo=program.sudo_enabled,
                         ionice=program.ionice) if trees else dict(sizes={}, methods={})
    kept = backup_set.kept
    snapshots = [dict(name=name, state=snapshot_state(name), age_seconds=snapshot_age(name),
                      exclusive_bytes=measured['sizes'][name], method=measured['methods'].get(name) or None,
                      kept=kept.get(name, []))
                 for name in names]
    space = measure_disk_space(backup_set.context, backup_set.directory)
    newest = backup_set.newest
    return dict(
        directory=backup_set.directory,
        snapshots=snapshots,
        latest=dict(name=backup_set.latest, exists=backup_set.has_latest,
                    exclusive_bytes=measured['sizes'].get(backup_set.latest)),
        free_bytes=space.free if space else None,
        total_bytes=space.total if space else None,
        newest=dict(name=newest, age_seconds=snapshot_age(newest)) if newest else None,
    )


def format_age(seconds):
    """
    Render an age for the table.

    :param seconds: The age in seconds (a number or :data:`None`).
    :returns: A string like ``3 hours`` (``in the future`` for a negative age).
    """
    if seconds is None:
        return '?'
    if seconds < 0:
        return 'in the future'
    return format_timespan(seconds, max_units=2)


def render_listing(description):
    """
    Render what :func:`describe_backup_set()` gathered as text.

    :param description: Its dict.
    :returns: Lines of text (a string ending in a line feed).
    """
    rows = [('SNAPSHOT', 'AGE', 'STATE', 'EXCLUSIVE SIZE', 'METHOD', 'KEPT AS')]
    for snapshot in description['snapshots']:
        rows.append((snapshot['name'], format_age(snapshot['age_seconds']), snapshot['state'],
                     format_size(snapshot['exclusive_bytes']), snapshot['method'] or UNKNOWN_METHOD,
                     ', '.join(snapshot['kept'])))
    latest = description['latest']
    if latest['exists']:
        rows.append((latest['name'], '', 'latest', format_size(latest['exclusive_bytes']), '', ''))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = ['  '.join(value.ljust(width) for value, width in zip(row, widths)).rstrip() for row in rows]
    if not latest['exists']:
        lines.append("%s doesn't exist (no backup was made yet)." % latest['name'])
    if description['free_bytes'] is not None:
        lines.append("Free space: %s of %s (%.0f%%)." % (
            format_size(description['free_bytes']), format_size(description['total_bytes']),
            100.0 * description['free_bytes'] / description['total_bytes'] if description['total_bytes'] else 0))
    newest = description['newest']
    if newest:
        lines.append("Newest snapshot: %s, %s old." % (newest['name'], format_age(newest['age_seconds'])))
    else:
        lines.append("No complete snapshot in %s." % description['directory'])
    return '\n'.join(lines) + '\n'


def list_snapshots(backup_set, as_json=False):
    """
    Print the listing of a backup set on standard output.

    :param backup_set: A :class:`.BackupSet`.
    :param as_json: :data:`True` for JSON, :data:`False` for a table.
    :returns: The exit code (0).
    """
    description = describe_backup_set(backup_set)
    if as_json:
        sys.stdout.write(json.dumps(description, indent=2) + '\n')
    else:
        sys.stdout.write(render_listing(description))
    return 0
