"""
What a run did, summed up for the person or the log that reads it.

:class:`BackupSummary` collects the outcome of each step while
:class:`.RsyncSystemBackup` runs; :meth:`~BackupSummary.format_block()`
describes it in a few aligned lines for a terminal and
:meth:`~BackupSummary.format_line()` in one line for a log (cron, systemd).
"""

import contextlib
import logging
import posixpath
import sys

from humanfriendly import Timer, format_number, format_size, format_timespan
from humanfriendly.text import concatenate, pluralize

from rsync_system_backup.reporting.unattended import SUMMARY

LISTED_REMOVALS = 5
"""How many removed snapshots the summary names before it only counts the rest."""

logger = logging.getLogger(__name__)


def format_count(count, singular, plural=None):
    """
    Combine a count, with thousands separators, and a noun.

    :param count: The count (an integer).
    :param singular: The noun's singular form (a string).
    :param plural: The noun's plural form (defaults to `singular` plus "s").
    :returns: For example ``1,234 files`` (a string).
    """
    noun = pluralize(count, singular, plural).split(' ', 1)[1]
    return '%s %s' % (format_number(count), noun)


class BackupSummary(object):

    """
    The outcome of one run of :meth:`.RsyncSystemBackup.execute()`.

    The steps fill in the attributes they are about; an attribute stays
    :data:`None` when its step didn't run:

    - :attr:`transfer_statistics`: a :class:`.TransferStatistics` object;
    - :attr:`snapshot_pathname`: the new snapshot's pathname (a string);
    - :attr:`kept_as`: the name that keeps the new snapshot from rotation (a string, see ``--keep``);
    - :attr:`rotation_plan`: the :class:`.RotationPlan` that was carried out;
    - :attr:`disk_space`: a :class:`.DiskSpace` of the destination afterwards;
    - :attr:`total_time`: the seconds the whole run took (a number);
    - :attr:`durations`: a :class:`dict` from the names of the steps that
      finished (``transfer``, ``snapshot``, ``rotation``) to their seconds.
    """

    def __init__(self, destination, dry_run=False):
        """
        Start an empty summary.

        :param destination: The destination as the user gave it (a string).
        :param dry_run: :data:`True` when the run changes nothing.
        """
        self.destination = destination
        self.dry_run = dry_run
        self.durations = {}
        self.transfer_statistics = None
        self.snapshot_pathname = None
        self.kept_as = None
        self.rotation_plan = None
        self.disk_space = None
        self.total_time = None

    @contextlib.contextmanager
    def timed(self, step):
        """
        Time a step and record its duration when it finishes without an error.

        :param step: The step's name (a string).
        """
        timer = Timer()
        yield
        self.durations[step] = timer.elapsed_time

    def describe_transfer(self):
        """Describe what rsync transferred (a string), or :data:`None` when it didn't run."""
        if 'transfer' not in self.durations:
            return None
        statistics = self.transfer_statistics
        if statistics is None or not statistics.complete:
            return "rsync reported no statistics"
        regular_files = statistics.files if statistics.regular_files is None else statistics.regular_files
        if regular_files is None:
            # Planned from the source's snapshots: the total wasn't counted.
            files = format_count(statistics.transferred_files, 'file')
        else:
            files = '%s of %s' % (format_number(statistics.transferred_files), format_count(regular_files, 'file'))
        deleted = statistics.deleted_files
        if self.dry_run:
            return self.describe_planned_changes(files)
        parts = ["%s transferred" % files]
        if deleted is not None:
            parts.append("%s deleted" % format_number(deleted))
        parts.append("%s sent" % format_size(statistics.bytes_sent))
        return ', '.join(parts)

    def describe_planned_changes(self, files):
        """
        Describe what a dry run's rsync would change, from its statistics.

        :param files: How many files it would transfer, of how many (a string, ``2 of 6 files``).
        :returns: For example ``would transfer 2 of 6 files (19 bytes), create
                  1 entry and delete 1`` (a string; what rsync didn't count is left out).
        """
        statistics = self.transfer_statistics
        changes = ["transfer %s" % files]
        if statistics.transferred_size is not None:
            changes[0] += " (%s)" % format_size(statistics.transferred_size)
        if statistics.created_files is not None:
            changes.append("create %s" % format_count(statistics.created_files, 'entry', 'entries'))
        if statistics.deleted_files is not None:
            changes.append("delete %s" % format_number(statistics.deleted_files))
        return "would " + concatenate(changes)

    @property
    def incomplete(self):
        """:data:`True` when rsync left out files because of errors (see :attr:`.TransferStatistics.incomplete`)."""
        return self.transfer_statistics is not None and self.transfer_statistics.incomplete

    def describe_missing_files(self):
        """
        Say how many files the backup lacks and where to read why.

        :returns: A string, or :data:`None` when the backup is complete.
        """
        if not self.incomplete:
            return None
        count = self.transfer_statistics.failed_files
        files = format_count(count, 'file is', 'files are') if count else "some files are"
        return "%s missing from it (rsync's messages before this summary say which and why)" % files

    def describe_vanished_files(self):
        """
        Note the files that vanished during the transfer (normal on a live system).

        :returns: A string, or :data:`None` when none vanished.
        """
        statistics = self.transfer_statistics
        if statistics is None or statistics.exit_code != 24:
            return None
        count = statistics.vanished_files
        files = format_count(count, 'file') if count else "some files"
        return "%s vanished during the transfer (normal on a live system)" % files

    def describe_snapshot(self):
        """Name the new snapshot (a string), or :data:`None` when no snapshot was made."""
        if 'snapshot' not in self.durations:
            return None
        name = posixpath.basename(self.snapshot_pathname)
        kept = " and kept as %s" % self.kept_as if self.kept_as else ""
        if self.dry_run:
            return "%s (would be made%s)" % (name, kept)
        return "%s (kept as %s)" % (name, self.kept_as) if self.kept_as else name

    def describe_rotation(self, name_removals=True):
        """
        Count (and name) the snapshots that the rotation kept and removed.

        :param name_removals: :data:`True` to name the first
                              :data:`LISTED_REMOVALS` removed snapshots.
        :returns: A string, or :data:`None` when there was no rotation.
        """
        if 'rotation' not in self.durations:
            return None
        kept = format_count(len(self.rotation_plan.kept), 'snapshot')
        removed = [posixpath.basename(pathname) for pathname in self.rotation_plan.removed]
        if self.dry_run:
            text = "would keep %s and remove %s" % (kept, format_number(len(removed)))
        else:
            text = "%s kept, %s removed" % (kept, format_number(len(removed)))
        if name_removals and removed:
            named = removed[:LISTED_REMOVALS]
            if len(removed) > len(named):
                named.append("%s more" % format_number(len(removed) - len(named)))
            text += " (%s)" % concatenate(named)
        return text

    def describe_disk_space(self, label=''):
        """
        Describe the free space on the destination.

        :param label: A word to put after the size (a string, for example `` free``).
        :returns: For example ``85.5 GB free (32% of 270.5 GB)`` (a string),
                  or :data:`None` when the free space is unknown.
        """
        if self.disk_space is None:
            return None
        return "%s%s (%i%% of %s)" % (format_size(self.disk_space.free), label,
                                      round(self.disk_space.free_percentage), format_size(self.disk_space.total))

    def format_block(self):
        """
        Describe the run in a few aligned lines, for a terminal.

        :returns: The text, ending in a newline (a string).
        """
        rows = [("Destination", self.destination),
                ("Steps done", concatenate(list(self.durations)) if self.durations else "none")]
        for step, description in (('transfer', self.describe_transfer()),
                                  ('snapshot', self.describe_snapshot()),
                                  ('rotation', self.describe_rotation())):
            if description is not None:
                rows.append((step.capitalize(), "%s, in %s" % (description, format_timespan(self.durations[step]))))
        if self.describe_vanished_files():
            rows.append(("Note", self.describe_vanished_files()))
        if self.disk_space is not None:
            rows.append(("Free space", self.describe_disk_space()))
        if self.total_time is not None:
            rows.append(("Total time", format_timespan(self.total_time)))
        width = max(len(label) for label, _ in rows) + 1
        title = "Summary of the dry run (nothing was changed):" if self.dry_run else "Summary of the backup:"
        if self.incomplete:
            title = "%s completed with errors: %s:" % ("The dry run" if self.dry_run else "The backup",
                                                       self.describe_missing_files())
        lines = [title] + ['  %s %s' % ((label + ':').ljust(width), value) for label, value in rows]
        return '\n'.join(lines) + '\n'

    def format_line(self):
        """
        Describe the run in one line, for a log.

        :returns: The text, without a line ending (a string).
        """
        what = "Dry run of the backup" if self.dry_run else "Backup"
        done = "%s to %s %s" % (what, self.destination, "completed with errors" if self.incomplete else "done")
        if self.total_time is not None:
            done += " in %s" % format_timespan(self.total_time)
        parts = [self.describe_missing_files(), self.describe_transfer(), self.describe_vanished_files()]
        snapshot = self.describe_snapshot()
        if snapshot is not None:
            parts.append("snapshot %s" % snapshot)
        parts.append(self.describe_rotation(name_removals=False))
        if self.disk_space is not None:
            parts.append(self.describe_disk_space(label=' free'))
        details = [part for part in parts if part is not None]
        return "%s: %s." % (done, '; '.join(details)) if details else done + "."


def report_summary(summary, on_terminal, stream=None):
    """
    Show a summary the way its reader wants it.

    On a terminal the summary is a block of lines on `stream`; elsewhere it is
    one line logged at the info level (the warning level when rsync left out
    files, see :attr:`BackupSummary.incomplete`). Either way, an info-level
    summary is left out when informational messages are turned off (``-q``).

    :param summary: A :class:`BackupSummary`.
    :param on_terminal: :data:`True` when a person is watching.
    :param stream: The text stream for the block (defaults to :data:`sys.stdout`).
    """
    if on_terminal:
        if logger.isEnabledFor(logging.INFO):
            stream = stream or sys.stdout
            stream.write(summary.format_block())
            stream.flush()
    else:
        logger.log(logging.WARNING if summary.incomplete else logging.INFO, "%s", summary.format_line(),
                   extra=SUMMARY)
