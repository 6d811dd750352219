"""
Who can enter the backup set.

A backup holds every user's files with their owners and modes. A local user
of the backup system who can enter the directory that holds ``latest`` and
the snapshots (the backup root) can read the copies of the files their uid
owns, in ``latest`` and, through the inodes that hard-linked snapshots share,
in older snapshots; a file they can write there changes those snapshots. So
the directories this program creates are closed to other users (mode 0700,
see :func:`.operations.make_directory()`), and :func:`prepare_backup_root()`
says how to close a backup root that existed already and lets others in
(rsnapshot asks the same of its snapshot root, for the same reason): once,
and again when its mode changes, so that a run from cron doesn't mail the
same warning every hour; a dry run says it every time
(:func:`report_open_backup_root()`).
"""

import logging
import os
import posixpath
import re
import stat

from executor import ExternalCommandFailed

from rsync_system_backup.backup_set.operations import (
    MAKE_DIRECTORY_SCRIPT,
    make_private_directories,
    read_file,
    remove_trees,
    runs_in_process,
    write_file,
)

RECORD_NAME = '.rsync-system-backup.access'
"""
The file in the backup root that remembers the mode of the last warning
about it. Its name starts like the marker's, so the checks of a set count it
as the set's own (:func:`.is_set_entry()`) and a set inside its own source
leaves it out of the transfer (:func:`.exclude_backup_from_source()`).
"""

RECORD_TEXT = ("rsync-system-backup warned that this directory lets other users in, with the mode below.\n"
               "It warns again when the mode changes, or when this file is gone.\n")
"""What the record says to a person who finds it (the mode follows, see :data:`RECORD_LINE`)."""

RECORD_LINE = re.compile(r'^Mode: ([0-7]+)$', re.MULTILINE)
"""The record's line that holds the mode (``Mode: 0755``)."""

CREATE_SCRIPT = (MAKE_DIRECTORY_SCRIPT + ' && stat --format=%a -- "$1"'
                 ' && { [ ! -e "$2" ] && [ ! -L "$2" ] || echo recorded; }')
"""
Shell code that creates a directory as :data:`.MAKE_DIRECTORY_SCRIPT` does,
prints its permission bits (in octal) and then ``recorded`` when the record
`$2` exists, so that all three cost one command.
"""

MODE_SCRIPT = '[ ! -d "$1" ] || exec stat --format=%a -- "$1"'
"""Shell code that prints a directory's permission bits (in octal), or nothing when it doesn't exist."""

OPEN_BITS = stat.S_IRWXG | stat.S_IRWXO
"""The permission bits that let users other than the owner in (group and other)."""

WRITE_BITS = stat.S_IWGRP | stat.S_IWOTH
"""The permission bits that let users other than the owner change the directory (its record too)."""

logger = logging.getLogger(__name__)


def create_directory(context, directory, sudo=False):
    """
    Create a directory and its missing parents, closed to other users (see :func:`.make_directory()`).

    :param context: The execution context of the directory.
    :param directory: The directory's pathname (a string; it may exist).
    :param sudo: :data:`True` to work with superuser privileges.
    :returns: A tuple of the directory's permission bits (an integer, for
              example ``0o700``) and :data:`True` when it holds a
              :data:`RECORD_NAME`.
    """
    record = posixpath.join(directory, RECORD_NAME)
    if runs_in_process(context, sudo):
        make_private_directories(directory)
        return stat.S_IMODE(os.stat(directory).st_mode), os.path.lexists(record)
    output = context.capture('sh', '-c', CREATE_SCRIPT, 'mkdir', directory, record, sudo=sudo, shell=False,
                             tty=False).split()
    return int(output[0], 8), output[1:] == ['recorded']


def find_mode(context, directory, sudo=False):
    """
    Find a directory's permission bits without creating it.

    :param context: The execution context of the directory.
    :param directory: The directory's pathname (a string).
    :param sudo: :data:`True` to work with superuser privileges.
    :returns: The permission bits (an integer), or :data:`None` when the directory doesn't exist.
    """
    if runs_in_process(context, sudo):
        try:
            return stat.S_IMODE(os.stat(directory).st_mode)
        except FileNotFoundError:
            return None
    output = context.capture('sh', '-c', MODE_SCRIPT, 'mode', directory, sudo=sudo, shell=False, tty=False)
    return int(output, 8) if output.strip() else None


def read_recorded_mode(context, record, sudo=False):
    """
    Read the mode that the last warning about a backup root named.

    :param context: The execution context of the record.
    :param record: The record's pathname (a string).
    :param sudo: :data:`True` to read it with superuser privileges.
    :returns: The mode (an integer), or :data:`None` when the record can't
              be read or names none (the warning then comes again).
    """
    try:
        match = RECORD_LINE.search(read_file(context, record, sudo=sudo))
    except (OSError, ExternalCommandFailed):
        return None
    return int(match.group(1), 8) if match else None


def describe_open_root(directory, mode, hostname=None):
    """
    Say why an open backup root is a problem, and how to close it.

    :param directory: The backup root (a string).
    :param mode: Its permission bits (an integer).
    :param hostname: The system that holds it (a string), or :data:`None` for this one.
    :returns: The message (a string).
    """
    return ("The backup directory %s lets other users in (mode %04o): a user could read the backed-up files they "
            "own there, and change the copies that earlier snapshots share. Run 'chmod 700 %s'%s to close it."
            % (directory, mode, directory, " on %s" % hostname if hostname else ""))


def prepare_backup_root(context, directory, sudo=False, hostname=None):
    """
    Create the backup root when it is missing, and warn once (saying how to close it) when it lets other users in.

    The warning comes on the first run that finds the directory open, and
    again when its mode changes: the mode it named is kept in
    :data:`RECORD_NAME` (written only when the warning is given, removed
    when the directory is closed). Later runs with the same mode say it at
    the info level, so that cron doesn't mail it every hour. A record in a
    directory that others can write can't be trusted: there every run warns,
    and writes no record (another user could have planted a file under its
    name, which would make the write fail).

    On another system (or with sudo) creating, finding the mode and looking
    for the record are one command (see :data:`CREATE_SCRIPT`); reading and
    writing the record take one more, only when the directory is open.

    :param context: The execution context of the directory.
    :param directory: The directory that holds ``latest`` and the snapshots (a string).
    :param sudo: :data:`True` to work with superuser privileges.
    :param hostname: The system that holds it (a string), or :data:`None` for this one.
    :returns: :data:`True` when the directory lets other users in.
    """
    mode, recorded = create_directory(context, directory, sudo=sudo)
    record = posixpath.join(directory, RECORD_NAME)
    if not mode & OPEN_BITS:
        if recorded:
            # Closed now: opening it again is a change of mode, and warns.
            remove_trees(context, [record], sudo=sudo)
        return False
    if recorded and not mode & WRITE_BITS and read_recorded_mode(context, record, sudo=sudo) == mode:
        logger.info("The backup directory %s still lets other users in (mode %04o; the warning about it came "
                    "before and comes again when the mode changes).", directory, mode)
        return True
    if mode & WRITE_BITS:
        # Others could plant or remove the record: it is neither trusted nor written there.
        logger.warning("%s While others can write it, this warning comes on every run.",
                       describe_open_root(directory, mode, hostname))
        return True
    logger.warning("%s This warning comes again only when the mode changes.",
                   describe_open_root(directory, mode, hostname))
    write_file(context, record, RECORD_TEXT + 'Mode: %04o\n' % mode, sudo=sudo)
    return True


def report_open_backup_root(context, directory, sudo=False, hostname=None):
    """
    Warn when the backup root lets other users in, in a dry run (which creates and records nothing).

    A dry run is run by hand to see what a backup would do, so it warns
    whenever the directory is open, whether or not a run warned before.

    :param context: The execution context of the directory.
    :param directory: The directory that holds ``latest`` and the snapshots (a string).
    :param sudo: :data:`True` to work with superuser privileges.
    :param hostname: The system that holds it (a string), or :data:`None` for this one.
    :returns: :data:`True` when the directory lets other users in.
    """
    mode = find_mode(context, directory, sudo=sudo)
    if mode is None or not mode & OPEN_BITS:
        return False
    logger.warning("%s", describe_open_root(directory, mode, hostname))
    return True
