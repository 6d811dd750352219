"""
Private directories for temporary files, beside ``latest``.

The names inside ``latest`` and the snapshots belong to whoever owns the
backed-up files: a user can plant a symbolic link under any name there, and a
command that writes to a fixed name would follow it (as root). So nothing this
program writes goes under a name of its own inside ``latest``: temporary files
are made in a directory that :func:`private_directory()` creates beside
``latest``. That directory has a random name (``mktemp -d``, which never
follows a symbolic link), belongs to the user who runs the commands (root)
and is closed to everyone else (mode 0700). It is on the same filesystem as
``latest``, so a file made there can be renamed into ``latest`` atomically.

A run holds the lock on the backup set while it has a private directory, so
one that a run left behind (killed by SIGKILL or a power cut) is removed by
the next run (:func:`remove_stale_private_directories()`).
"""

import contextlib
import logging
import posixpath
import tempfile

from rsync_system_backup.backup_set.operations import remove_trees, runs_in_process

PRIVATE_PREFIX = '.rsync-system-backup.tmp.'
"""The start of every private directory's name (a random part follows)."""

logger = logging.getLogger(__name__)


def create_private_directory(context, parent_directory, sudo=False):
    """
    Create a directory with a random name that only its owner can enter.

    :param context: The execution context of `parent_directory`.
    :param parent_directory: Where to create it (the directory that holds ``latest``, a string).
    :param sudo: :data:`True` to create it with superuser privileges (so that root owns it).
    :returns: The new directory's pathname (a string).
    """
    if runs_in_process(context, sudo):
        return tempfile.mkdtemp(prefix=PRIVATE_PREFIX, dir=parent_directory)
    template = posixpath.join(parent_directory, PRIVATE_PREFIX + 'XXXXXXXXXX')
    return context.capture('mktemp', '-d', '--', template, sudo=sudo, shell=False, tty=False).strip()


@contextlib.contextmanager
def private_directory(context, parent_directory, sudo=False, ionice=None):
    """
    Have a private directory (see :func:`create_private_directory()`) for the duration of a ``with`` block.

    :param context: The execution context of `parent_directory`.
    :param parent_directory: Where to create it (the directory that holds ``latest``, a string).
    :param sudo: :data:`True` to create and remove it with superuser privileges.
    :param ionice: The I/O scheduling class for its removal.
    :returns: A context manager that gives the directory's pathname (a
              string); the directory and everything in it are removed when
              the block ends, however it ends.
    """
    directory = create_private_directory(context, parent_directory, sudo=sudo)
    try:
        yield directory
    finally:
        remove_trees(context, [directory], sudo=sudo, ionice=ionice)


def remove_stale_private_directories(context, parent_directory, names, sudo=False, ionice=None):
    """
    Remove the private directories that an interrupted run left behind.

    Call it under the lock on the backup set (no other run has one then).

    :param context: The execution context of `parent_directory`.
    :param parent_directory: The directory that holds ``latest`` (a string).
    :param names: The names in that directory (strings).
    :param sudo: :data:`True` to remove them with superuser privileges.
    :param ionice: The I/O scheduling class for the removal.
    """
    stale = [posixpath.join(parent_directory, name) for name in sorted(names) if name.startswith(PRIVATE_PREFIX)]
    for pathname in stale:
        logger.warning("Removing %s, left behind by an interrupted run.", pathname)
    remove_trees(context, stale, sudo=sudo, ionice=ionice)
