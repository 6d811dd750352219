"""
Comparing two descriptions of a tree: what was added, removed and changed, and in which fields.
"""

import time

from rsync_system_backup.manifests.format import COMPARED_FIELDS

FIELD_LABELS = {
    'type': 'type', 'size': 'size', 'mode': 'mode', 'uid': 'owner', 'gid': 'group',
    'mtime_ns': 'mtime', 'target': 'link target', 'checksum': 'content',
}
"""How each field of an :class:`.Entry` is named in reports."""


class Differences(object):

    """What differs between an expected and an actual tree (paths sorted)."""

    def __init__(self, added=(), removed=(), changed=()):
        """
        Record the differences.

        :param added: Paths only in the actual tree (strings).
        :param removed: Paths only in the expected tree (strings).
        :param changed: (path, fields) tuples for paths in both whose
                        entries differ; fields is a list of (label, expected,
                        actual) tuples (see :func:`describe_change()`).
        """
        self.added = sorted(added)
        self.removed = sorted(removed)
        self.changed = sorted(changed)

    def __bool__(self):
        """:data:`True` when anything differs."""
        return bool(self.added or self.removed or self.changed)

    def to_dict(self):
        """The differences as a JSON-friendly dict (the inverse of :meth:`from_dict()`)."""
        return dict(added=self.added, removed=self.removed,
                    changed=[[path, [list(field) for field in fields]] for path, fields in self.changed])

    @classmethod
    def from_dict(cls, value):
        """Rebuild :class:`Differences` from :meth:`to_dict()`."""
        return cls(value['added'], value['removed'],
                   [(path, [tuple(field) for field in fields]) for path, fields in value['changed']])


def format_time(nanoseconds):
    """
    Render a modification time for a report.

    :param nanoseconds: Nanoseconds since the epoch (an integer).
    :returns: The local time with nanoseconds (a string).
    """
    seconds, fraction = divmod(nanoseconds, 1000000000)
    return '%s.%09d' % (time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(seconds)), fraction)


def describe_change(field, expected, actual):
    """
    Name a field that differs, with both values in a readable form.

    :param field: The field of :class:`.Entry` (a string).
    :param expected: Its expected value.
    :param actual: Its actual value.
    :returns: A (label, expected, actual) tuple of strings.
    """
    if field == 'mode':
        expected, actual = '%04o' % expected, '%04o' % actual
    elif field == 'checksum':
        expected, actual = expected[:12], actual[:12]
    elif field == 'mtime_ns':
        expected, actual = format_time(expected), format_time(actual)
    return FIELD_LABELS[field], str(expected), str(actual)


def compare_entries(expected, actual, fields=COMPARED_FIELDS, directory_times=True):
    """
    Compare two entries of the same path.

    :param expected: An :class:`.Entry`.
    :param actual: An :class:`.Entry`.
    :param fields: The fields to compare (names of :class:`.Entry` fields).
    :param directory_times: :data:`False` to ignore the modification time of
                            directories (which changes with their content).
    :returns: A list of (label, expected, actual) tuples, empty when they match.
    """
    changes = []
    for field in fields:
        if field == 'mtime_ns' and not directory_times and expected.type == 'd' == actual.type:
            continue
        old, new = getattr(expected, field), getattr(actual, field)
        if old != new:
            changes.append(describe_change(field, old, new))
    return changes


def compare_trees(expected, actual, fields=COMPARED_FIELDS, directory_times=True):
    """
    Compare two trees entry by entry.

    :param expected: A dict from path to :class:`.Entry` (the older or recorded tree).
    :param actual: An iterable of :class:`.Entry` objects (the newer or present tree).
    :param fields: See :func:`compare_entries()`.
    :param directory_times: See :func:`compare_entries()`.
    :returns: :class:`Differences`.
    """
    remaining = dict(expected)
    added, changed = [], []
    for entry in actual:
        old = remaining.pop(entry.path, None)
        if old is None:
            added.append(entry.path)
        else:
            changes = compare_entries(old, entry, fields, directory_times)
            if changes:
                changed.append((entry.path, changes))
    return Differences(added, remaining.keys(), changed)
