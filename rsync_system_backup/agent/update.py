"""
Bringing the early snapshot copy up to date with ``latest`` after the apply, on the destination's side.

:class:`.EarlyCopy` copies ``latest`` while rsync plans the transfer; after the
apply, :func:`update()` makes the copy what ``cp --archive --link`` of
``latest`` would make now, for every name that the transfer touched. It
goes through the names parents first and makes each entry of the copy what
it is in ``latest``: gone when it is gone (a directory with everything in
it), a new directory where ``latest`` has one, and otherwise a hard link to
``latest``'s inode, made in a private directory beside the copy and renamed
over the old entry. Then every directory it touched, and the top, gets the
owner, xattrs (ACLs among them), mode and times of its original, the
deepest first.

Both trees are opened one directory at a time without following symbolic
links (see :mod:`.agent.tree`); a name with an empty, ``.`` or ``..``
component, or below something that isn't a directory in the copy, is left
alone.
"""

import contextlib
import os
import shutil
import stat
import tempfile

from rsync_system_backup.agent.tree import DIRECTORY_FLAGS, Tree, copy_directory_attributes, remove_entry


def update(latest, copy, private, names):
    """
    Make the copy equal ``latest`` for some names.

    :param latest: The :class:`.Tree` of ``latest``.
    :param copy: The :class:`.Tree` of the copy.
    :param private: The open private directory beside the copy, for new links.
    :param names: The names that the transfer touched (bytes, relative to ``latest``).
    """
    directories = {b''}
    for path in sorted(set(names), key=lambda path: (path.count(b'/'), path)):
        place = copy.locate(path)
        if place is None:
            continue
        above, name = place
        info = copy.lstat(path)
        directories.add(path.rpartition(b'/')[0])
        wanted = latest.lstat(path)
        if info is not None and wanted is not None and not stat.S_ISDIR(wanted.st_mode) \
                and (info.st_dev, info.st_ino) == (wanted.st_dev, wanted.st_ino):
            continue
        # An entry that is gone, or whose kind (directory or not) changed, is removed; another one is renamed over.
        if info is not None and (wanted is None or stat.S_ISDIR(info.st_mode) != stat.S_ISDIR(wanted.st_mode)):
            copy.forget(path)
            remove_entry(above, name, info)
            info = None
        if wanted is None:
            continue
        if stat.S_ISDIR(wanted.st_mode):
            if info is None:
                os.mkdir(name, 0o700, dir_fd=above)
            directories.add(path)
        else:
            original = latest.locate(path)[0]
            os.link(name, b'link', src_dir_fd=original, dst_dir_fd=private, follow_symlinks=False)
            os.rename(b'link', name, src_dir_fd=private, dst_dir_fd=above)
    for path in sorted(directories, key=lambda path: path.count(b'/'), reverse=True):
        original, made = latest.directory(path), copy.directory(path)
        if original is not None and made is not None:
            copy_directory_attributes(original, made)


def update_copy(latest_path, copy_path, prefix, names):
    """
    Open both trees and a private directory beside the copy, and :func:`update()` the copy.

    :param latest_path: The pathname of ``latest`` (bytes).
    :param copy_path: The copy's pathname (bytes).
    :param prefix: The start of the private directory's name (bytes).
    :param names: See :func:`update()`.
    :raises: :exc:`OSError` when something can't be changed.
    """
    with contextlib.ExitStack() as stack:
        private_path = tempfile.mkdtemp(prefix=prefix, dir=os.path.dirname(copy_path.rstrip(b'/')) or b'.')
        stack.callback(shutil.rmtree, private_path, ignore_errors=True)
        private = os.open(private_path, DIRECTORY_FLAGS)
        stack.callback(os.close, private)
        latest = Tree(latest_path)
        stack.callback(latest.close)
        copy = Tree(copy_path)
        stack.callback(copy.close)
        update(latest, copy, private, names)


def main(arguments, stdin, stdout, stderr, shield):
    """
    Run as a program: ``update LATEST COPY PREFIX``, with the names that the transfer touched on standard input.

    :param arguments: The command line's arguments (strings).
    :param stdin: The names, each relative to ``latest`` and ended by a NUL byte (a binary stream).
    :param stdout: Unused (the program answers with its exit code).
    :param stderr: For a message (a text stream).
    :param shield: Unused: a copy that is stopped halfway is removed (see :meth:`.EarlyCopy.discard()`).
    :returns: The exit code: 0, or 1 after a failure (with a message on standard error).
    """
    latest, copy, prefix = (os.fsencode(argument) for argument in arguments)
    try:
        update_copy(latest, copy, prefix, [name for name in stdin.read().split(b'\0') if name])
    except (OSError, RecursionError) as error:
        stderr.write("Failed to bring %s up to date: %s\n" % (arguments[1], error))
        return 1
    return 0
