"""
Walking a tree by directory file descriptors, never following a symbolic link.

The names inside ``latest`` and the snapshots belong to whoever owns the
backed-up files, and any of them can be a symbolic link. So the programs of
this package never give the kernel a pathname with more than one
component below a directory they opened: :class:`Tree` opens one directory
at a time (``O_NOFOLLOW``), and every other call works on a name relative to
an open directory. A name with an empty, ``.`` or ``..`` component is never
looked up.
"""

import errno
import os
import stat

DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
"""How a directory is opened: read-only, never through a symbolic link."""

MOST_OPEN = 200
"""How many directories a :class:`Tree` keeps open at most (it closes them all and starts again)."""

CHUNK_SIZE = 1 << 20
"""How many bytes :func:`copy_data()` reads at once."""


class Tree(object):

    """The directories below a top directory, opened one component at a time."""

    def __init__(self, top):
        """
        Open a tree.

        :param top: The top directory's pathname (bytes or a string).
        :raises: :exc:`OSError` when it can't be opened (or is a symbolic link).
        """
        self.top = os.open(top, DIRECTORY_FLAGS)
        self.opened = {b'': self.top}

    def close(self):
        """Close every directory, the top too."""
        self.forget(b'')
        os.close(self.top)

    def forget(self, path):
        """
        Close what was opened below a path (which was removed or replaced), and the path itself.

        :param path: A name relative to the top (bytes); the empty name forgets everything but the top.
        """
        below = path + b'/'
        for known in [name for name in self.opened if name and (not path or name == path or name.startswith(below))]:
            number = self.opened.pop(known)
            if number is not None:
                os.close(number)

    def directory(self, path):
        """
        Open a directory of the tree.

        :param path: Its name relative to the top (bytes, clean; empty for the top).
        :returns: An open file descriptor, or :data:`None` when the path
                  isn't a directory (or is a symbolic link, or can't be opened).
        """
        if path not in self.opened:
            if len(self.opened) > MOST_OPEN:
                self.forget(b'')
            parent, _, name = path.rpartition(b'/')
            above = self.directory(parent)
            try:
                self.opened[path] = None if above is None else os.open(name, DIRECTORY_FLAGS, dir_fd=above)
            except OSError:
                self.opened[path] = None
        return self.opened[path]

    def locate(self, path):
        """
        Find the directory that holds an entry.

        :param path: The entry's name relative to the top (bytes).
        :returns: A tuple of the open directory and the entry's last
                  component, or :data:`None` when the name isn't clean or a
                  directory above it isn't a real directory.
        """
        if not is_clean(path):
            return None
        parent, _, name = path.rpartition(b'/')
        above = self.directory(parent)
        return None if above is None else (above, name)

    def lstat(self, path):
        """
        Look at an entry without following it.

        :param path: The entry's name relative to the top (bytes).
        :returns: An :class:`os.stat_result`, or :data:`None` when there's no such entry.
        :raises: :exc:`OSError` when it can't be looked at (permission denied, say).
        """
        place = self.locate(path)
        if place is None:
            return None
        try:
            return os.lstat(place[1], dir_fd=place[0])
        except FileNotFoundError:
            return None

    def make_directories(self, path):
        """
        Create the directories of a path that don't exist yet, closed to others (mode 0700).

        :param path: A directory's name relative to the top (bytes, clean; empty for the top).
        :returns: The open directory, or :data:`None` when something else is in the way.
        """
        if not path:
            return self.top
        parent, _, name = path.rpartition(b'/')
        above = self.make_directories(parent)
        if above is None:
            return None
        if self.directory(path) is None:
            self.forget(path)
            try:
                os.mkdir(name, 0o700, dir_fd=above)
            except FileExistsError:
                return None
        return self.directory(path)


def is_clean(path):
    """
    Check that a name can only mean one path below the top.

    :param path: A name (bytes).
    :returns: :data:`True` when it is relative and has no empty, ``.`` or ``..`` component.
    """
    return bool(path) and not any(part in (b'', b'.', b'..') for part in path.split(b'/'))


def list_names(directory):
    """
    List the names in an open directory.

    :param directory: The open directory.
    :returns: The names (bytes; :func:`os.listdir()` gives strings for a descriptor).
    """
    return [os.fsencode(name) for name in os.listdir(directory)]


def remove_entry(directory, name, info=None):
    """
    Remove an entry, and a directory with everything in it, without following symbolic links.

    :param directory: The open directory that holds it.
    :param name: Its name there (bytes).
    :param info: Its :func:`os.lstat()` result, when known.
    """
    if info is None:
        info = os.lstat(name, dir_fd=directory)
    if stat.S_ISDIR(info.st_mode):
        below = os.open(name, DIRECTORY_FLAGS, dir_fd=directory)
        try:
            for entry in list_names(below):
                remove_entry(below, entry)
        finally:
            os.close(below)
        os.rmdir(name, dir_fd=directory)
    else:
        os.unlink(name, dir_fd=directory)


def copy_data(source, target, size):
    """
    Copy a regular file's content, keeping its holes.

    :param source: The open original.
    :param target: The open copy (empty).
    :param size: How many bytes to copy.
    """
    offset = 0
    while offset < size:
        try:
            start = os.lseek(source, offset, os.SEEK_DATA)
            end = os.lseek(source, start, os.SEEK_HOLE)
        except OSError as error:
            if error.errno == errno.ENXIO:
                break
            start, end = offset, size
        while start < end:
            chunk = os.pread(source, min(end - start, CHUNK_SIZE), start)
            if not chunk:
                break
            os.pwrite(target, chunk, start)
            start += len(chunk)
        offset = max(end, offset + 1)
    os.ftruncate(target, size)


def copy_entry(directory, name, info, target_directory, target_name):
    """
    Copy an entry that isn't a directory, with its content, owner, mode, xattrs, ACLs and times.

    :param directory: The open directory that holds the original.
    :param name: The original's name there (bytes).
    :param info: The original's :func:`os.lstat()` result.
    :param target_directory: The open directory for the copy.
    :param target_name: The copy's name there (bytes; it must not exist).
    :raises: :exc:`OSError` when the original can't be read or changed
             since `info`, or the copy can't be made.
    """
    if stat.S_ISREG(info.st_mode):
        source = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK,
                         dir_fd=directory)
        try:
            if os.fstat(source).st_ino != info.st_ino:
                raise OSError(errno.ESTALE, "changed while it was copied")
            target = os.open(target_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                             0o600, dir_fd=target_directory)
            try:
                copy_data(source, target, info.st_size)
                set_owner(os.fchown, target, info)
                copy_xattrs(source, target)
                os.fchmod(target, stat.S_IMODE(info.st_mode))
                os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))
            finally:
                os.close(target)
        finally:
            os.close(source)
        return
    if stat.S_ISLNK(info.st_mode):
        os.symlink(os.readlink(name, dir_fd=directory), target_name, dir_fd=target_directory)
    else:
        os.mknod(target_name, info.st_mode, info.st_rdev, dir_fd=target_directory)
    set_owner(os.chown, target_name, info, dir_fd=target_directory, follow_symlinks=False)
    if not stat.S_ISLNK(info.st_mode):
        os.chmod(target_name, stat.S_IMODE(info.st_mode), dir_fd=target_directory)
    os.utime(target_name, ns=(info.st_atime_ns, info.st_mtime_ns), dir_fd=target_directory, follow_symlinks=False)


def set_owner(function, target, info, **options):
    """
    Give a copy the owner and group of its original, where this process may.

    :param function: :func:`os.fchown` or :func:`os.chown`.
    :param target: What `function` takes.
    :param info: The original's :func:`os.lstat()` result.
    :param options: More keyword arguments for `function`.

    A user without root can't give a file away, and keeps it as their own.
    """
    try:
        function(target, info.st_uid, info.st_gid, **options)
    except PermissionError:
        pass


def copy_xattrs(source, target):
    """
    Give an open file the xattrs (ACLs among them) of another, and no others.

    :param source: The open original.
    :param target: The open copy.
    """
    wanted = os.listxattr(source)
    for name in os.listxattr(target):
        if name not in wanted:
            try:
                os.removexattr(target, name)
            except OSError:
                pass
    for name in wanted:
        try:
            os.setxattr(target, name, os.getxattr(source, name))
        except OSError:
            pass


def copy_directory_attributes(original, made):
    """
    Give a directory the owner, xattrs (ACLs among them), mode and times of another.

    :param original: The open original directory.
    :param made: The open directory to change.
    """
    info = os.fstat(original)
    try:
        os.fchown(made, info.st_uid, info.st_gid)
    except PermissionError:
        pass
    copy_xattrs(original, made)
    os.fchmod(made, stat.S_IMODE(info.st_mode))
    os.utime(made, ns=(info.st_atime_ns, info.st_mtime_ns))


def walk(directory, path=b''):
    """
    Go through a tree below an open directory, parents before what they hold, never following a symbolic link.

    :param directory: The open directory.
    :param path: Its name relative to the top (bytes; empty for the top).
    :returns: A generator of tuples of the open directory that holds an
              entry, the entry's name there, its name relative to the top
              and its :func:`os.lstat()` result. A directory's own
              descriptor is open only while the generator is inside it.
    """
    for name in sorted(list_names(directory)):
        info = os.lstat(name, dir_fd=directory)
        relative = path + b'/' + name if path else name
        yield directory, name, relative, info
        if stat.S_ISDIR(info.st_mode):
            below = os.open(name, DIRECTORY_FLAGS, dir_fd=directory)
            try:
                for entry in walk(below, relative):
                    yield entry
            finally:
                os.close(below)
