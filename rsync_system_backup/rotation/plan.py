"""
Rotation of old snapshots, planned by rotate-backups.

rotate-backups decides which snapshots each frequency of the rotation scheme
keeps; this module adds rules of its own and removes the rest in one pass:

- only entries whose names are exactly snapshot names of this program are
  considered (see :data:`.SNAPSHOT_NAME_PATTERN`), so ``latest``, snapshots
  still being copied and anything a user put beside them are never touched;
- the newest snapshot is always kept, also when rotate-backups would let a
  newer snapshot in the same time slot go;
- kept snapshots (``--keep``, see :mod:`.backup_set.kept`) stay outside the
  plan: never removed, and not counted, so that the others are kept and
  removed as if they weren't there (and "the newest" is the newest of the others).
"""

import logging
import posixpath

from rsync_system_backup.manifests.recording import remove_orphaned_manifests
from rsync_system_backup.snapshots.naming import REMOVING_SUFFIX, SNAPSHOT_NAME_PATTERN, remove_leftovers
from rsync_system_backup.backup_set.kept import group_by_snapshot, read_kept
from rsync_system_backup.backup_set.operations import list_directory, remove_trees

logger = logging.getLogger(__name__)


class RotationPlan(object):

    """What a rotation keeps and removes."""

    def __init__(self, kept, removed):
        """
        Record the outcome of planning a rotation.

        :param kept: A list of (pathname, reasons) tuples, oldest first.
        :param removed: A list of pathnames, oldest first.
        """
        self.kept = kept
        self.removed = removed


def plan_rotation(context, directory, names, rotation_scheme, prefer_recent=False, strict=True, kept=None):
    """
    Decide which snapshots in a directory to keep and which to remove.

    rotate-backups' configuration files may override the scheme for the directory.

    :param context: The execution context of the directory.
    :param directory: The directory holding the snapshots (a string).
    :param names: The names in the directory (a list of strings).
    :param rotation_scheme: A :class:`dict` from frequency names ('hourly',
                            'daily', ...) to counts or the string 'always'.
    :param prefer_recent: :data:`True` to keep the newest snapshot of each
                          time slot instead of the oldest.
    :param strict: rotate-backups' strict mode (see its documentation).
    :param kept: A :class:`dict` from the names of kept snapshots to the
                 names that keep them (see :func:`.group_by_snapshot()`), or :data:`None`.
    :returns: A :class:`RotationPlan`.
    :raises: :exc:`~exceptions.ValueError` when the rotation scheme is empty.
    """
    # Imported here, so that runs without rotation (--backup, --snapshot) don't load rotate-backups.
    from rotate_backups import Location, RotateBackups
    planner = RotateBackups(rotation_scheme=rotation_scheme, prefer_recent=prefer_recent, strict=strict)
    planner.load_config_file(Location(context=context, directory=directory))
    # Set after the configuration file, so that whatever it says, only our own snapshots are rotated.
    planner.timestamp_pattern = SNAPSHOT_NAME_PATTERN
    snapshots = planner.collect_backups(Location(context=ListedDirectory(names), directory=directory))
    warn_about_impossible_dates(directory, names, snapshots)
    snapshots.sort(key=lambda backup: (backup.timestamp, backup.pathname))
    kept = kept or {}
    rotated = [backup for backup in snapshots if posixpath.basename(backup.pathname) not in kept]
    reasons = {}
    if rotated:
        newest = rotated[-1]
        grouped = planner.group_backups(rotated)
        planner.apply_rotation_scheme(grouped, newest.timestamp)
        reasons = planner.find_preservation_criteria(grouped)
        reasons.setdefault(newest, []).append('newest')
    for backup in snapshots:
        keeping = kept.get(posixpath.basename(backup.pathname))
        if keeping:
            reasons[backup] = ['kept as %s' % name for name in keeping]
    return RotationPlan(kept=[(backup.pathname, reasons[backup]) for backup in snapshots if backup in reasons],
                        removed=[backup.pathname for backup in snapshots if backup not in reasons])


class ListedDirectory(object):

    """
    The execution context that rotate-backups sees: a directory that was listed already.

    :meth:`~rotate_backups.RotateBackups.collect_backups()` checks the
    directory and lists it through its location's context; this one answers
    from the listing that the rotation made anyway, so no command runs twice.
    """

    def __init__(self, names):
        """
        Remember a directory's entries.

        :param names: The names in the directory (a list of strings).
        """
        self.names = list(names)

    def is_directory(self, pathname):
        """The directory was listed, so it is one (:data:`True`)."""
        return True

    def is_readable(self, pathname):
        """The directory was listed, so it is readable (:data:`True`)."""
        return True

    def list_entries(self, directory):
        """The names in the directory (a list of strings)."""
        return list(self.names)


def warn_about_impossible_dates(directory, names, snapshots):
    """
    Warn about entries named like snapshots whose date doesn't exist, which rotation leaves alone.

    :param directory: The directory holding the snapshots (a string).
    :param names: The names in the directory (a list of strings).
    :param snapshots: The :class:`~rotate_backups.Backup` objects that rotate-backups collected.
    """
    collected = set(posixpath.basename(backup.pathname) for backup in snapshots)
    for name in sorted(names):
        if name not in collected and SNAPSHOT_NAME_PATTERN.match(name):
            logger.warning("Leaving %s alone: its name is not a possible date and time, so rotation can't "
                           "place it; rename or remove it by hand.", posixpath.join(directory, name))


def rotate_snapshots(context, directory, rotation_scheme, dry_run=False, ionice=None, sudo=False, remove=remove_trees,
                     planned_snapshot=None, planned_keep=None, **options):
    """
    Remove the snapshots that the rotation scheme doesn't keep.

    :param context: The execution context of the directory.
    :param directory: The directory holding the snapshots (a string).
    :param rotation_scheme: See :func:`plan_rotation()`.
    :param dry_run: :data:`True` to only say what would be removed.
    :param ionice: The I/O scheduling class for the removal.
    :param sudo: :data:`True` to list and remove with superuser privileges.
    :param remove: The function that removes snapshots (with the signature
                   of :func:`.operations.remove_trees()`, which is the
                   default; see :meth:`.SnapshotMethod.remove_trees()`).
    :param planned_snapshot: The pathname of the snapshot that a dry run
                             would have made (a string or :data:`None`): the
                             plan counts it in, as the real run would.
    :param planned_keep: The name that a dry run would have kept
                         `planned_snapshot` under (a string or :data:`None`).
    :param options: Passed on to :func:`plan_rotation()`.
    :returns: The :class:`RotationPlan` that was carried out.
    :raises: :exc:`.KeptSnapshotError` when the record of the kept snapshots
             can't be read (see :func:`.parse_kept()`); nothing is removed then.

    Snapshots are renamed (to names ending in :data:`.REMOVING_SUFFIX`)
    before they are removed, so an interrupted rotation leaves no partial
    tree under a snapshot name; the next rotation removes such leftovers.
    """
    names = list_directory(context, directory, sudo=sudo)
    if dry_run and planned_snapshot and posixpath.basename(planned_snapshot) not in names:
        names.append(posixpath.basename(planned_snapshot))
    kept = group_by_snapshot(read_kept(context, directory, names, sudo=sudo))
    if dry_run and planned_snapshot and planned_keep:
        kept.setdefault(posixpath.basename(planned_snapshot), []).append(planned_keep)
    if not dry_run:
        remove_leftovers(context, directory, names, sudo=sudo, ionice=ionice, remove=remove)
    plan = plan_rotation(context, directory, names, rotation_scheme, kept=kept, **options)
    for pathname, reasons in plan.kept:
        # A dry run is asked for to see the plan, so it shows what stays too.
        logger.log(logging.INFO if dry_run else logging.DEBUG, "%s %s (%s).",
                   "Would keep" if dry_run else "Keeping", pathname, ', '.join(reasons))
    for pathname in plan.removed:
        logger.info("%s %s.", "Would remove" if dry_run else "Removing", pathname)
    if not dry_run:
        remove(context, plan.removed, sudo=sudo, ionice=ionice, doomed_suffix=REMOVING_SUFFIX)
        # A snapshot's manifest goes with it (and so does one that an interrupted run left alone).
        gone = set(posixpath.basename(pathname) for pathname in plan.removed)
        remove_orphaned_manifests(context, directory, [name for name in names if name not in gone], sudo=sudo)
    logger.info("Rotation %s %i snapshot(s) and %s %i in %s.",
                "would keep" if dry_run else "kept", len(plan.kept),
                "remove" if dry_run else "removed", len(plan.removed), directory)
    return plan
