"""
The record of the source snapshot that ``latest`` equals: what lets the next run plan from the source's snapshots.

The walk-free plan (see :mod:`.transfer.send_plan`) lists what changed
between the source's parent snapshot and a new one; it is right only when
``latest`` equals the parent exactly. :data:`RECORD_FILE_NAME`, beside the
set's marker, says so: the UUID of the source snapshot that the last
complete transfer read (its own UUID, which every snapshot gets anew and
keeps when it is renamed to ``parent``), a fingerprint of the transfer's
filter options, and when rsync last compared the whole source with
``latest`` (a full check).

The claim must never outlive its truth, so the record is removed before
every transfer (and the removal is flushed to the disk before ``latest``
changes), and written only after a complete transfer from a source
snapshot, once that snapshot is the parent and ``latest`` is flushed to the
disk. A crash anywhere leaves no record, or one that names a snapshot that
isn't the parent: either way the next run plans with rsync's dry run. The
file is written and read like the set's other files (see
:func:`.operations.write_file()` and :func:`.operations.read_file()`):
a symbolic link planted under its name is never followed.
"""

import os
import posixpath
import re

from executor import ExternalCommandFailed

from rsync_system_backup.backup_set.marker import MARKER_FILE_NAME
from rsync_system_backup.backup_set.operations import flush_filesystem, read_file, runs_in_process, write_file

RECORD_FILE_NAME = MARKER_FILE_NAME + '.source-snapshot'
"""The name of the record (beside the marker, hidden and outside rsync's reach)."""

RECORD_HEADER = ("# The source snapshot that latest equals, for the next run's plan from the source's snapshots\n"
                 "# (rsync-system-backup writes it after a complete transfer; remove it to make the next run\n"
                 "# plan with rsync's dry run).\n")
"""The comment at the top of :data:`RECORD_FILE_NAME`, for a person who finds it."""

REMOVE_SCRIPT = 'rm -f -- "$1" && exec sync -f -- "$2"'
"""Shell code that removes a file and flushes its directory's filesystem (see :func:`remove_record()`)."""

UUID_PATTERN = re.compile(r'^[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}$')
"""What a btrfs subvolume's UUID looks like."""

FINGERPRINT_PATTERN = re.compile(r'^[0-9a-f]{64}$')
"""What a fingerprint of filter options looks like (SHA-256 in hexadecimal)."""


class SourceRecord(object):

    """The content of :data:`RECORD_FILE_NAME`."""

    def __init__(self, uuid, filters, full_check):
        """
        Make a record.

        :param uuid: The UUID of the source snapshot that ``latest`` equals (a string).
        :param filters: The fingerprint of the transfer's filter options (see :func:`.filter_fingerprint()`).
        :param full_check: When rsync last planned the whole transfer into the set (seconds since the epoch,
                           an integer).
        """
        self.uuid = uuid
        self.filters = filters
        self.full_check = full_check

    def render(self):
        """
        Write the record as text.

        :returns: The file's text (a string).
        """
        return RECORD_HEADER + 'uuid %s\nfilters %s\nfull-check %i\n' % (self.uuid, self.filters, self.full_check)

    @classmethod
    def parse(cls, text):
        """
        Read a record's text.

        :param text: The file's text (a string).
        :returns: A :class:`SourceRecord`, or :data:`None` when the text isn't one.
        """
        fields = {}
        for line in text.splitlines():
            if line.strip() and not line.startswith('#'):
                key, _, value = line.partition(' ')
                fields[key] = value
        uuid, filters, full_check = fields.get('uuid', ''), fields.get('filters', ''), fields.get('full-check', '')
        if set(fields) != {'uuid', 'filters', 'full-check'} or not UUID_PATTERN.match(uuid) or \
                not FINGERPRINT_PATTERN.match(filters) or not full_check.isdigit():
            return None
        return cls(uuid, filters, int(full_check))


def read_record(context, directory, sudo=False):
    """
    Read the record of a backup set.

    :param context: The execution context of the set's directory.
    :param directory: The set's directory (a string).
    :param sudo: :data:`True` to read with superuser privileges.
    :returns: A :class:`SourceRecord`, or :data:`None` when the file can't be read or isn't a record.
    """
    try:
        text = read_file(context, posixpath.join(directory, RECORD_FILE_NAME), sudo=sudo)
    except (OSError, ValueError, ExternalCommandFailed):
        return None
    return SourceRecord.parse(text)


def remove_record(context, directory, sudo=False):
    """
    Remove the record of a backup set, and make sure the removal is on the disk before anything else changes.

    :param context: The execution context of the set's directory.
    :param directory: The set's directory (a string).
    :param sudo: :data:`True` to remove it with superuser privileges.
    """
    pathname = posixpath.join(directory, RECORD_FILE_NAME)
    if runs_in_process(context, sudo):
        try:
            os.unlink(pathname)
        except FileNotFoundError:
            return
        handle = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)
    else:
        context.execute('sh', '-c', REMOVE_SCRIPT, 'remove', pathname, directory, sudo=sudo, shell=False, tty=False)


def write_record(context, directory, record, sudo=False, flush=True):
    """
    Write the record of a backup set, after flushing its filesystem (``latest`` is on the disk before the claim).

    :param context: The execution context of the set's directory.
    :param directory: The set's directory (a string).
    :param record: A :class:`SourceRecord`.
    :param sudo: :data:`True` to write with superuser privileges.
    :param flush: :data:`False` when ``latest`` is on the disk already
                  (a btrfs snapshot of it was made since the transfer, see
                  :attr:`.SnapshotMethod.copies_reach_disk`).
    """
    if flush:
        flush_filesystem(context, directory, sudo=sudo)
    write_file(context, posixpath.join(directory, RECORD_FILE_NAME), record.render(), sudo=sudo)
