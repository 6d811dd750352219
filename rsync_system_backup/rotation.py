"""
Rotation of old snapshots, planned by rotate-backups.

rotate-backups decides which snapshots each frequency of the rotation scheme
keeps; this module adds two rules of its own and removes the rest in one pass:

- only entries whose names are exactly snapshot names of this program are
  considered (see :data:`.SNAPSHOT_NAME_PATTERN`), so ``latest``, snapshots
  still being copied and anything a user put beside them are never touched;
- the newest snapshot is always kept, also when rotate-backups would let a
  newer snapshot in the same time slot go.
"""

import fnmatch
import logging
import posixpath

from rsync_system_backup.filesystem import list_directory, remove_trees
from rsync_system_backup.snapshots import REMOVING_SUFFIX, SNAPSHOT_NAME_PATTERN, remove_leftovers

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


def plan_rotation(context, directory, names, rotation_scheme, prefer_recent=False, strict=True, load_config=True):
    """
    Decide which snapshots in a directory to keep and which to remove.

    :param context: The execution context of the directory.
    :param directory: The directory holding the snapshots (a string).
    :param names: The names in the directory (a list of strings).
    :param rotation_scheme: A :class:`dict` from frequency names ('hourly',
                            'daily', ...) to counts or the string 'always'.
    :param prefer_recent: :data:`True` to keep the newest snapshot of each
                          time slot instead of the oldest.
    :param strict: rotate-backups' strict mode (see its documentation).
    :param load_config: :data:`True` to let rotate-backups' configuration
                        files override the scheme for this directory.
    :returns: A :class:`RotationPlan`.
    :raises: :exc:`~exceptions.ValueError` when the rotation scheme is empty.
    """
    # Imported here, so that runs without rotation (--backup, --snapshot) don't load rotate-backups.
    from rotate_backups import Backup, Location, RotateBackups
    planner = RotateBackups(rotation_scheme=rotation_scheme, prefer_recent=prefer_recent, strict=strict)
    if load_config:
        planner.load_config_file(Location(context=context, directory=directory))
    # Names are matched here, not by the planner, so whatever a configuration file says
    # (even a timestamp pattern of its own), only our own snapshots are rotated.
    snapshots = []
    for name in sorted(names):
        match = SNAPSHOT_NAME_PATTERN.match(name)
        if match and planner_accepts(planner, name):
            snapshots.append(Backup(pathname=posixpath.join(directory, name),
                                    timestamp=planner.match_to_datetime(match)))
    if not snapshots:
        return RotationPlan(kept=[], removed=[])
    snapshots.sort(key=lambda backup: (backup.timestamp, backup.pathname))
    newest = snapshots[-1]
    grouped = planner.group_backups(snapshots)
    planner.apply_rotation_scheme(grouped, newest.timestamp)
    reasons = planner.find_preservation_criteria(grouped)
    reasons.setdefault(newest, []).append('newest')
    kept = [(backup.pathname, reasons[backup]) for backup in snapshots if backup in reasons]
    removed = [backup.pathname for backup in snapshots if backup not in reasons]
    return RotationPlan(kept=kept, removed=removed)


def planner_accepts(planner, name):
    """
    Apply rotate-backups' include and exclude lists (from a configuration file) to a name.

    :param planner: A :class:`~rotate_backups.RotateBackups` object.
    :param name: A snapshot's name (a string).
    :returns: :data:`True` when the lists don't rule the name out.
    """
    if planner.exclude_list and any(fnmatch.fnmatch(name, p) for p in planner.exclude_list):
        return False
    if planner.include_list and not any(fnmatch.fnmatch(name, p) for p in planner.include_list):
        return False
    return True


def rotate_snapshots(context, directory, rotation_scheme, dry_run=False, ionice=None, sudo=False, remove=remove_trees,
                     **options):
    """
    Remove the snapshots that the rotation scheme doesn't keep.

    :param context: The execution context of the directory.
    :param directory: The directory holding the snapshots (a string).
    :param rotation_scheme: See :func:`plan_rotation()`.
    :param dry_run: :data:`True` to only say what would be removed.
    :param ionice: The I/O scheduling class for the removal.
    :param sudo: :data:`True` to list and remove with superuser privileges.
    :param remove: The function that removes snapshots (with the signature
                   of :func:`.filesystem.remove_trees()`, which is the
                   default; see :meth:`.SnapshotMethod.remove_trees()`).
    :param options: Passed on to :func:`plan_rotation()`.
    :returns: The :class:`RotationPlan` that was carried out.

    Snapshots are renamed (to names ending in :data:`.REMOVING_SUFFIX`)
    before they are removed, so an interrupted rotation leaves no partial
    tree under a snapshot name; the next rotation removes such leftovers.
    """
    names = list_directory(context, directory, sudo=sudo)
    if not dry_run:
        remove_leftovers(context, directory, names, sudo=sudo, ionice=ionice, remove=remove)
    plan = plan_rotation(context, directory, names, rotation_scheme, **options)
    for pathname, reasons in plan.kept:
        # A dry run is asked for to see the plan, so it shows what stays too.
        logger.log(logging.INFO if dry_run else logging.DEBUG, "%s %s (%s).",
                   "Would keep" if dry_run else "Keeping", pathname, ', '.join(reasons))
    for pathname in plan.removed:
        logger.info("%s %s.", "Would remove" if dry_run else "Removing", pathname)
    if not dry_run:
        remove(context, plan.removed, sudo=sudo, ionice=ionice, doomed_suffix=REMOVING_SUFFIX)
    logger.info("Rotation %s %i snapshot(s) and %s %i in %s.",
                "would keep" if dry_run else "kept", len(plan.kept),
                "remove" if dry_run else "removed", len(plan.removed), directory)
    return plan
