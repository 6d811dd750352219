"""
How much room is left on the filesystem of a directory, local or remote.

A local directory is measured with :func:`shutil.disk_usage()`; a directory on
another system with ``df -P -k`` (POSIX output, so it works with GNU
coreutils and BusyBox alike) through that system's execution context.
"""

import logging
import re
import shutil

from executor.contexts import LocalContext

DF_LINE_PATTERN = re.compile(r'\s(?P<total>\d+)\s+\d+\s+(?P<free>\d+)\s+\d+%\s')
"""
Matches the numbers in the second line of ``df -P -k`` output (total, used
and available kibibytes, then the capacity), whatever the names around them.
"""

logger = logging.getLogger(__name__)


class DiskSpace(object):

    """The size of a filesystem and the room left on it, in bytes."""

    def __init__(self, free, total):
        """
        Record the measurements.

        :param free: The bytes that an unprivileged user can still write (an integer).
        :param total: The size of the filesystem in bytes (an integer).
        """
        self.free = free
        self.total = total

    @property
    def free_percentage(self):
        """The free space as a percentage of the size (a float, 0 for an empty filesystem)."""
        return 100.0 * self.free / self.total if self.total else 0.0


def measure_disk_space(context, directory):
    """
    Measure the filesystem that holds a directory.

    :param context: The execution context of the directory's system.
    :param directory: The directory (a string).
    :returns: A :class:`DiskSpace`, or :data:`None` when the directory
              can't be measured (it doesn't exist yet, say); that is
              logged, but never stops a backup.
    """
    if isinstance(context, LocalContext):
        try:
            usage = shutil.disk_usage(directory)
        except OSError as e:
            logger.debug("Can't measure the free space of %s: %s", directory, e)
            return None
        return DiskSpace(free=usage.free, total=usage.total)
    output = context.capture('df', '-P', '-k', directory, check=False, silent=True, shell=False, tty=False)
    space = parse_df_output(output)
    if space is None:
        logger.debug("Can't measure the free space of %s: df printed %r.", directory, output)
    return space


def parse_df_output(output):
    """
    Read the output of ``df -P -k DIRECTORY``.

    :param output: What df printed (a string).
    :returns: A :class:`DiskSpace`, or :data:`None` when the output has no
              line with the expected numbers.
    """
    for line in output.splitlines()[1:]:
        match = DF_LINE_PATTERN.search(line + ' ')
        if match:
            return DiskSpace(free=int(match.group('free')) * 1024, total=int(match.group('total')) * 1024)
    return None
