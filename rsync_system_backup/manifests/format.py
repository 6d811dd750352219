"""
The manifest file: its name beside the snapshot, its lines, reading and writing it.

A snapshot ``NAME`` has its manifest beside it, outside the snapshot, in a
hidden directory of the backup set: ``.rsync-system-backup.manifests/NAME.manifest.gz``
(one directory rather than a file per snapshot beside the snapshots, because
rotate-backups, run by hand, would take any name with a date in it for a
backup). It is gzip-compressed UTF-8 text, possibly in several gzip
members, as ``zcat`` reads it (names that aren't UTF-8 are kept byte for
byte with surrogate escapes). The
first line is a header::

    # rsync-system-backup manifest 1 sha256 method=link-dest entries=all

and each further line describes one entry of the snapshot, with these fields
separated by tabs: the path relative to the snapshot (``.`` for its top),
the type (``f`` file, ``d`` directory, ``l`` symbolic link, ``c``/``b``
devices, ``p`` FIFO, ``s`` socket), the size in bytes (0 for all but files
and links), the mode in octal, the numeric owner and group, the modification
time in nanoseconds, the link target (``MAJOR,MINOR`` for devices) and the
SHA-256 of a file's content, which ``sha256sum`` can check by hand. A
snapshot made with ``--no-manifest`` gets the header alone, with
``entries=none``: it records the snapshot method for ``--list``.
Backslashes, tabs, line feeds and carriage returns in names are written as
``\\\\``, ``\\t``, ``\\n`` and ``\\r``. The entries come in the order of
:func:`.manifests.scan.walk()`.

The same directory holds :data:`LATEST_RECORD`, which names the snapshot
whose manifest describes ``latest`` as it is (see :mod:`.manifests.incremental`).
"""

import collections
import contextlib
import errno
import gzip
import io
import os
import stat
import tempfile
import threading

MANIFEST_DIRECTORY = '.rsync-system-backup.manifests'
"""The directory beside the snapshots that holds their manifests (private to its owner)."""

MANIFEST_SUFFIX = '.manifest.gz'
"""The end of a manifest's name (it starts with the snapshot's name)."""

TEMPORARY_SUFFIX = '.tmp'
"""The end of the name of a manifest that is still being written (the middle is random)."""

LATEST_RECORD = 'latest.described-by'
"""
The file in :data:`MANIFEST_DIRECTORY` that names the snapshot whose manifest
describes ``latest`` as it is now: written with a manifest built from
``latest``, taken away before anything writes to ``latest`` (see
:func:`.take_latest_description()`).
"""

FORMAT_VERSION = '1'
"""The version of the format, in the header."""

CHECKSUM_ALGORITHM = 'sha256'
"""The :mod:`hashlib` algorithm of the content checksums."""

HEADER_PREFIX = '# rsync-system-backup manifest '
"""The start of a manifest's first line."""

ENCODING_OPTIONS = dict(encoding='utf-8', errors='surrogateescape')
"""How the text of a manifest is encoded."""

COMPRESSION_LEVEL = 1
"""The gzip level: the fastest, because a manifest is written on every backup."""

COMPRESSION_PARTS = 4
"""At most how many parts :func:`compress_parts()` compresses at once."""

MINIMUM_PART_SIZE = 1024 * 1024
"""The size below which lines aren't split into more parts (bytes)."""

Entry = collections.namedtuple('Entry', 'path type size mode uid gid mtime_ns target checksum')
"""One entry of a snapshot: the fields of a manifest line (numbers as integers, the rest as strings)."""

COMPARED_FIELDS = ('type', 'size', 'mode', 'uid', 'gid', 'mtime_ns', 'target', 'checksum')
"""The fields of an :class:`Entry` that must match for two entries to be the same."""

ESCAPES = {'\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r'}
"""How special characters in names are written."""

UNESCAPES = {'\\': '\\', 't': '\t', 'n': '\n', 'r': '\r'}
"""The characters after a backslash and what they stand for."""


class Manifest(object):

    """A manifest as read from its file."""

    def __init__(self, method, entries, complete=True):
        """
        Hold a manifest's content.

        :param method: The snapshot method that made the snapshot (a string, empty when unknown).
        :param entries: A dict from path to :class:`Entry`.
        :param complete: :data:`False` for a header without entries (a snapshot made without ``--manifest``).
        """
        self.method = method
        self.entries = entries
        self.complete = complete


def manifest_name(snapshot_name):
    """
    Name the manifest of a snapshot.

    :param snapshot_name: The snapshot's name (a string).
    :returns: The manifest's pathname relative to the directory that holds the snapshot (a string).
    """
    return '%s/%s%s' % (MANIFEST_DIRECTORY, snapshot_name, MANIFEST_SUFFIX)


def manifest_owner(filename):
    """
    Tell which snapshot a manifest, or a manifest being written, belongs to.

    :param filename: A name in :data:`MANIFEST_DIRECTORY` (a string).
    :returns: The snapshot's name, or :data:`None` when the name is no manifest's.
    """
    if filename.endswith(MANIFEST_SUFFIX):
        return filename[:-len(MANIFEST_SUFFIX)] or None
    if filename.endswith(TEMPORARY_SUFFIX) and (MANIFEST_SUFFIX + '.') in filename:
        return filename[:filename.rindex(MANIFEST_SUFFIX + '.')] or None
    return None


def orphaned_manifests(filenames, names):
    """
    Find the manifests (and manifests being written) whose snapshot is gone.

    :param filenames: The names in :data:`MANIFEST_DIRECTORY` (strings).
    :param names: The names in the directory that holds the snapshots (strings).
    :returns: The names of those manifests in :data:`MANIFEST_DIRECTORY` (a sorted list of strings).
    """
    present = set(names)
    return sorted(filename for filename in filenames
                  if manifest_owner(filename) not in present and filename != LATEST_RECORD)


def list_manifests(directory):
    """
    Find the snapshots that have a manifest.

    :param directory: The directory that holds the snapshots (a string).
    :returns: A set of snapshot names (strings).
    """
    try:
        filenames = os.listdir(os.path.join(directory, MANIFEST_DIRECTORY))
    except (FileNotFoundError, NotADirectoryError):
        return set()
    return set(filename[:-len(MANIFEST_SUFFIX)] for filename in filenames if filename.endswith(MANIFEST_SUFFIX))


def make_manifest_directory(directory):
    """
    Create :data:`MANIFEST_DIRECTORY` (mode 0700) when it doesn't exist yet, and refuse anything but a directory.

    :param directory: The directory that holds the snapshots (a string).
    :returns: The pathname of :data:`MANIFEST_DIRECTORY` (a string).
    :raises: :exc:`~exceptions.NotADirectoryError` when a symbolic link or a file has its name.
    """
    pathname = os.path.join(directory, MANIFEST_DIRECTORY)
    try:
        os.mkdir(pathname, 0o700)
    except FileExistsError:
        if not stat.S_ISDIR(os.lstat(pathname).st_mode):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory (remove it)", pathname)
    return pathname


def escape(text):
    """
    Escape a name for a manifest line.

    :param text: A name (a string).
    :returns: The name with :data:`ESCAPES` applied.
    """
    if '\\' in text or '\t' in text or '\n' in text or '\r' in text:
        return ''.join(ESCAPES.get(character, character) for character in text)
    return text


def unescape(text):
    """
    Undo :func:`escape()`.

    :param text: An escaped name (a string).
    :returns: The name.
    """
    if '\\' not in text:
        return text
    parts = []
    characters = iter(text)
    for character in characters:
        parts.append(UNESCAPES.get(next(characters, ''), '') if character == '\\' else character)
    return ''.join(parts)


def format_entry(entry):
    """
    Render an entry as a manifest line.

    :param entry: An :class:`Entry`.
    :returns: A string ending in a line feed.
    """
    return '%s\t%s\t%d\t%o\t%d\t%d\t%d\t%s\t%s\n' % (
        escape(entry.path), entry.type, entry.size, entry.mode, entry.uid, entry.gid, entry.mtime_ns,
        escape(entry.target), entry.checksum,
    )


def parse_entry(line):
    """
    Read a manifest line.

    :param line: The line (a string, with or without its line feed).
    :returns: An :class:`Entry`.
    :raises: :exc:`~exceptions.ValueError` for a line that isn't one.
    """
    path, kind, size, mode, uid, gid, mtime_ns, target, checksum = line.rstrip('\n').split('\t')
    return Entry(unescape(path), kind, int(size), int(mode, 8), int(uid), int(gid), int(mtime_ns),
                 unescape(target), checksum)


def format_header(method, complete=True):
    """
    Render a manifest's first line.

    :param method: The snapshot method that made the snapshot (a string).
    :param complete: :data:`False` when no entries follow.
    :returns: A string ending in a line feed.
    """
    return '%s%s %s method=%s entries=%s\n' % (HEADER_PREFIX, FORMAT_VERSION, CHECKSUM_ALGORITHM, method,
                                               'all' if complete else 'none')


def parse_header(line):
    """
    Read a manifest's first line.

    :param line: The line (a string).
    :returns: A tuple of the snapshot method it names (a string, empty when
              it names none) and :data:`True` when entries follow.
    :raises: :exc:`~exceptions.ValueError` when the line isn't a header of a format this program reads.
    """
    fields = line[len(HEADER_PREFIX):].split() if line.startswith(HEADER_PREFIX) else []
    if fields[:2] != [FORMAT_VERSION, CHECKSUM_ALGORITHM]:
        raise ValueError("not a manifest of version %s" % FORMAT_VERSION)
    settings = dict(field.partition('=')[::2] for field in fields[2:])
    return settings.get('method', ''), settings.get('entries') != 'none'


@contextlib.contextmanager
def open_manifest(pathname):
    """
    Open a manifest for reading, without following a symbolic link, for the duration of a ``with`` block.

    :param pathname: The manifest's pathname (a string).
    :returns: A context manager that gives a text stream.
    :raises: :exc:`~exceptions.OSError` when it can't be opened.
    """
    with os.fdopen(os.open(pathname, os.O_RDONLY | os.O_NOFOLLOW | os.O_NOCTTY), 'rb') as raw, \
            gzip.open(raw, 'rt', **ENCODING_OPTIONS) as stream:
        yield stream


def read_method(pathname):
    """
    Read the snapshot method from a manifest's first line.

    :param pathname: The manifest's pathname (a string).
    :returns: The method's name (a string, empty when it names none).
    :raises: :exc:`~exceptions.OSError` or :exc:`~exceptions.ValueError`
             when the manifest can't be read.
    """
    with open_manifest(pathname) as stream:
        return parse_header(stream.readline())[0]


def read_manifest(pathname):
    """
    Read a whole manifest.

    :param pathname: The manifest's pathname (a string).
    :returns: A :class:`Manifest`.
    :raises: :exc:`~exceptions.OSError` or :exc:`~exceptions.ValueError`
             (also for a damaged gzip stream) when it can't be read.
    """
    entries = {}
    with open_manifest(pathname) as stream:
        method, complete = parse_header(stream.readline())
        for line in stream:
            entry = parse_entry(line)
            entries[entry.path] = entry
    return Manifest(method, entries, complete)


def read_entry_lines(pathname):
    """
    Read a manifest's header and its entry lines as they are written.

    :param pathname: The manifest's pathname (a string).
    :returns: A tuple of the snapshot method (see :func:`parse_header()`),
              :data:`True` when it has entries, and its entry lines without
              their line feeds (a list of bytes, UTF-8 as written).
    :raises: As :func:`read_manifest()`.
    """
    with os.fdopen(os.open(pathname, os.O_RDONLY | os.O_NOFOLLOW | os.O_NOCTTY), 'rb') as raw:
        lines = gzip.decompress(raw.read()).split(b'\n')
    method, complete = parse_header(lines[0].decode(**ENCODING_OPTIONS))
    if lines.pop() != b'':
        raise ValueError("the last line of the manifest is incomplete")
    del lines[0]
    return method, complete, lines


def read_checksums(pathname):
    """
    Read what an incremental build needs from a manifest: each file's size, modification time and checksum.

    :param pathname: The manifest's pathname (a string).
    :returns: A dict from path to a (size, mtime_ns, checksum) tuple of strings.
    :raises: As :func:`read_manifest()`.
    """
    checksums = {}
    with open_manifest(pathname) as stream:
        parse_header(stream.readline())
        for line in stream:
            path, kind, size, _, _, _, mtime_ns, _, checksum = line.rstrip('\n').split('\t')
            if kind == 'f':
                checksums[path] = (size, mtime_ns, checksum)
    return checksums


@contextlib.contextmanager
def new_manifest(directory, snapshot_name):
    """
    Create a snapshot's manifest under a random temporary name, and rename it into place when the ``with`` block ends.

    The file is created with :func:`tempfile.mkstemp()` (a random name,
    ``O_EXCL``, readable only by its owner) in :data:`MANIFEST_DIRECTORY`,
    never inside a snapshot or ``latest``; when the block fails, it is
    removed again. The file and its new name are on disk when this returns
    (``fsync()`` of the file, then of the directory), so that the
    snapshot's final name, which comes later, never outlives its manifest
    in a power cut, also when nothing else flushes the filesystem (the
    btrfs method, see :attr:`.SnapshotMethod.copies_reach_disk`).

    :param directory: The directory that holds the snapshot (a string).
    :param snapshot_name: The snapshot's name (a string).
    :returns: A context manager that gives the file (a binary stream).
    """
    manifests = make_manifest_directory(directory)
    handle, temporary = tempfile.mkstemp(prefix=snapshot_name + MANIFEST_SUFFIX + '.', suffix=TEMPORARY_SUFFIX,
                                         dir=manifests)
    try:
        with os.fdopen(handle, 'wb') as raw:
            yield raw
            raw.flush()
            os.fsync(raw.fileno())
        os.rename(temporary, os.path.join(directory, manifest_name(snapshot_name)))
    except BaseException:
        os.unlink(temporary)
        raise
    descriptor = os.open(manifests, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_manifest(directory, snapshot_name, method, lines=None, compressed=None):
    """
    Write a snapshot's manifest (see :func:`new_manifest()`).

    :param directory: The directory that holds the snapshot (a string).
    :param snapshot_name: The snapshot's name (a string).
    :param method: The snapshot method that made the snapshot (a string).
    :param lines: The manifest lines (an iterable of strings from :func:`format_entry()`).
    :param compressed: The manifest lines compressed already, as :func:`compress_parts()` gives them
                       (instead of `lines`).
    :returns: The manifest's pathname (a string).

    Without `lines` and `compressed` the manifest is the header alone.
    """
    with new_manifest(directory, snapshot_name) as raw:
        header = format_header(method, complete=lines is not None or compressed is not None)
        with gzip.GzipFile(fileobj=raw, mode='wb', compresslevel=COMPRESSION_LEVEL) as stream:
            stream.write(header.encode(**ENCODING_OPTIONS))
            if lines is not None:
                text = io.TextIOWrapper(stream, **ENCODING_OPTIONS)
                text.writelines(lines)
                text.flush()
                text.detach()
        if compressed is not None:
            raw.writelines(compressed)
    return os.path.join(directory, manifest_name(snapshot_name))


def copy_manifest(directory, snapshot_name, original_name):
    """
    Give a snapshot the manifest of another one that holds the same tree, byte for byte (see :func:`new_manifest()`).

    The original is opened without following a symbolic link.

    :param directory: The directory that holds both snapshots (a string).
    :param snapshot_name: The new snapshot's name (a string).
    :param original_name: The name of the snapshot whose manifest it gets (a string).
    :returns: The new manifest's pathname (a string).
    """
    original = os.open(os.path.join(directory, manifest_name(original_name)), os.O_RDONLY | os.O_NOFOLLOW | os.O_NOCTTY)
    with os.fdopen(original, 'rb') as source, new_manifest(directory, snapshot_name) as copy:
        copy.write(source.read())
    return os.path.join(directory, manifest_name(snapshot_name))


def compress_parts(data):
    """
    Compress manifest lines as gzip members, one per processor (at most :data:`COMPRESSION_PARTS`), all at once.

    :param data: Manifest lines (bytes, each ending in a line feed).
    :returns: A list of gzip members (bytes), which read as `data` when they are concatenated.

    zlib lets other threads run while it compresses, so on several
    processors the parts take about the time of one. Each part ends at the
    end of a line.
    """
    count = max(1, min(os.cpu_count() or 1, COMPRESSION_PARTS, len(data) // MINIMUM_PART_SIZE))
    bounds = [0]
    for number in range(1, count):
        bounds.append(max(bounds[-1], data.find(b'\n', len(data) * number // count) + 1))
    bounds.append(len(data))
    members, view = [None] * count, memoryview(data)

    def compress(number):
        members[number] = gzip.compress(view[bounds[number]:bounds[number + 1]], compresslevel=COMPRESSION_LEVEL)
    threads = [threading.Thread(target=compress, args=(number,)) for number in range(1, count)]
    for thread in threads:
        thread.start()
    compress(0)
    for thread in threads:
        thread.join()
    return members


def write_latest_record(directory, snapshot_name):
    """
    Record that a snapshot's manifest describes ``latest`` as it is now (see :data:`LATEST_RECORD`).

    :param directory: The directory that holds the snapshots (a string).
    :param snapshot_name: The snapshot's name (a string).

    Written under a random temporary name and renamed into place, as :func:`write_manifest()` does.
    """
    handle, temporary = tempfile.mkstemp(prefix=LATEST_RECORD + '.', suffix=TEMPORARY_SUFFIX,
                                         dir=make_manifest_directory(directory))
    try:
        with os.fdopen(handle, 'wb') as stream:
            stream.write((snapshot_name + '\n').encode(**ENCODING_OPTIONS))
        os.rename(temporary, os.path.join(directory, MANIFEST_DIRECTORY, LATEST_RECORD))
    except BaseException:
        os.unlink(temporary)
        raise
