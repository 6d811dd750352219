"""
Choosing the snapshot method for a destination.

:func:`choose_snapshot_method()` picks the method (``auto`` picks the best one
the destination's filesystem supports), refuses one that the filesystem
can't do, and warns when the snapshots can change.
"""

import logging
import posixpath

from rsync_system_backup.exceptions import InvalidOptionError
from rsync_system_backup.snapshots.filesystem_features import BTRFS, ask_filesystem_type, supports_reflinks
from rsync_system_backup.snapshots.method_names import AUTOMATIC, check_method_name
from rsync_system_backup.snapshots.methods import BtrfsMethod, HardlinkMethod, LinkDestMethod, ReflinkMethod
from rsync_system_backup.snapshots.protection import has_python
from rsync_system_backup.snapshots.safe_hardlink import SafeHardlinkMethod

SNAPSHOT_METHODS = {method.name: method for method in (BtrfsMethod, ReflinkMethod, SafeHardlinkMethod,
                                                       LinkDestMethod, HardlinkMethod)}
"""The snapshot methods by name, best first."""

logger = logging.getLogger(__name__)


def choose_snapshot_method(name, context, directory, sudo=False, ionice=None, daemon_transfer=False, dry_run=False,
                           transfer=True, filesystem_type=None):
    """
    Pick the snapshot method for a destination, and say which one and whether snapshots can change.

    :param name: One of :data:`.METHOD_NAMES`.
    :param context: The destination's execution context.
    :param directory: The destination directory (``latest``, a string).
    :param sudo: :data:`True` to run commands with superuser privileges.
    :param ionice: The I/O scheduling class for the copies and removals.
    :param daemon_transfer: :data:`True` when an rsync daemon wrote ``latest``
                            in place (this run is its ``post-xfer exec``).
    :param dry_run: :data:`True` to write nothing while finding out what the
                    filesystem can do.
    :param transfer: :data:`False` when the run transfers nothing (``-s``
                     or ``-r`` alone): safe-hardlink then needs no ``python3``.
    :param filesystem_type: The type of the filesystem that holds the
                            destination's parent directory, when it is known
                            already (see :func:`.ask_filesystem_type()`), or
                            :data:`None` to find it out.
    :returns: A :class:`.SnapshotMethod`.
    :raises: :exc:`.InvalidOptionError` when the method is unknown or the
             filesystem doesn't support it.

    ``auto`` picks btrfs on btrfs, otherwise reflink where reflinks work,
    otherwise safe-hardlink, or link-dest where the destination has no
    ``python3`` (which safe-hardlink needs there), or hardlink after a
    daemon's transfer (the other two need to run the transfer themselves).
    """
    check_method_name(name)
    parent_directory = posixpath.dirname(directory.rstrip('/')) or '.'
    if filesystem_type is None:
        filesystem_type = ask_filesystem_type(context, parent_directory, sudo=sudo).result()
    if name == AUTOMATIC:
        if filesystem_type == BTRFS:
            name = BtrfsMethod.name
        elif supports_reflinks(context, parent_directory, filesystem_type, sudo=sudo, dry_run=dry_run):
            name = ReflinkMethod.name
        elif daemon_transfer:
            name = HardlinkMethod.name
        elif not transfer or has_python(context, sudo=sudo):
            name = SafeHardlinkMethod.name
        else:
            logger.info("Not using the %s snapshot method: it needs python3 on the destination, which %s lacks.",
                        SafeHardlinkMethod.name, context)
            name = LinkDestMethod.name
        how = "chosen for %s on %s" % (parent_directory, filesystem_type)
    else:
        check_support(name, context, parent_directory, filesystem_type, sudo=sudo, dry_run=dry_run, transfer=transfer)
        how = "%s is on %s" % (parent_directory, filesystem_type)
    method = SNAPSHOT_METHODS[name](context, directory, filesystem_type, sudo=sudo, ionice=ionice)
    logger.info("Using the %s snapshot method (%s).", method.name, how)
    warn_about_changing_snapshots(method, daemon_transfer)
    return method


def check_support(name, context, directory, filesystem_type, sudo=False, dry_run=False, transfer=True):
    """
    Refuse a snapshot method that the destination doesn't support.

    :param name: The name of the method (a string).
    :param context: The destination's execution context.
    :param directory: The directory that holds ``latest`` (a string).
    :param filesystem_type: The type of its filesystem (a string).
    :param sudo: :data:`True` to run commands with superuser privileges.
    :param dry_run: :data:`True` to write nothing while finding out.
    :param transfer: :data:`False` when the run transfers nothing.
    :raises: :exc:`.InvalidOptionError` for btrfs elsewhere than on btrfs,
             for reflink where reflinks don't work and for safe-hardlink
             where the destination has no ``python3``.
    """
    if name == BtrfsMethod.name and filesystem_type != BTRFS:
        raise InvalidOptionError("The btrfs snapshot method needs a destination on btrfs, but %s is on %s "
                                 "(use --snapshot-method=auto)." % (directory, filesystem_type))
    if name == ReflinkMethod.name and not supports_reflinks(context, directory, filesystem_type,
                                                            sudo=sudo, dry_run=dry_run):
        raise InvalidOptionError("The reflink snapshot method needs a filesystem with reflinks (btrfs, or XFS "
                                 "made with reflink=1), but %s is on %s, which can't share data between files "
                                 "(use --snapshot-method=auto)." % (directory, filesystem_type))
    if name == SafeHardlinkMethod.name and transfer and not has_python(context, sudo=sudo):
        raise InvalidOptionError("The safe-hardlink snapshot method needs python3 on the destination, but %s has "
                                 "none (install python3 there, or use --snapshot-method=auto)." % context)


def warn_about_changing_snapshots(method, daemon_transfer=False):
    """
    Warn when a later backup can change the snapshots that a method makes.

    :param method: A :class:`.SnapshotMethod`.
    :param daemon_transfer: :data:`True` when an rsync daemon writes ``latest`` in place.

    That happens when snapshots share files with ``latest`` and something
    writes those files in place: the hardlink method's own transfer, or an
    rsync daemon's.
    """
    if not method.shares_files_with_latest:
        return
    if daemon_transfer:
        writer = "the rsync daemon writes it in place"
        advice = "Keep the module on btrfs, or on XFS with reflinks, for snapshots that never change."
    elif method.writes_shared_files:
        writer = "the %s method writes it in place" % method.name
        advice = "Use --snapshot-method=auto for snapshots that never change."
    else:
        return
    logger.warning("The snapshots share files with %s and %s: when only the mode, owner, group, timestamps, "
                   "xattrs or ACLs of a file change, the next backup changes them in the earlier snapshots too. %s",
                   method.directory, writer, advice)
