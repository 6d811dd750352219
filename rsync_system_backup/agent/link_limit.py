"""
Keeping hard-link snapshots possible at the filesystem's link limit, on the destination's side.

The hard-link snapshot methods give every file in ``latest`` one more link
per snapshot (the link-dest method one more, for a while, per transfer). A
file that is hard-linked many times in the source, such as the objects of a
flatpak or OSTree store, reaches the filesystem's limit on links (65,000 on
ext4) after enough snapshots. Two programs deal with it:

:func:`relieve()`
    gives every file in ``latest`` whose link count could pass the limit
    during this run a fresh copy: a new inode with the same content and
    attributes, which its names in ``latest`` share as they shared the old
    one (the older snapshots keep the old inode, unchanged). The directories
    that hold them get their times back. A file with so many names in
    ``latest`` that even a fresh copy couldn't be linked once more for each
    of them is left alone: :func:`link_or_copy()` copies it into the snapshot.
:func:`link_or_copy()`
    makes a snapshot of ``latest`` with hard links where the limit allows,
    and with one copy of a file (which all its names in the snapshot share)
    where it doesn't.

Both walk the trees by directory file descriptors and never follow a
symbolic link (see :mod:`.agent.tree`); names are bytes. Both answer with
the names of the files they copied, NUL-terminated, on standard output.
"""

import os
import shutil
import stat
import tempfile

from rsync_system_backup.agent.tree import (
    DIRECTORY_FLAGS,
    Tree,
    copy_directory_attributes,
    copy_entry,
    walk,
)

LINKS_PER_RUN = 2
"""How many links one run can add for each name of a file in ``latest`` (a transfer and a snapshot)."""


def find_groups(latest, least_links):
    """
    Find the files in ``latest`` with many links, and their names there.

    :param latest: The open top directory of ``latest``.
    :param least_links: Files with more links than this are found.
    :returns: A dict of (device, inode) -> (:func:`os.lstat()` result, list of names).
    """
    groups = {}
    for directory, name, path, info in walk(latest):
        if not stat.S_ISDIR(info.st_mode) and info.st_nlink > least_links:
            groups.setdefault((info.st_dev, info.st_ino), (info, []))[1].append(path)
    return groups


def relieve(latest_path, limit, prefix):
    """
    Give the files in ``latest`` that could pass the link limit during this run fresh copies.

    :param latest_path: The pathname of ``latest`` (bytes).
    :param limit: The most links a file can have.
    :param prefix: The start of the private directory's name beside ``latest`` (bytes).
    :returns: The first name of each file that got a copy (a list of bytes).
    """
    tree = Tree(latest_path)
    try:
        groups = find_groups(tree.top, limit // (LINKS_PER_RUN + 1))
        crowded = [(info, sorted(paths)) for info, paths in groups.values()
                   if info.st_nlink + LINKS_PER_RUN * len(paths) > limit
                   and len(paths) * (LINKS_PER_RUN + 1) <= limit]
        if not crowded:
            return []
        private_path = tempfile.mkdtemp(prefix=prefix, dir=os.path.dirname(latest_path.rstrip(b'/')) or b'.')
        try:
            private = os.open(private_path, DIRECTORY_FLAGS)
            try:
                for info, paths in crowded:
                    replace_with_copy(tree, info, paths, private)
            finally:
                os.close(private)
        finally:
            shutil.rmtree(private_path, ignore_errors=True)
        return [paths[0] for info, paths in crowded]
    finally:
        tree.close()


def replace_with_copy(tree, info, paths, private):
    """
    Replace every name of a file in ``latest`` with a link to one fresh copy, keeping the directories' times.

    :param tree: The :class:`.Tree` of ``latest``.
    :param info: The file's :func:`os.lstat()` result.
    :param paths: Its names in ``latest`` (bytes).
    :param private: The open private directory for the copy.
    """
    parents = {}
    for path in paths:
        parent = path.rpartition(b'/')[0]
        if parent not in parents:
            parents[parent] = os.fstat(tree.directory(parent))
    directory, name = tree.locate(paths[0])
    copy_entry(directory, name, info, private, b'copy')
    for path in paths:
        directory, name = tree.locate(path)
        os.link(b'copy', b'link', src_dir_fd=private, dst_dir_fd=private, follow_symlinks=False)
        os.rename(b'link', name, src_dir_fd=private, dst_dir_fd=directory)
    os.unlink(b'copy', dir_fd=private)
    for parent, before in parents.items():
        os.utime(tree.directory(parent), ns=(before.st_atime_ns, before.st_mtime_ns))


def link_or_copy(latest_path, target_path, limit):
    """
    Make a snapshot of ``latest``: hard links where the link limit allows, one copy per file where it doesn't.

    :param latest_path: The pathname of ``latest`` (bytes).
    :param target_path: The snapshot's pathname (bytes; it must not exist).
    :param limit: The most links a file can have.
    :returns: The first name of each file that was copied (a list of bytes).

    A file is copied when its links and its names in ``latest`` together
    pass the limit (decided before anything is linked, so that a hard-link
    group stays one group in the snapshot); a file with at most half the
    limit of links can't pass it. Directories get their attributes when everything in them is done.
    """
    latest = Tree(latest_path)
    try:
        groups = find_groups(latest.top, limit // 2)
        copied = {key: None for key, (info, paths) in groups.items() if info.st_nlink + len(paths) > limit}
        os.mkdir(target_path, 0o700)
        target = Tree(target_path)
        try:
            directories = [b'']
            for directory, name, path, info in walk(latest.top):
                above = target.directory(path.rpartition(b'/')[0])
                if stat.S_ISDIR(info.st_mode):
                    os.mkdir(name, 0o700, dir_fd=above)
                    directories.append(path)
                    continue
                key = (info.st_dev, info.st_ino)
                if key in copied and copied[key] is None:
                    copy_entry(directory, name, info, above, name)
                    copied[key] = path
                elif key in copied:
                    source_directory, source_name = target.locate(copied[key])
                    os.link(source_name, name, src_dir_fd=source_directory, dst_dir_fd=above, follow_symlinks=False)
                else:
                    os.link(name, name, src_dir_fd=directory, dst_dir_fd=above, follow_symlinks=False)
            for path in reversed(directories):
                copy_directory_attributes(latest.directory(path), target.directory(path))
        finally:
            target.close()
        return sorted(path for path in copied.values() if path is not None)
    finally:
        latest.close()


def main(arguments, stdin, stdout, stderr, shield):
    """
    Run as a program: ``link_limit relieve LATEST LIMIT PREFIX`` or ``link_limit copy LATEST TARGET LIMIT``.

    :param arguments: The command line's arguments (strings).
    :param stdin: Unused (the program reads no input).
    :param stdout: For the names of the copied files (a binary stream).
    :param stderr: For a message (a text stream).
    :param shield: Unused: a signal may stop either verb anywhere.
    :returns: The exit code: 0, or 1 after a failure (with a message on standard error).
    """
    verb, values = arguments[0], [os.fsencode(argument) for argument in arguments[1:]]
    try:
        if verb == 'relieve':
            names = relieve(values[0], int(values[1]), values[2])
        else:
            names = link_or_copy(values[0], values[1], int(values[2]))
    except OSError as error:
        stderr.write("Failed to %s: %s\n" % ('copy the files near the link limit' if verb == 'relieve' else
                                             'make the snapshot', error))
        return 1
    stdout.write(b''.join(name + b'\0' for name in names))
    return 0
