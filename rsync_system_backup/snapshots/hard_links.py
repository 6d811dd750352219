"""
Hard links between ``latest`` and the snapshots.

:func:`count_shared_files()` finds out whether files in ``latest`` have links
outside it (to snapshots made with hard links), which the methods that write
into ``latest`` in place must not have.

:func:`relieve_link_limit()` keeps files under the filesystem's limit on hard
links. The hard-link snapshot methods give every file in ``latest`` one more
link per snapshot (and the link-dest method one more, for a while, per
transfer). A file that is hard-linked many times in the source, such as the
objects of a flatpak or OSTree store, reaches the filesystem's limit (65,000
on ext4) after enough snapshots, and then ``cp --link`` fails and ``rsync
--link-dest`` leaves files out. So before linking, each file in ``latest``
whose link count could pass the limit during this run gets a fresh copy: a
new inode with the same content and attributes, which its paths in ``latest``
share as they shared the old one. The older snapshots keep the old inode,
unchanged. This is said once per run, in a warning.
"""

import logging
import posixpath

from rsync_system_backup.target.private_directory import private_directory

LINKS_PER_RUN = 2
"""How many links one run can add for each path of a file in ``latest`` (a transfer and a snapshot)."""

BATCH_SIZE = 1000
"""How many paths one copying command gets at most (command lines have a limit)."""

COPY_SCRIPT = '''
temporary=$1/copy
shift
first=
for path do
    if [ -z "$path" ]; then first=; continue; fi
    if [ -z "$first" ]; then
        cp --archive --reflink=auto -- "$path" "$temporary" || exit
        first=$path
    else
        ln -- "$first" "$temporary" || exit
    fi
    mv -f -T -- "$temporary" "$path" || exit
done
'''
"""
Shell code that replaces groups of hard-linked paths (its arguments after the
first; an empty argument ends a group) with a fresh copy of the first one,
which the others then link to. Each path is replaced by a rename, so it never
disappears. The copies and links are made in a private directory (the first
argument, see :mod:`.private_directory`), never under a name of their own
inside ``latest``, where the backed-up user could have planted a symbolic
link; a rename replaces a symbolic link at the path itself, without following it.
"""

logger = logging.getLogger(__name__)


def count_shared_files(context, directory, sudo=False, ionice=None):
    """
    Count the files in a directory that have hard links outside it.

    :param context: The execution context of the directory.
    :param directory: The directory (``latest``, a string).
    :param sudo: :data:`True` to look with superuser privileges.
    :param ionice: The I/O scheduling class for the search (a string or :data:`None`).
    :returns: The number of such files (inodes).

    Files hard-linked to each other inside the directory (as in the source)
    don't count.
    """
    output = context.capture('find', directory, '-type', 'f', '-links', '+1', '-printf', r'%i %n\0',
                             sudo=sudo, ionice=ionice, shell=False, tty=False)
    paths = {}
    links = {}
    for entry in output.split('\0'):
        if entry:
            inode, count = entry.split(' ')
            paths[inode] = paths.get(inode, 0) + 1
            links[inode] = int(count)
    return sum(1 for inode in paths if paths[inode] < links[inode])


def find_crowded_files(context, directory, limit, sudo=False, ionice=None):
    """
    Find the files in a directory whose link count could pass a limit during this run.

    :param context: The execution context of the directory.
    :param directory: The directory (``latest``, a string).
    :param limit: The most links a file can have (a number).
    :param sudo: :data:`True` to look with superuser privileges.
    :param ionice: The I/O scheduling class for the search (a string or :data:`None`).
    :returns: A list of lists of paths (relative to `directory`), one list
              per file, holding the file's paths inside `directory`.

    A file with ``k`` paths in `directory` may get ``LINKS_PER_RUN * k`` more
    links; as ``k`` can't exceed the link count, only files with more than a
    third of the limit need a closer look, which keeps the search's output
    small.
    """
    output = context.capture('find', directory, '-type', 'f', '-links', '+%i' % (limit // (LINKS_PER_RUN + 1)),
                             '-printf', r'%i %n %P\0', sudo=sudo, ionice=ionice, shell=False, tty=False)
    files = {}
    for entry in output.split('\0'):
        if entry:
            inode, links, path = entry.split(' ', 2)
            files.setdefault(inode, (int(links), []))[1].append(path)
    return [sorted(paths) for links, paths in files.values() if links + LINKS_PER_RUN * len(paths) > limit]


def relieve_link_limit(context, directory, limit, sudo=False, ionice=None):
    """
    Give the files in a directory that are close to the link limit fresh copies (see the module documentation).

    :param context: The execution context of the directory.
    :param directory: The directory (``latest``, a string).
    :param limit: The most links a file can have (a number).
    :param sudo: :data:`True` to work with superuser privileges.
    :param ionice: The I/O scheduling class for the search and the copies.
    """
    crowded = find_crowded_files(context, directory, limit, sudo=sudo, ionice=ionice)
    if not crowded:
        return
    logger.warning("%i file(s) in %s have too many hard links to be linked again (the filesystem allows %i): "
                   "copying them instead, starting with %s.", len(crowded), directory, limit, crowded[0][0])
    parent_directory = posixpath.dirname(directory.rstrip('/')) or '.'
    with private_directory(context, parent_directory, sudo=sudo, ionice=ionice) as scratch:
        arguments = []
        for paths in crowded:
            arguments.extend(posixpath.join(directory, path) for path in paths)
            arguments.append('')
            if len(arguments) >= BATCH_SIZE:
                copy_groups(context, scratch, arguments, sudo=sudo, ionice=ionice)
                arguments = []
        copy_groups(context, scratch, arguments, sudo=sudo, ionice=ionice)


def copy_groups(context, scratch, arguments, sudo=False, ionice=None):
    """
    Run :data:`COPY_SCRIPT`.

    :param context: The execution context of the files.
    :param scratch: A private directory beside ``latest`` for the copies (a string).
    :param arguments: Groups of paths, each followed by an empty string (a list of strings).
    :param sudo: :data:`True` to copy with superuser privileges.
    :param ionice: The I/O scheduling class for the copies.
    """
    if arguments:
        context.execute('sh', '-c', COPY_SCRIPT, 'copy', scratch, *arguments, sudo=sudo, ionice=ionice,
                        shell=False, tty=False)
