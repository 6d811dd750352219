"""
``--max-age=DURATION``: a check for monitoring that the newest snapshot is recent enough.

It exits with 0 when the newest complete snapshot is younger than DURATION
and with :data:`.EXIT_DIFFERENT` otherwise (also when there is no
snapshot), printing one line either way. A snapshot's age comes from its
name, the local time at which it was made.
"""

import sys

from humanfriendly import format_timespan

from rsync_system_backup.actions.set_view import snapshot_age
from rsync_system_backup.actions.differences import EXIT_DIFFERENT


def check_max_age(backup_set, max_age):
    """
    Check the age of the newest snapshot and print one line about it.

    :param backup_set: A :class:`.BackupSet`.
    :param max_age: The greatest acceptable age in seconds (a number).
    :returns: The exit code: 0 when the newest snapshot is young enough,
              :data:`.EXIT_DIFFERENT` when it is too old or missing.
    """
    newest = backup_set.newest
    limit = format_timespan(max_age)
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
