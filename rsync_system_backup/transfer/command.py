"""
The rsync command line that transfers the system to the destination.

This module only builds the argument list; running it is the orchestrator's
job (see :mod:`rsync_system_backup.backup`).
"""

DEFAULT_EXCLUDED_ROOTS = (
    '/dev/',
    '/home/*/.cache/',
    '/media/',
    '/mnt/',
    '/proc/',
    '/run/',
    '/sys/',
    '/tmp/',
    '/var/cache/',
    '/var/tmp/',
)
"""
Absolute paths that a system backup leaves out: pseudo filesystems, mount
points of removable media, caches and temporary files.

They are given to rsync as ``--filter=-/ PATTERN`` rules, which match the
absolute path of a file on the sending side. So ``/tmp/`` excludes the
system's ``/tmp`` when the source is ``/``, but never a directory named
``tmp`` deeper in the tree, nor anything when the source is another
directory.
"""

ARCHIVE_OPTIONS = ('--archive', '--acls', '--xattrs', '--hard-links', '--numeric-ids', '--sparse',
                   '--filter=Hx trusted.SGI_ACL_*', '--filter=Px trusted.SGI_ACL_*')
"""
rsync options that preserve everything a system needs: ownership (by number),
permissions, ACLs, xattrs, hard links, and holes in sparse files (so a sparse
disk image doesn't fill the backup disk).

XFS shows each file's ACLs a second time, as the extended attributes
``trusted.SGI_ACL_FILE`` and ``trusted.SGI_ACL_DEFAULT``. The two filters
keep ``--xattrs`` away from them on both sides (hidden on the sending side,
protected on the receiving side, also from ``--delete-excluded``): otherwise
rsync, finding them on an XFS destination but not in the source, removes
them, and with them the ACLs that ``--acls`` has just set (it does so
whenever a file's ACL changes).
"""

DELETE_OPTIONS = ('--delete', '--delete-excluded')
"""rsync options that make the destination an exact mirror of the source."""

WARNING_EXIT_CODES = {
    23: "some files could not be transferred (partial transfer due to error)",
    24: "some files vanished before they could be transferred",
}
"""rsync exit codes that still leave a usable backup, with what they mean."""


def build_rsync_command(source, destination, dry_run=False, multi_fs=False,
                        excluded_roots=DEFAULT_EXCLUDED_ROOTS, exclude_list=(), extra_options=(), delete=True,
                        list_changes=True):
    """
    Build the rsync command that mirrors `source` into `destination`.

    :param source: The directory to back up (a string).
    :param destination: The rsync location to write to (a string).
    :param dry_run: :data:`True` to let rsync report what it would change
                    without changing anything.
    :param multi_fs: :data:`True` to let rsync cross filesystem boundaries.
    :param excluded_roots: Absolute paths on the source system to leave out.
    :param exclude_list: rsync exclude patterns given by the user.
    :param extra_options: More rsync options to add before the locations.
    :param delete: :data:`False` to leave out :data:`DELETE_OPTIONS` (for a
                   transfer of listed files, see :mod:`.transfer.plan`).
    :param list_changes: With `dry_run`: :data:`True` to let rsync name each
                         change it would make (``--verbose``), :data:`False`
                         for only its ``--stats`` (when asked for in
                         `extra_options`).
    :returns: The command line (a list of strings).
    """
    command = ['rsync']
    if dry_run:
        command.append('--dry-run')
        if list_changes:
            command.append('--verbose')
    if delete:
        command.extend(DELETE_OPTIONS)
    command.extend(ARCHIVE_OPTIONS)
    if not multi_fs:
        command.append('--one-file-system')
    command.extend('--filter=-/ %s' % pattern for pattern in excluded_roots)
    command.extend('--exclude=%s' % pattern for pattern in exclude_list)
    command.extend(extra_options)
    command.append(ensure_trailing_slash(source))
    command.append(ensure_trailing_slash(destination))
    return command


def ensure_trailing_slash(location):
    """
    Add a trailing slash to an rsync location that lacks one.

    rsync copies the *contents* of a source directory whose name ends in a
    slash, and the directory itself otherwise; the slash keeps the layout of
    the backup independent of the source's name.

    :param location: An rsync location (a string).
    :returns: The location, ending in a slash.
    """
    return location if location.endswith('/') else location + '/'
