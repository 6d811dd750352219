"""
Building a snapshot's manifest from the previous one and the names that the transfer changed.

A planned transfer (see :mod:`.transfer.plan`) names every entry of
``latest`` that it creates, changes or deletes, and every directory whose
times it sets. Every other entry of ``latest`` is as it was when the previous
snapshot's manifest described it, as long as nothing else wrote to ``latest``
since (see :data:`.LATEST_RECORD`). So :func:`build_from_changes()` copies
the previous manifest's lines and describes afresh, with :func:`os.lstat()`,
the changed names, the top directory, and everything below a directory that
is new (or was deleted, or was something else before). A regular file's
content is read only when it may be new: when the previous snapshot doesn't
hold the very same inode under its name (the transfer writes every file it
changes anew, and never changes a file that a snapshot shares in place), or
its size or modification time changed. So the result is, line for line, the
manifest that describing and reading all of ``latest`` would give (see
:func:`.scan_tree()`), as far as the previous one was, at a cost that grows
with the changes.

When the btrfs and reflink methods apply a plan in place, rsync changes the
attributes of an inode that has several names through one of them, and all
its names change (see :attr:`.TransferPlan.attributes_only`). rsync's dry run
itemizes each of them, but a name can drop out of the plan (it changed in the
source since the dry run). So when a name marked :data:`CHANGED_IN_PLACE`
shares its inode with names that the changes don't list, all of ``latest``
is walked instead.

The lines of a manifest come in the order of :func:`.manifests.scan.walk()`:
a directory, then what it holds, names sorted. :func:`order_key()` turns a
path into a string that sorts in that order, so the previous manifest's
lines can be searched by bisection and the new lines merged in where they
belong.
"""

import errno
import os
import stat

from rsync_system_backup.manifests.format import ENCODING_OPTIONS, format_entry, parse_entry, unescape
from rsync_system_backup.manifests.scan import (
    DIRECTORY_FLAGS,
    checksum_file,
    describe,
    open_directory,
    same_inode,
    walk_below,
)

MISSING_ERRORS = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)
"""What opening a directory gives when a name on the way isn't a real directory (absent, no directory, a link)."""

SNAPSHOT = b'='
"""The mark of the snapshot's name, which comes after the changes (see :func:`encode_name()`)."""

DELETED = b'-'
"""The mark of a name that the transfer deleted (maybe to put something else there)."""

TOUCHED = b'+'
"""The mark of any other name that the transfer touched."""

CHANGED_IN_PLACE = b'~'
"""
The mark of a name whose attributes the transfer changed in place, maybe
without naming the other names of its inode (which then changed too).
"""

WALK = b'*'
"""The mark that says the changes aren't known: all of ``latest`` is walked."""

CHANGES_END = b'/'
"""The record that ends the changes: the program may describe them before the snapshot has a name."""

END = b'.'
"""The mark of the last record: the instructions are complete."""

READ_SIZE = 65536
"""At most how many bytes of instructions are read at a time."""


def order_key(path):
    """
    Give the key that sorts paths in the order of :func:`.manifests.scan.walk()`.

    :param path: A path relative to the tree (a string, ``.`` for its top).
    :returns: A string: the path with each slash replaced by a NUL character
              (which sorts before any character of a name, so a directory's
              entries come right after it, before its next sibling), and the
              empty string for the top.
    """
    return '' if path == '.' else path.replace('/', '\0')


def line_key(line):
    """
    Give the :func:`order_key()` of a manifest line.

    :param line: A manifest line (bytes, as written).
    :returns: A string.
    """
    return order_key(unescape(line[:line.index(b'\t')].decode(**ENCODING_OPTIONS)))


def find_position(lines, key, start=0):
    """
    Find where a key belongs among manifest lines in walk order.

    :param lines: Manifest lines in the order of :func:`.manifests.scan.walk()` (bytes).
    :param key: An :func:`order_key()`.
    :param start: The first line to consider.
    :returns: The index of the first line (from `start`) whose key isn't below `key`.

    The search looks near `start` first, with steps that double (the
    changed names come in order, each near the one before), then bisects.
    """
    low, high, step = start, start, 1
    while high < len(lines) and line_key(lines[high]) < key:
        low, high, step = high + 1, high + step, step * 2
    high = min(high, len(lines))
    while low < high:
        middle = (low + high) // 2
        if line_key(lines[middle]) < key:
            low = middle + 1
        else:
            high = middle
    return low


def encode_instructions(name, changes):
    """
    Tell the manifests' program which manifest to build, and from what (see :func:`.agent.manifests.build_manifest()`).

    :param name: The snapshot's name (a string).
    :param changes: See :func:`encode_changes()`.
    :returns: Bytes: what :func:`encode_changes()` gives, then what :func:`encode_name()` gives.
    """
    return encode_changes(changes) + encode_name(name)


def encode_changes(changes):
    """
    Give the first part of the manifests' program's instructions: what the transfer changed.

    :param changes: What the transfer changed in ``latest``: a tuple of the
                    names it touched and those among them it deleted
                    (bytes, relative to ``latest``), and maybe a third
                    list, of those whose attributes it changed in place
                    without naming the inode's other names (see
                    :attr:`.SnapshotMethod.changes`); or :data:`None` when
                    that isn't known.
    :returns: Bytes: records that each start with a mark and end with a NUL
              byte: :data:`WALK`, or each name after :data:`DELETED`,
              :data:`CHANGED_IN_PLACE` or :data:`TOUCHED`; last :data:`CHANGES_END`.
    """
    if changes is None:
        records = [WALK]
    else:
        touched, deleted = set(changes[0]), set(changes[1])
        in_place = set(changes[2]) if len(changes) > 2 else set()
        records = [(DELETED if name in deleted else CHANGED_IN_PLACE if name in in_place else TOUCHED) + name
                   for name in sorted(touched | deleted)]
    records.append(CHANGES_END)
    return b''.join(record + b'\0' for record in records)


def encode_name(name):
    """
    Give the last part of the manifests' program's instructions: the snapshot's name.

    :param name: The snapshot's name (a string).
    :returns: Bytes: :data:`SNAPSHOT` and the name, then :data:`END`, each record ending with a NUL byte.
    """
    return SNAPSHOT + name.encode(**ENCODING_OPTIONS) + b'\0' + END + b'\0'


class InstructionReader(object):

    """Reads the two parts of what :func:`encode_instructions()` wrote, each as soon as it has come."""

    def __init__(self, stream):
        """
        Prepare to read.

        :param stream: A binary stream (with ``read1()``, as standard input has).
        """
        self.stream = stream
        self.unread = bytearray()

    def read_changes(self):
        """
        Read the changes.

        :returns: A dict from each name (a string, decoded as
                  :func:`os.listdir()` decodes names) to its mark
                  (:data:`DELETED`, :data:`CHANGED_IN_PLACE` or
                  :data:`TOUCHED`), or :data:`None` to walk.
        :raises: :exc:`~exceptions.ValueError` when they end early (the run stopped before its snapshot).
        """
        records = self.read_records(CHANGES_END)
        if records == [WALK]:
            return None
        return {os.fsdecode(record[1:]): record[:1] for record in records}

    def read_name(self):
        """
        Read the snapshot's name, after the changes.

        :returns: A string.
        :raises: :exc:`~exceptions.ValueError` when it doesn't come (the run stopped before its snapshot).
        """
        records = self.read_records(END)
        if len(records) != 1 or records[0][:1] != SNAPSHOT:
            raise ValueError("the run stopped before its snapshot")
        return records[0][1:].decode(**ENCODING_OPTIONS)

    def read_records(self, last):
        """
        Read records up to one that is `last`.

        :param last: A record (bytes).
        :returns: The records before it (a list of bytes).
        :raises: :exc:`~exceptions.ValueError` when the stream ends first.
        """
        wanted = b'\0' + last + b'\0'
        # A NUL byte in front lets the first record match as every other does.
        data = bytearray(b'\0') + self.unread
        start = 0
        while True:
            found = data.find(wanted, start)
            if found >= 0:
                self.unread = data[found + len(wanted):]
                return bytes(data[1:found + 1]).split(b'\0')[:-1]
            start = max(0, len(data) - len(wanted) + 1)
            chunk = self.stream.read1(READ_SIZE)
            if not chunk:
                raise ValueError("the run stopped before its snapshot")
            data += chunk


class TreeLookup(object):

    """Looks up entries of a tree by path, never through a symbolic link (fastest in walk order)."""

    def __init__(self, root):
        """
        Open a tree.

        :param root: Its top directory (a string).
        :raises: :exc:`~exceptions.OSError` when it can't be opened.
        """
        self.root = os.open(root, DIRECTORY_FLAGS)
        self.opened = []
        """The open directories on the way to the last one looked in: (path, descriptor) tuples."""

    def close(self):
        """Close every directory."""
        for _, descriptor in self.opened:
            os.close(descriptor)
        self.opened = []
        os.close(self.root)

    def find(self, path):
        """
        Look an entry up.

        :param path: Its path (a string, ``.`` for the top).
        :returns: A tuple of its :func:`os.lstat()`, the descriptor of the
                  directory that holds it and its name there (:data:`None`
                  for the top), or :data:`None` when it doesn't exist (or a
                  directory above it isn't a real directory).
        """
        if path == '.':
            return os.fstat(self.root), None, None
        directory, _, name = path.rpartition('/')
        parent = self.open(directory)
        if parent is None:
            return None
        try:
            return os.stat(name, dir_fd=parent, follow_symlinks=False), parent, name
        except FileNotFoundError:
            return None

    def open(self, directory):
        """
        Open a directory of the tree, keeping the directories above it open for the next lookups.

        :param directory: Its path (a string, empty for the top).
        :returns: Its descriptor, or :data:`None` when it isn't a real directory.
        """
        while self.opened and not (directory + '/').startswith(self.opened[-1][0] + '/'):
            os.close(self.opened.pop()[1])
        path, descriptor = self.opened[-1] if self.opened else ('', self.root)
        rest = directory[len(path):].lstrip('/')
        for name in rest.split('/') if rest else ():
            try:
                descriptor = os.open(name, DIRECTORY_FLAGS, dir_fd=descriptor)
            except OSError as e:
                if e.errno in MISSING_ERRORS:
                    return None
                raise
            path = path + '/' + name if path else name
            self.opened.append((path, descriptor))
        return descriptor


def build_from_changes(tree, lines, changes, previous_snapshot):
    """
    Describe ``latest`` after a planned transfer, from the previous manifest and what the transfer changed.

    :param tree: ``latest`` (a string).
    :param lines: The entry lines of the previous snapshot's manifest, in
                  walk order, without line feeds (bytes, see
                  :func:`.read_entry_lines()`); it described ``latest``
                  before the transfer.
    :param changes: What the transfer changed (see :meth:`InstructionReader.read_changes()`).
    :param previous_snapshot: The previous snapshot (a string), whose inodes tell which files kept their content.
    :returns: The new manifest's entry lines (a list of bytes without line feeds).
    :raises: :exc:`~exceptions.OSError` or :exc:`.ChangedDuringWalk` when
             ``latest`` can't be read; :exc:`~exceptions.ValueError` when
             the previous manifest has no top directory, or when a name
             marked :data:`CHANGED_IN_PLACE` shares its inode with names
             that the changes don't list.
    """
    removals, inserts = [], []
    below_new, position = None, 0
    # For each inode with several names: how many, how many the changes list, and one changed in place.
    shared = {}
    latest, previous = TreeLookup(tree), TreeLookup(previous_snapshot)
    try:
        for path in sorted(set(changes) | {'.'}, key=order_key):
            key = order_key(path)
            if below_new is not None and key.startswith(below_new):
                continue
            start = position = find_position(lines, key, position)
            old = parse_entry(lines[start].decode(**ENCODING_OPTIONS)) \
                if start < len(lines) and line_key(lines[start]) == key else None
            found = latest.find(path)
            # Nothing below an entry that was deleted, or wasn't or isn't a directory, is left from before.
            replaced = old is None or old.type != 'd' or changes.get(path) == DELETED or found is None \
                or not stat.S_ISDIR(found[0].st_mode)
            if replaced and path == '.':
                raise ValueError("the previous manifest doesn't describe a top directory")
            removals.append((start, find_position(lines, key + '\x01', start) if replaced else start + 1))
            if found is None:
                continue
            info, parent, name = found
            if not stat.S_ISDIR(info.st_mode) and info.st_nlink > 1:
                names = shared.setdefault((info.st_dev, info.st_ino), [info.st_nlink, 0, None])
                names[1] += 1
                if changes.get(path) == CHANGED_IN_PLACE:
                    names[2] = path
            inserts.append((start, describe_entry(path, info, parent, name, old, previous)))
            if replaced and stat.S_ISDIR(info.st_mode):
                below_new = key + '\0'
                inserts.extend((start, line) for line in describe_below(parent, name, info, path))
    finally:
        latest.close()
        previous.close()
    for count, listed, path in shared.values():
        if path is not None and listed < count:
            raise ValueError("the attributes of %s changed in place, and the changes don't list its other names" % path)
    return merge_lines(lines, removals, inserts)


def describe_entry(path, info, parent, name, old, previous):
    """
    Describe one changed entry afresh.

    :param path: Its path (a string).
    :param info: Its :func:`os.lstat()`.
    :param parent: The descriptor of the directory that holds it (:data:`None` for the top).
    :param name: Its name there.
    :param old: Its previous :class:`.Entry`, or :data:`None`.
    :param previous: A :class:`TreeLookup` of the previous snapshot.
    :returns: A manifest line without its line feed (bytes).
    """
    checksum = ''
    if stat.S_ISREG(info.st_mode):
        if old is not None and old.type == 'f' and (old.size, old.mtime_ns) == (info.st_size, info.st_mtime_ns) \
                and same_file(previous, path, info):
            checksum = old.checksum
        else:
            checksum = checksum_file(parent, name, info)
    return encode_line(describe(path, info, parent, name, checksum))


def same_file(previous, path, info):
    """
    Check whether the previous snapshot holds the very same inode under a path.

    :param previous: A :class:`TreeLookup` of the previous snapshot.
    :param path: The path (a string).
    :param info: The :func:`os.lstat()` of the entry in ``latest``.
    :returns: :data:`True` when it does (so the content is the one that the previous manifest describes).
    """
    found = previous.find(path)
    return found is not None and same_inode(found[0], info)


def describe_below(parent, name, info, path):
    """
    Describe everything below a new directory, reading every file.

    :param parent: The descriptor of the directory that holds it.
    :param name: Its name there.
    :param info: Its :func:`os.lstat()`.
    :param path: Its path (a string).
    :returns: A generator of manifest lines without line feeds (bytes), in walk order.
    """
    descriptor = open_directory(parent, name, info)
    try:
        for below, below_info, below_parent, below_name in walk_below(descriptor, path + '/'):
            checksum = checksum_file(below_parent, below_name, below_info) if stat.S_ISREG(below_info.st_mode) else ''
            yield encode_line(describe(below, below_info, below_parent, below_name, checksum))
    finally:
        os.close(descriptor)


def encode_line(entry):
    """
    Render an entry as a manifest line without its line feed.

    :param entry: An :class:`.Entry`.
    :returns: Bytes.
    """
    return format_entry(entry)[:-1].encode(**ENCODING_OPTIONS)


def merge_lines(lines, removals, inserts):
    """
    Put new lines in the place of old ones.

    :param lines: The previous lines (bytes).
    :param removals: The (start, end) index ranges of the lines that go, by start.
    :param inserts: (index, line) tuples of the new lines, in order: each goes before the previous line at that index.
    :returns: A list of bytes.
    """
    merged, cursor = [], 0
    # Sorted by index (stable: new lines keep their order), a new line before a range that starts there.
    for index, kind, value in sorted([(index, 0, line) for index, line in inserts]
                                     + [(start, 1, end) for start, end in removals], key=lambda event: event[:2]):
        if index > cursor:
            merged.extend(lines[cursor:index])
            cursor = index
        if kind == 0:
            merged.append(value)
        else:
            cursor = max(cursor, value)
    merged.extend(lines[cursor:])
    return merged
