"""
Hard links between ``latest`` and the snapshots.

:func:`count_shared_files()` finds out whether files in ``latest`` have links
outside it (to snapshots made with hard links), which the methods that write
into ``latest`` in place must not have.

:func:`relieve_link_limit()` and :func:`copy_at_link_limit()` keep hard-link
snapshots possible at the filesystem's limit on links (see
:mod:`.agent.link_limit`, which does the work on the destination's side: in
this process, or as one command there, see :func:`.run_program()`). This is said once per run, in a
warning that names a file.
"""

import logging
import os

from rsync_system_backup.agent.shipping import run_program
from rsync_system_backup.exceptions import SnapshotFailedError
from rsync_system_backup.backup_set.private_directory import PRIVATE_PREFIX

PROGRAM_MODULES = ('rsync_system_backup.agent.tree', 'rsync_system_backup.agent.link_limit')
"""The modules of the link-limit program on the destination, the program last."""

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


def run_link_limit(context, verb, arguments, sudo=False, ionice=None):
    """
    Run one verb of :mod:`.agent.link_limit` on the destination.

    :param context: The destination's execution context.
    :param verb: ``relieve`` or ``copy``.
    :param arguments: Its pathnames (strings) and the limit (a number).
    :param sudo: :data:`True` to work with superuser privileges.
    :param ionice: The I/O scheduling class for the work.
    :returns: The names of the files it copied (a list of bytes).
    :raises: :exc:`.SnapshotFailedError` when it fails.
    """
    values = [str(argument) for argument in arguments]
    finished = run_program(context, "A snapshot at the link limit", PROGRAM_MODULES, [verb] + values, sudo=sudo,
                           ionice=ionice)
    if finished.returncode != 0:
        raise SnapshotFailedError("Failed to deal with the files near the link limit in %s (%s); the earlier "
                                  "snapshots are intact." % (values[0], finished.problem))
    return [name for name in finished.stdout.split(b'\0') if name]


def relieve_link_limit(context, directory, limit, sudo=False, ionice=None):
    """
    Give the files in ``latest`` that could pass the link limit during this run fresh copies.

    :param context: The execution context of the directory.
    :param directory: ``latest`` (a string).
    :param limit: The most links a file can have (a number).
    :param sudo: :data:`True` to work with superuser privileges.
    :param ionice: The I/O scheduling class for the search and the copies.
    """
    names = run_link_limit(context, 'relieve', [directory, limit, PRIVATE_PREFIX], sudo=sudo, ionice=ionice)
    if names:
        logger.warning("%i file(s) in %s have too many hard links to be linked again (the filesystem allows %i): "
                       "copying them instead, starting with %r.", len(names), directory, limit,
                       os.fsdecode(names[0]))


def copy_at_link_limit(context, directory, target, limit, sudo=False, ionice=None):
    """
    Make a snapshot with hard links, and copies of the files that can't get one more link.

    :param context: The execution context of the directory.
    :param directory: ``latest`` (a string).
    :param target: The snapshot's pathname (a string; it must not exist).
    :param limit: The most links a file can have (a number).
    :param sudo: :data:`True` to work with superuser privileges.
    :param ionice: The I/O scheduling class for the copy.
    """
    names = run_link_limit(context, 'copy', [directory, target, limit], sudo=sudo, ionice=ionice)
    if names:
        logger.warning("%i file(s) in %s have too many names to be linked into the snapshot (the filesystem "
                       "allows %i links): copied into it instead, starting with %r.", len(names), directory,
                       limit, os.fsdecode(names[0]))
