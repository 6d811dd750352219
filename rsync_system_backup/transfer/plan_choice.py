"""
How a planned transfer plans: from the source's snapshots (``btrfs send``), or with rsync's dry run.

rsync's dry run walks the whole source and ``latest``; the walk-free plan
(see :mod:`.transfer.send_plan`) costs what changed, but it takes on trust
that ``latest`` equals the source's parent snapshot. :class:`PlanChoice`
takes the send plan only when all of these hold, and otherwise says why in
one INFO line:

- the transfer reads a snapshot of the source and a parent was there (see :mod:`.sources.snapshots`);
- the backup set's record (see :mod:`.backup_set.source_record`) names
  exactly that parent, made with the same filter options (the fingerprint
  of :func:`send_filter_options()`);
- rsync last planned a whole transfer into the set (a full check) less
  than :data:`FULL_CHECK_INTERVAL` ago, and ``--full-check`` wasn't given;
- this process is root on the source's system (it reads the snapshots itself).

When ``btrfs send`` or anything after it fails, the run plans with rsync's
dry run as well (see :exc:`.SendPlanUnavailable`). The record is read and
removed before the transfer, and written again only after a complete
transfer from a snapshot that became the parent, with the time of the
last full check: this run's when rsync planned or transferred the whole
tree, the earlier one when the send plan was used.
"""

import hashlib
import logging
import os
import time

from executor.contexts import LocalContext
from humanfriendly import format_timespan

from rsync_system_backup.backup_set.source_record import (
    RECORD_FILE_NAME,
    SourceRecord,
    read_record,
    remove_record,
    write_record,
)
from rsync_system_backup.snapshots.btrfs import subvolume_uuid
from rsync_system_backup.transfer.send_plan import SendPlanUnavailable, plan_from_snapshots

FULL_CHECK_INTERVAL = 7 * 24 * 60 * 60
"""How long the send plan may stand in for rsync's dry run before a full check runs (seconds: a week)."""

DRY_RUN_FALLBACK = "Planning the transfer with rsync's dry run"
"""How the INFO line starts when a planned transfer of the safe-hardlink method plans without the snapshots."""

IN_PLACE_FALLBACK = "Transferring with one rsync over the whole tree"
"""How it starts when a transfer into ``latest`` in place (btrfs, reflink) goes without a plan."""

FINGERPRINT_VERSION = b'send-plan-filters-1'
"""What the fingerprint of the filter options starts with (a new way to write them gets a new version)."""

logger = logging.getLogger(__name__)


def send_filter_options(anchored, exclude_list):
    """
    Give the filter options that choose the same names in every snapshot of the source.

    :param anchored: The excluded paths as patterns anchored at the transfer's top (:attr:`.SourceSnapshot.anchored`).
    :param exclude_list: The patterns of ``-x`` (strings).
    :returns: rsync options (a list of strings), each once: rules that only exclude mean the same in any order
              and number, and the directory of the source's snapshots is among the excluded paths only once
              it exists (the first run names it once more).
    """
    options = ['--filter=- %s' % pattern for pattern in anchored]
    options.extend('--exclude=%s' % pattern for pattern in exclude_list)
    return list(dict.fromkeys(options))


def filter_fingerprint(options):
    """
    Fingerprint a transfer's filter options.

    :param options: rsync options (strings, see :func:`send_filter_options()`).
    :returns: The SHA-256 of the options in order (64 hexadecimal digits).
    """
    digest = hashlib.sha256(FINGERPRINT_VERSION)
    for option in options:
        digest.update(b'\0' + option.encode('utf-8', 'surrogateescape'))
    return digest.hexdigest()


class PlanChoice(object):

    """The choice between the send plan and rsync's dry run for one run, and the record that makes it."""

    def __init__(self, context, directory, origin, exclude_list, full_check=False, sudo=False):
        """
        Prepare to choose.

        :param context: The execution context of the backup set's directory.
        :param directory: The backup set's directory (a string).
        :param origin: The :class:`.SourceSnapshot` that the transfer reads.
        :param exclude_list: The patterns of ``-x`` (strings).
        :param full_check: :data:`True` to plan with rsync's dry run whatever the record says (``--full-check``).
        :param sudo: :data:`True` to read and write the record with superuser privileges.
        """
        self.context = context
        self.directory = directory
        self.origin = origin
        self.full_check = full_check
        self.sudo = sudo
        self.filter_options = None if origin.anchored is None else send_filter_options(origin.anchored, exclude_list)
        self.started = int(time.time())
        self.snapshot_uuid = None
        self.last_full_check = None
        self.reason = None
        """Why the send plan isn't used (a string), or :data:`None`."""
        self.asked = False
        self.used = False
        """:data:`True` when the transfer was planned from the snapshots."""

    def prepare(self, names):
        """
        Read and remove the record, and decide (before the transfer, under the set's lock).

        :param names: The names in the set's directory (strings).
        """
        record = None
        if RECORD_FILE_NAME in names:
            record = read_record(self.context, self.directory, sudo=self.sudo)
            remove_record(self.context, self.directory, sudo=self.sudo)
        if self.origin.snapshot is None:
            return
        origin = self.origin
        self.snapshot_uuid = subvolume_uuid(origin.context, origin.snapshot, sudo=origin.sudo)
        self.reason = self.find_obstacle(RECORD_FILE_NAME in names, record)
        if self.reason is None:
            self.last_full_check = record.full_check

    def find_obstacle(self, present, record):
        """
        Find what keeps the transfer from planning with the snapshots.

        :param present: :data:`True` when the set held a record.
        :param record: The :class:`.SourceRecord` read, or :data:`None`.
        :returns: The reason (a string), or :data:`None`.
        """
        origin = self.origin
        if not origin.had_parent:
            return "there is no earlier snapshot of %s to compare with" % origin.source
        if self.full_check:
            return "--full-check"
        if not isinstance(origin.context, LocalContext) or os.geteuid() != 0:
            return "only root on the source's system can read its snapshots"
        if not present:
            return "the backup set records no complete transfer from a snapshot of %s" % origin.source
        if record is None:
            return "the backup set's record %s can't be read" % RECORD_FILE_NAME
        if record.uuid != subvolume_uuid(origin.context, origin.parent, sudo=origin.sudo):
            return ("the last transfer into the backup set read another snapshot of %s than its parent (another "
                    "destination's run came between)" % origin.source)
        if record.filters != filter_fingerprint(self.filter_options):
            return "the excludes changed since the last transfer"
        age = self.started - record.full_check
        if not 0 <= age < FULL_CHECK_INTERVAL:
            return ("the last full check was %s ago (one runs at least every %s)"
                    % (format_timespan(age), format_timespan(FULL_CHECK_INTERVAL)) if age > 0 else
                    "the time of the last full check lies in the future")
        return None

    def plan(self, fallback=DRY_RUN_FALLBACK):
        """
        Plan the transfer from the snapshots, the first time a planned transfer asks.

        :param fallback: What the transfer does without the plan, as the INFO line
                         that says so starts (:data:`DRY_RUN_FALLBACK` or :data:`IN_PLACE_FALLBACK`).
        :returns: A :class:`.SendPlan`, or :data:`None` to do without (with one
                  INFO line saying why, when the transfer reads a snapshot).
        """
        if self.asked or self.origin.snapshot is None:
            return None
        self.asked = True
        origin = self.origin
        if self.reason:
            logger.info("%s: %s.", fallback, self.reason)
            return None
        try:
            plan = plan_from_snapshots(origin.context, origin.parent, origin.snapshot, self.filter_options,
                                       sudo=origin.sudo)
        except SendPlanUnavailable as unavailable:
            logger.info("%s: the snapshots of %s can't give the plan (%s).", fallback, origin.source,
                        unavailable.reason)
            return None
        self.used = True
        logger.info("Planned the transfer from the snapshots of %s (btrfs send), without rsync's dry run: %i name(s) "
                    "to transfer, %i to delete.", origin.source, len(plan.entries), len(plan.deletions))
        return plan

    def record(self, flush=True):
        """
        Write the record after a complete transfer from a snapshot that became the parent (see :meth:`.keep()`).

        :param flush: See :func:`.write_record()`.
        """
        if not self.origin.kept or self.snapshot_uuid is None:
            return
        full_check = self.last_full_check if self.used else self.started
        write_record(self.context, self.directory,
                     SourceRecord(self.snapshot_uuid, filter_fingerprint(self.filter_options), full_check),
                     sudo=self.sudo, flush=flush)
