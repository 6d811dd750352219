"""
Whether a source can be snapshotted, and the directory that holds its snapshots: a program on the source's side.

``source_directory SOURCE NAME create|look`` answers with one line of JSON
on its standard output: ``{"directory": PATHNAME}`` when SOURCE is the top
of a btrfs subvolume that this program can snapshot safely, otherwise
``{"fallback": REASON}`` (see :func:`examine()`). With ``create`` it makes
the directory NAME at the top of SOURCE (mode 0700), so that only root can
enter it, or takes the one that is there when root owns it; ``look`` (a dry
run) creates nothing.

The checks keep another user from steering a snapshot, or anything root
writes there, to a place of her choosing: every directory on the way to
SOURCE, and SOURCE itself, must be root's, and none but a sticky one
writable by others, so no one else can rename or replace a name on that
path (or the directory NAME, once it is there); the directory NAME
is looked at without following a symbolic link, and must be root's own
directory on the same subvolume. Anything else there is left alone and the
run transfers from the live source.
"""

import ctypes
import json
import os
import stat

BTRFS_SUPER_MAGIC = 0x9123683E
"""The ``f_type`` of a btrfs filesystem in :manpage:`statfs(2)`."""

SUBVOLUME_INODE = 256
"""The inode number of the top directory of every btrfs subvolume."""

STATFS_BUFFER_SIZE = 256
"""Room for ``struct statfs``, whose first member, ``f_type``, is a C long."""


def filesystem_magic(descriptor):
    """
    Read the type of the filesystem that holds an open file.

    :param descriptor: A file descriptor (an integer).
    :returns: The ``f_type`` of :manpage:`fstatfs(2)` (an integer).
    :raises: :exc:`OSError` when the call fails.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    buffer = ctypes.create_string_buffer(STATFS_BUFFER_SIZE)
    if libc.fstatfs(descriptor, buffer) != 0:
        number = ctypes.get_errno()
        raise OSError(number, os.strerror(number))
    return ctypes.c_long.from_buffer(buffer).value & 0xFFFFFFFF


def find_open_directory(pathname):
    """
    Find a directory on the way to a path that someone other than root could change.

    :param pathname: An absolute real path (a string).
    :returns: The first such directory (a string), or :data:`None` when there is none.
    """
    current = '/'
    for name in [name for name in pathname.split('/') if name] + [None]:
        info = os.lstat(current)
        # In a sticky directory no one renames or removes the names of root's but root.
        if info.st_uid != 0 or (info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not info.st_mode & stat.S_ISVTX):
            return current
        if name is not None:
            current = os.path.join(current, name)
    return None


def examine(source, name, create):
    """
    Check that a source can be snapshotted, and prepare the directory of its snapshots.

    :param source: The source directory (a string).
    :param name: The directory's name at the top of the source (a string).
    :param create: :data:`True` to create the directory when it isn't there.
    :returns: A dict: ``directory`` (its real path), or ``fallback`` (why the source can't be snapshotted).
    """
    real = os.path.realpath(source)
    descriptor = os.open(real, os.O_RDONLY | os.O_DIRECTORY)
    try:
        info = os.fstat(descriptor)
        if filesystem_magic(descriptor) != BTRFS_SUPER_MAGIC:
            return dict(fallback="%s is not on a btrfs filesystem" % source)
        if info.st_ino != SUBVOLUME_INODE:
            return dict(fallback="%s is a directory inside a btrfs subvolume, not the top of one" % source)
        if os.fstatvfs(descriptor).f_flag & os.ST_RDONLY:
            return dict(fallback="%s is mounted read-only" % source)
        open_directory = find_open_directory(real)
        if open_directory is not None:
            return dict(fallback="%s can be changed by users other than root, who could steer the snapshot "
                                 "elsewhere" % open_directory)
        pathname = os.path.join(real, name)
        if create:
            try:
                os.mkdir(name, 0o700, dir_fd=descriptor)
            except FileExistsError:
                pass
        return check_directory(descriptor, name, pathname, info.st_dev)
    finally:
        os.close(descriptor)


def check_directory(parent, name, pathname, device):
    """
    Check the directory of the snapshots (without following a symbolic link) and close it to other users.

    :param parent: The source's file descriptor (an integer).
    :param name: The directory's name (a string).
    :param pathname: Its real path (a string).
    :param device: The source's device number (the directory must be on the same subvolume).
    :returns: See :func:`examine()`.
    """
    try:
        info = os.lstat(name, dir_fd=parent)
    except FileNotFoundError:
        return dict(directory=pathname)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_dev != device:
        return dict(fallback="%s is not a directory of root's on the source's subvolume: remove it, and the next "
                             "run creates it" % pathname)
    if stat.S_IMODE(info.st_mode) != 0o700:
        descriptor = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
        try:
            os.fchmod(descriptor, 0o700)
        finally:
            os.close(descriptor)
    return dict(directory=pathname)


def main(arguments, stdin, stdout, stderr, shield):
    """
    Answer as a program: ``source_directory SOURCE NAME create|look``.

    :param arguments: The command line's arguments (strings).
    :param stdin: Unused.
    :param stdout: For the answer (a binary stream).
    :param stderr: For a message (a text stream).
    :param shield: Unused: a directory that a signal leaves behind is used by the next run.
    :returns: The exit code: 0, or 1 when the source can't be looked at (with a message).
    """
    source, name, mode = arguments
    try:
        answer = examine(source, name, create=mode == 'create')
    except OSError as error:
        stderr.write("Failed to look at %s: %s\n" % (source, error))
        return 1
    stdout.write(json.dumps(answer).encode() + b'\n')
    return 0
