"""
``--max-age=DURATION``: a check for monitoring that the newest snapshot is recent enough.

It exits with 0 when the newest complete snapshot is younger than DURATION
and with :data:`.EXIT_DIFFERENT` otherwise, printing one line either way. A
snapshot's age comes from its name, the local time at which it was made.

The check never says OK about a set that isn't the one on the backup disk:
a set that lies below a mount point of ``/etc/fstab`` (or of a systemd mount
unit) that isn't mounted is CRITICAL, whatever it holds (a backup made while
the disk was unplugged may have left one on the filesystem underneath), and
so is a directory that is missing or holds no backup set (no marker file,
see :mod:`.backup_set.marker`).
"""

import sys

from humanfriendly import format_timespan

from rsync_system_backup.actions.set_view import snapshot_age
from rsync_system_backup.actions.differences import EXIT_DIFFERENT
from rsync_system_backup.checks.new_sets import describe_origin, survey_set_directory
from rsync_system_backup.disks.configured_mounts import find_unmounted_mount_point, read_mount_configuration
from rsync_system_backup.backup_set.marker import MARKER_FILE_NAME


def find_unmounted_disk(backup_set):
    """
    Say why a backup set isn't on its backup disk, when it lies below a configured mount point that isn't mounted.

    :param backup_set: A :class:`.BackupSet`.
    :returns: A description (a string), or :data:`None`.
    """
    sudo = backup_set.program.sudo_enabled
    resolved = survey_set_directory(backup_set.context, backup_set.directory, sudo=sudo)[0]
    unmounted = find_unmounted_mount_point(read_mount_configuration(backup_set.context), resolved)
    if unmounted is None:
        return None
    mount_point, origin = unmounted
    return ("%s lies below %s, which %s names as a mount point, but nothing is mounted there"
            % (backup_set.directory, mount_point, describe_origin(origin)))


def check_max_age(backup_set, max_age):
    """
    Check the age of the newest snapshot and print one line about it.

    :param backup_set: A :class:`.BackupSet`.
    :param max_age: The greatest acceptable age in seconds (a number).
    :returns: The exit code: 0 when the newest snapshot is young enough,
              :data:`.EXIT_DIFFERENT` when it is too old or missing, or the
              set isn't on its disk or isn't a backup set.
    """
    limit = format_timespan(max_age)
    unmounted = find_unmounted_disk(backup_set)
    if unmounted:
        sys.stdout.write("CRITICAL: %s (limit %s).\n" % (unmounted, limit))
        return EXIT_DIFFERENT
    if not backup_set.is_marked:
        sys.stdout.write("CRITICAL: there is no backup set in %s (no %s file; is the backup disk mounted?) "
                         "(limit %s).\n" % (backup_set.directory, MARKER_FILE_NAME, limit))
        return EXIT_DIFFERENT
    newest = backup_set.newest
    if newest is None:
        sys.stdout.write("CRITICAL: there is no complete snapshot in %s (limit %s).\n" % (backup_set.directory, limit))
        return EXIT_DIFFERENT
    age = max(0, snapshot_age(newest))
    if age < max_age:
        sys.stdout.write("OK: the newest snapshot %s is %s old (limit %s).\n"
                         % (backup_set.pathname(newest), format_timespan(age, max_units=2), limit))
        return 0
    sys.stdout.write("CRITICAL: the newest snapshot %s is %s old, more than %s.\n"
                     % (backup_set.pathname(newest), format_timespan(age, max_units=2), limit))
    return EXIT_DIFFERENT
