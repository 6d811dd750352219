"""
Walking a snapshot safely and describing its entries, with or without reading their content.

The walk holds a file descriptor of each directory and opens what is below it
relative to that descriptor with ``O_NOFOLLOW``, so a symbolic link inside a
snapshot (or one swapped in for a directory during the walk) is described as
a link and never followed. Files are opened with ``O_NOATIME`` where allowed,
so that reading a snapshot leaves its access times alone.
"""

import hashlib
import os
import stat

from rsync_system_backup.manifests.format import CHECKSUM_ALGORITHM, Entry, escape, format_entry

TYPE_CODES = {
    stat.S_IFREG: 'f', stat.S_IFDIR: 'd', stat.S_IFLNK: 'l', stat.S_IFCHR: 'c',
    stat.S_IFBLK: 'b', stat.S_IFIFO: 'p', stat.S_IFSOCK: 's',
}
"""The type letter of each kind of entry."""

DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NOCTTY
"""How directories are opened."""

FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NOCTTY | os.O_NONBLOCK
"""How files are opened (non-blocking, in case a FIFO took a file's place)."""

CHUNK_SIZE = 1024 * 1024
"""How many bytes are read and hashed at a time."""


class ChangedDuringWalk(Exception):
    """Raised when an entry is replaced by another between looking at it and opening it."""


def walk(root):
    """
    Walk a tree without following symbolic links, top first, names in sorted order.

    :param root: The tree's top directory (a string); it must be a real directory.
    :returns: A generator of (path, stat result, directory descriptor, name)
              tuples: the path relative to the root (``.`` for the root
              itself, whose descriptor is :data:`None`), the entry's
              :func:`os.lstat()`, and the open directory that holds it with
              its name there (valid until the next item).
    :raises: :exc:`~exceptions.OSError` when the root can't be opened.
    """
    top = os.open(root, DIRECTORY_FLAGS)
    try:
        yield '.', os.fstat(top), None, None
        yield from walk_below(top, '')
    finally:
        os.close(top)


def walk_below(directory, prefix):
    """
    Walk what an open directory holds, as :func:`walk()` does.

    :param directory: The directory's descriptor (it stays open).
    :param prefix: The directory's path relative to the tree with a slash at
                   its end (a string, empty for the tree's top).
    :returns: A generator of (path, stat result, directory descriptor, name)
              tuples for every entry below the directory (see :func:`walk()`).
    """
    stack = [(directory, prefix, iter(sorted(os.listdir(directory))))]
    try:
        while stack:
            descriptor, prefix, names = stack[-1]
            name = next(names, None)
            if name is None:
                stack.pop()
                if stack:
                    os.close(descriptor)
                continue
            info = os.stat(name, dir_fd=descriptor, follow_symlinks=False)
            path = prefix + name
            yield path, info, descriptor, name
            if stat.S_ISDIR(info.st_mode):
                child = open_directory(descriptor, name, info)
                stack.append((child, path + '/', iter(sorted(os.listdir(child)))))
    finally:
        for descriptor, _, _ in stack[1:]:
            os.close(descriptor)


def open_directory(parent, name, info):
    """
    Open a subdirectory that was looked at already.

    :param parent: The descriptor of the directory that holds it.
    :param name: Its name (a string).
    :param info: Its :func:`os.lstat()` result.
    :returns: A file descriptor.
    :raises: :exc:`ChangedDuringWalk` when it is no longer the same directory.
    """
    descriptor = os.open(name, DIRECTORY_FLAGS, dir_fd=parent)
    if not same_inode(os.fstat(descriptor), info):
        os.close(descriptor)
        raise ChangedDuringWalk(name)
    return descriptor


def same_inode(one, other):
    """:data:`True` when two stat results describe the same inode."""
    return (one.st_dev, one.st_ino) == (other.st_dev, other.st_ino)


def checksum_file(parent, name, info):
    """
    Compute the checksum of a file's content.

    :param parent: The descriptor of the directory that holds the file.
    :param name: Its name (a string).
    :param info: Its :func:`os.lstat()` result.
    :returns: The hexadecimal digest (a string).
    :raises: :exc:`ChangedDuringWalk` when it is no longer the same file.
    """
    try:
        descriptor = os.open(name, FILE_FLAGS | os.O_NOATIME, dir_fd=parent)
    except PermissionError:
        # Only the owner (or root) may ask for O_NOATIME.
        descriptor = os.open(name, FILE_FLAGS, dir_fd=parent)
    try:
        if not same_inode(os.fstat(descriptor), info):
            raise ChangedDuringWalk(name)
        digest = hashlib.new(CHECKSUM_ALGORITHM)
        while True:
            chunk = os.read(descriptor, CHUNK_SIZE)
            if not chunk:
                return digest.hexdigest()
            digest.update(chunk)
    finally:
        os.close(descriptor)


def describe(path, info, parent, name, checksum=''):
    """
    Describe one entry.

    :param path: Its path relative to the tree (a string).
    :param info: Its :func:`os.lstat()` result.
    :param parent: The descriptor of the directory that holds it (:data:`None` for the top).
    :param name: Its name there.
    :param checksum: The content checksum of a regular file (a string).
    :returns: An :class:`.Entry`.
    """
    kind = TYPE_CODES.get(stat.S_IFMT(info.st_mode), '?')
    target = ''
    if kind == 'l':
        target = os.readlink(name, dir_fd=parent)
    elif kind in 'cb':
        target = '%d,%d' % (os.major(info.st_rdev), os.minor(info.st_rdev))
    size = info.st_size if kind in 'fl' else 0
    return Entry(path, kind, size, stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid, info.st_mtime_ns,
                 target, checksum)


def scan_tree(root, checksums=True, progress=None):
    """
    Describe every entry of a tree.

    :param root: The tree's top directory (a string).
    :param checksums: :data:`True` to read every file and compute its checksum,
                      :data:`False` to leave the checksums empty.
    :param progress: A function called with the number of entries and bytes read so far (every
                     1,000 entries and at the end), or :data:`None`.
    :returns: A generator of :class:`.Entry` objects.
    """
    read = count = 0
    for count, (path, info, parent, name) in enumerate(walk(root), start=1):
        checksum = ''
        if checksums and stat.S_ISREG(info.st_mode):
            checksum = checksum_file(parent, name, info)
            read += info.st_size
        yield describe(path, info, parent, name, checksum)
        if progress and count % 1000 == 0:
            progress(count, read)
    if progress:
        progress(count, read)


def build_lines(root, previous=None):
    """
    Describe a new snapshot as manifest lines, reading only the files that are new or changed.

    :param root: The snapshot's top directory (a string).
    :param previous: The checksums of the previous manifest (from
                     :func:`.read_checksums()`), or :data:`None`.
    :returns: A generator of manifest lines (strings).

    A file whose path, size and modification time are those of the previous
    manifest keeps its checksum without being read (the assumption that
    rsync's own quick check makes); every other file is read.
    """
    previous = previous or {}
    for path, info, parent, name in walk(root):
        if stat.S_ISREG(info.st_mode):
            known = previous.get(escape(path))
            if known and known[0] == str(info.st_size) and known[1] == str(info.st_mtime_ns):
                checksum = known[2]
            else:
                checksum = checksum_file(parent, name, info)
            yield format_entry(describe(path, info, parent, name, checksum))
        else:
            yield format_entry(describe(path, info, parent, name))
