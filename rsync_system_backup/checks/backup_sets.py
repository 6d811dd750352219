"""
Refusing a destination that is a backup set itself, one of its snapshots, or lies inside a set's data.

DESTINATION is the directory that rsync mirrors the source into (``latest``);
the backup set is the directory that holds it, the snapshots and the marker
file (see :mod:`.backup_set.marker`). Forgetting the ``/latest``
(``rsync-system-backup / /mnt/backups``) makes the set itself the
destination, and rsync's ``--delete`` would remove its ``latest``, its
snapshots and its marker. When the set lies in another set's directory
(``/x/laptop`` beside ``/x/latest``), the outer set's marker used to let that
happen without a question. :func:`check_not_backup_set()` refuses, before
anything is written, a destination that:

- holds a set's marker (it is a set itself; rsync never runs into such a directory);
- is a snapshot of the set that holds it (or a snapshot being copied or
  removed, or the set's own files such as its manifests);
- lies inside the ``latest`` or a snapshot of a set further up;
- holds a ``latest`` directory or snapshots, while the directory that holds
  it is no backup set (a set whose marker was removed, or that no backup
  made: an rsync daemon's set before its first snapshot).

The first and the last look inside the destination, which is a copy of the
source once a backup was made: they are left out when the source is a
backup set's directory itself (its marker comes along, see
:func:`holds_marker()`), and in an rsync daemon's ``post-xfer exec`` run,
where the daemon has filled the destination already.

Each message names the ``latest`` that was probably meant. Symbolic links
are followed: the checks look at the directory that rsync would write to.
"""

import os
import posixpath

from rsync_system_backup.exceptions import DestinationIsBackupSetError
from rsync_system_backup.snapshots.naming import is_leftover_name, is_snapshot_name
from rsync_system_backup.backup_set.marker import MARKER_FILE_NAME
from rsync_system_backup.backup_set.operations import list_directory, runs_in_process

LATEST_NAME = 'latest'
"""The name of the directory that rsync mirrors into, as the documentation names it (and the suggestions)."""

MARKED_DIRECTORIES_SCRIPT = r'''
directory=$(realpath -m -- "$1" && echo .) || exit
directory=${directory%??}
printf '%s\0' "$directory"
while :; do
    [ ! -f "$directory/$2" ] || printf '%s\0' "$directory"
    [ "$directory" != / ] || exit 0
    directory=${directory%/*}
    directory=${directory:-/}
done
'''
"""
Shell code that prints, each followed by a NUL byte, its first argument with
symbolic links resolved and then every directory from there up to ``/``
that holds a file named by its second argument (the marker). The ``.``
after ``realpath``'s output keeps the command substitution from eating a
name's trailing newlines; the parents are found by cutting the resolved path
(absolute, without ``.``, ``..`` or repeated slashes), not by ``dirname``.
"""


def find_marked_directories(context, directory, sudo=False):
    """
    Resolve a destination directory and find the directories at or above it that hold a backup set's marker.

    :param context: The execution context of the directory.
    :param directory: The destination directory (a string).
    :param sudo: :data:`True` to look with superuser privileges.
    :returns: A tuple of the resolved pathname (a string) and the marked
              directories among it and its ancestors (a list of strings,
              the deepest first).
    """
    if not runs_in_process(context, sudo):
        output = context.capture('sh', '-c', MARKED_DIRECTORIES_SCRIPT, 'markers', directory, MARKER_FILE_NAME,
                                 sudo=sudo, shell=False, tty=False)
        names = [name for name in output.split('\0') if name]
        return names[0], names[1:]
    resolved = os.path.realpath(directory)
    marked = []
    current = resolved
    while True:
        if os.path.isfile(os.path.join(current, MARKER_FILE_NAME)):
            marked.append(current)
        if current == '/':
            return resolved, marked
        current = os.path.dirname(current)


def is_set_entry(name):
    """
    Check whether a name in a backup set's directory is one of the set's own entries other than ``latest``.

    :param name: A name (a string).
    :returns: :data:`True` for a snapshot (complete, or being copied or
              removed) and for the set's bookkeeping (the marker, the lock,
              the manifests' directory).
    """
    return is_snapshot_name(name) or is_leftover_name(name) or name.startswith(MARKER_FILE_NAME)


def describe_entry(name):
    """
    Name an entry of a backup set for a message.

    :param name: The entry's name (a string).
    :returns: ``the snapshot NAME`` or ``the NAME`` (a string).
    """
    return "the snapshot %s" % name if is_snapshot_name(name) or is_leftover_name(name) else "the %s" % name


def holds_backup_set(names):
    """
    Check whether a directory's names are those of a backup set's directory.

    :param names: The names in the directory (strings).
    :returns: :data:`True` when they include the marker or a snapshot
              (complete, or left behind by an interrupted run).
    """
    return any(name == MARKER_FILE_NAME or is_snapshot_name(name) or is_leftover_name(name) for name in names)


def describe_backup_set(names):
    """
    Say what in a directory makes it a backup set, for a message.

    :param names: The names in the directory (strings).
    :returns: For example ``a latest directory and 3 snapshots`` (a string).
    """
    parts = []
    if LATEST_NAME in names:
        parts.append("a %s directory" % LATEST_NAME)
    count = sum(1 for name in names if is_snapshot_name(name) or is_leftover_name(name))
    if count:
        parts.append("%i snapshot%s" % (count, '' if count == 1 else 's'))
    return " and ".join(parts)


def holds_marker(directory):
    """
    Check whether a directory of this system holds a backup set's marker (a source that is a set's directory does).

    :param directory: The directory's pathname (a string).
    :returns: :data:`True` when it holds the marker file.
    """
    return os.path.isfile(os.path.join(directory, MARKER_FILE_NAME))


def check_not_backup_set(context, directory, sudo=False, look_inside=True):
    """
    Refuse a destination that is a backup set, one of its snapshots, or lies inside a set's data.

    :param context: The execution context of the directory.
    :param directory: The destination directory (``latest``, a string).
    :param sudo: :data:`True` to look with superuser privileges.
    :param look_inside: :data:`False` when what the destination holds is a
                        copy of the source's (see the module's documentation):
                        its own marker, ``latest`` and snapshots don't count then.
    :raises: :exc:`.DestinationIsBackupSetError`, naming the ``latest`` that
             was probably meant (see the module's documentation for the cases).
    """
    resolved, marked = find_marked_directories(context, directory, sudo=sudo)
    if not look_inside:
        marked = [backup_set for backup_set in marked if backup_set != resolved]
    parent = posixpath.dirname(resolved)
    if resolved in marked:
        raise DestinationIsBackupSetError(
            "The destination %s is a backup set itself (it holds %s), so the backup would replace its latest and "
            "snapshots with a copy of the source: did you mean %s?"
            % (directory, MARKER_FILE_NAME, posixpath.join(directory, LATEST_NAME))
        )
    for backup_set in marked:
        child = resolved[len(backup_set):].lstrip('/').split('/')[0]
        if backup_set == parent and is_set_entry(child):
            raise DestinationIsBackupSetError(
                "The destination %s is %s of the backup set %s, which the backup would overwrite: did you mean %s?"
                % (directory, describe_entry(child), backup_set, posixpath.join(backup_set, LATEST_NAME))
            )
        if backup_set != parent and (child == LATEST_NAME or is_set_entry(child)):
            raise DestinationIsBackupSetError(
                "The destination %s lies inside %s of the backup set %s, which the backup would change: "
                "did you mean %s?" % (directory, describe_entry(child), backup_set,
                                      posixpath.join(backup_set, LATEST_NAME))
            )
    if not look_inside or parent in marked or holds_backup_set(list_directory(context, parent, sudo=sudo)):
        return
    try:
        names = list_directory(context, resolved, sudo=sudo)
    except NotADirectoryError:
        return
    if LATEST_NAME in names or holds_backup_set(names):
        raise DestinationIsBackupSetError(
            "The destination %s holds a backup set (%s), which the backup would replace with a copy of the source: "
            "did you mean %s?" % (directory, describe_backup_set(names), posixpath.join(directory, LATEST_NAME))
        )
