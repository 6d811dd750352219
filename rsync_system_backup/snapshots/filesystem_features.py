"""
What the filesystem that holds the backups is, and what it can do.

The snapshot methods (see :mod:`.snapshots.methods`) depend on it: btrfs has
subvolumes, btrfs and XFS (made with ``-m reflink=1``) let files share data
blocks (reflinks), and most filesystems limit the number of hard links to one
file. A local destination's filesystem type comes from this process's mount
table (see :func:`read_mount_table()`); everything else is found out with commands in
the destination's execution context (``findmnt`` and a trial ``cp
--reflink=always``), so it works the same for destinations reached over SSH.
"""

import os

from rsync_system_backup.backup_set.operations import runs_in_process
from rsync_system_backup.disks import configured_mounts
from rsync_system_backup.processes.pending import PendingAnswer, ask

FILESYSTEM_TYPE_SCRIPT = '''
directory=$1
while [ ! -d "$directory" ]; do directory=$(dirname -- "$directory"); done
type=$(findmnt --noheadings --first-only --output=FSTYPE --target "$directory" 2> /dev/null)
[ -n "$type" ] || exec stat --file-system --format=%T -- "$directory"
printf '%s\n' "$type"
'''
"""
Shell code that prints the type of the filesystem holding a directory, or
holding its nearest existing ancestor when the directory doesn't exist yet
(before a first backup, and in dry runs). The type comes from the mount
table through ``findmnt`` (``ext4``, ``xfs``, ...), because ``stat
--file-system`` can't tell ext4 from ext2 and ext3 (it says ``ext2/ext3``
for all three); ``stat`` is the fallback where ``findmnt`` can't say.
"""

REFLINK_PROBE_SCRIPT = '''
probe=$(mktemp -d -- "$1/.rsync-system-backup.probe.XXXXXX") || exit 2
printf x > "$probe/file"
cp --reflink=always -- "$probe/file" "$probe/copy" 2> /dev/null
status=$?
rm -rf -- "$probe"
exit $status
'''
"""
Shell code that tries to copy a small file with ``cp --reflink=always`` in a
directory (its exit status is 0 when that works). Both files are made in a
new directory with a random name that only its owner can enter (``mktemp
-d``), so no name that someone else could have planted is written to. The
hidden name keeps the probe out of rotation's and rsync's way.
"""

BTRFS = 'btrfs'
"""The type of btrfs filesystems, as :func:`ask_filesystem_type()` names it."""

WITHOUT_REFLINKS = ('ext2', 'ext3', 'ext4', 'ext2/ext3', 'tmpfs')
"""Filesystem types known to have no reflinks (``stat`` calls ext2 to ext4 ``ext2/ext3``), so no probe is needed."""

ASSUMED_REFLINKS = ('xfs',)
"""Filesystem types assumed to have reflinks when a dry run can't try (XFS has them by default since 2019)."""

LINK_LIMITS = {'ext2': 32000, 'ext3': 32000, 'ext4': 65000, 'ext2/ext3': 32000, 'btrfs': 65535, 'xfs': None,
               'tmpfs': None}
"""
The most hard links one file can have, per filesystem type (:data:`None`
for filesystems whose limit is out of reach, like XFS's 2^31).
"""

DEFAULT_LINK_LIMIT = 65000
"""The link limit assumed for filesystem types not in :data:`LINK_LIMITS` (ext4's, the lowest common one)."""


def ask_filesystem_type(context, directory, sudo=False):
    """
    Start finding out the type of the filesystem that holds a directory.

    :param context: The execution context of the directory.
    :param directory: The directory (a string); when it doesn't exist yet,
                      its nearest existing ancestor is looked at.
    :param sudo: :data:`True` to look with superuser privileges.
    :returns: A :class:`.PendingAnswer` whose result is the type as the
              mount table names it (``btrfs``, ``xfs``, ``ext4``,
              ``tmpfs``, ...; ``ext2/ext3`` when only ``stat`` could tell).
    """
    if runs_in_process(context, sudo):
        filesystem_type = read_mount_table(directory)
        if filesystem_type:
            return PendingAnswer(value=filesystem_type)
    return ask(context, 'sh', '-c', FILESYSTEM_TYPE_SCRIPT, 'filesystem-type', directory, sudo=sudo)


def read_mount_table(directory):
    """
    Find the type of the filesystem that holds a local directory in this process's mount table, as ``findmnt`` would.

    :param directory: The directory (a string); when it doesn't exist yet,
                      its nearest existing ancestor is looked at.
    :returns: The type of the deepest mount at or above the directory
              (with symbolic links resolved; see
              :func:`.configured_mounts.parse_mount_table()` and
              :func:`.configured_mounts.find_mount()`), or :data:`None`
              when the table can't be read.
    """
    while not os.path.isdir(directory):
        directory = os.path.dirname(directory)
    try:
        with open(configured_mounts.MOUNTINFO_FILE, 'rb') as handle:
            mounts = configured_mounts.parse_mount_table(handle.read())
    except OSError:
        return None
    return mounts.get(configured_mounts.find_mount(os.path.realpath(directory), mounts))


def supports_reflinks(context, directory, filesystem_type, sudo=False, dry_run=False):
    """
    Check whether files in a directory can share data blocks (``cp --reflink=always``).

    :param context: The execution context of the directory.
    :param directory: The directory (a string).
    :param filesystem_type: The type of its filesystem (see :func:`ask_filesystem_type()`).
    :param sudo: :data:`True` to try with superuser privileges.
    :param dry_run: :data:`True` to write nothing: the answer then comes from
                    the filesystem type alone (see :data:`ASSUMED_REFLINKS`).
    :returns: :data:`True` when reflinks work there.

    Unless the filesystem type settles it, a small file is created and
    copied in the directory, and both are removed again.
    """
    if filesystem_type == BTRFS:
        return True
    if filesystem_type in WITHOUT_REFLINKS:
        return False
    if dry_run:
        return filesystem_type in ASSUMED_REFLINKS
    return context.execute('sh', '-c', REFLINK_PROBE_SCRIPT, 'reflink-probe', directory,
                           check=False, sudo=sudo, shell=False, tty=False).succeeded


def find_link_limit(filesystem_type):
    """
    Give the most hard links that one file can have on a filesystem.

    :param filesystem_type: The type of the filesystem (see :func:`ask_filesystem_type()`).
    :returns: A number, or :data:`None` when the limit is out of reach.
    """
    return LINK_LIMITS.get(filesystem_type, DEFAULT_LINK_LIMIT)
