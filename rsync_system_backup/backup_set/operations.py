"""
Small filesystem operations on the destination, local or remote.

Each function takes an :mod:`executor` execution context. Local contexts
that need no privilege escalation get plain Python calls (no helper process);
every other context gets a command, with ``sudo`` where asked for.
"""

import errno
import os
import tempfile

from executor.contexts import LocalContext

MAKE_DIRECTORY_SCRIPT = 'umask 077 && mkdir -p -- "$1"'
"""Shell code that creates a directory and its missing parents, each with mode 0700 (the directory may exist)."""

LIST_SCRIPT = '[ -d "$1" ] || exit 0; exec find "$1" -mindepth 1 -maxdepth 1 -printf "%f\\0"'
"""Shell code that prints the names in a directory, each followed by a NUL byte (nothing when it doesn't exist)."""

READ_SCRIPT = '[ ! -L "$1" ] || { echo "$1 is a symbolic link" >&2; exit 1; }; exec cat -- "$1"'
"""Shell code that prints a file, refusing a symbolic link (like ``O_NOFOLLOW``)."""

TAKE_SCRIPT = '[ -f "$1" ] && [ ! -L "$1" ] || exit 0; cat -- "$1" && exec rm -f -- "$1"'
"""Shell code that prints a regular file and removes it (nothing when it is missing or a symbolic link)."""

FLUSH_AND_RENAME_SCRIPT = 'sync -f -- "$1" && exec mv --no-target-directory -- "$1" "$2"'
"""Shell code that flushes the filesystem of its first argument (see :func:`flush_filesystem()`), then renames it."""

WRITE_SCRIPT = '''
temporary=$(mktemp -- "$2.XXXXXXXX") || exit
printf %s "$1" > "$temporary" && mv -f -T -- "$temporary" "$2" || { rm -f -- "$temporary"; exit 1; }
'''
"""
Shell code that replaces a file by a new one, written under an unpredictable
name beside it (``mktemp`` creates it with ``O_EXCL``) and renamed into place,
so a symbolic link planted under the file's name is replaced, never followed.
"""


def runs_in_process(context, sudo):
    """
    Check whether an operation can be done with Python calls instead of a command.

    :param context: An execution context.
    :param sudo: :data:`True` when the operation needs superuser privileges.
    :returns: :data:`True` for a local context that already has the
              privileges the operation needs.
    """
    return isinstance(context, LocalContext) and (not sudo or os.geteuid() == 0)


def list_directory(context, directory, sudo=False):
    """
    List the names in a directory.

    :param context: An execution context.
    :param directory: The directory's pathname (a string).
    :param sudo: :data:`True` to list it with superuser privileges.
    :returns: A list of names (strings), empty when the directory doesn't exist.
    """
    if runs_in_process(context, sudo):
        try:
            return os.listdir(directory)
        except FileNotFoundError:
            return []
    # One command, so that listing a directory on another system costs one round trip.
    output = context.capture('sh', '-c', LIST_SCRIPT, 'list', directory, sudo=sudo, shell=False, tty=False)
    return [name for name in output.split('\0') if name]


def make_directory(context, directory, sudo=False):
    """
    Create a directory and its missing parents (it may exist already), closed to other users.

    Every directory it creates has mode 0700: a backup holds every user's
    files, and a user who could enter the backup set could read the others'
    files there, or change their own files' copies, which the snapshots share.

    :param context: An execution context.
    :param directory: The directory's pathname (a string).
    :param sudo: :data:`True` to create it with superuser privileges.
    """
    if runs_in_process(context, sudo):
        make_private_directories(directory)
    else:
        context.execute('sh', '-c', MAKE_DIRECTORY_SCRIPT, 'mkdir', directory, sudo=sudo, shell=False, tty=False)


def make_private_directories(directory):
    """
    Create a directory and its missing parents with mode 0700, in this process.

    :param directory: The directory's pathname (a string); it may exist already.

    (:func:`os.makedirs()` gives only the last directory the mode it is given.)
    """
    parent = os.path.dirname(directory.rstrip('/'))
    if parent and not os.path.isdir(parent):
        make_private_directories(parent)
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        if not os.path.isdir(directory):
            raise


def read_file(context, pathname, sudo=False):
    """
    Read a small text file, never through a symbolic link.

    :param context: An execution context.
    :param pathname: The file's pathname (a string).
    :param sudo: :data:`True` to read it with superuser privileges.
    :returns: The file's content (a string).
    :raises: :exc:`~exceptions.OSError` (locally) or executor's
             :exc:`~executor.ExternalCommandFailed` when the file can't be
             read or is a symbolic link.
    """
    if runs_in_process(context, sudo):
        with os.fdopen(os.open(pathname, os.O_RDONLY | os.O_NOFOLLOW)) as handle:
            return handle.read()
    return context.capture('sh', '-c', READ_SCRIPT, 'read', pathname, sudo=sudo, shell=False, tty=False)


def take_file(context, pathname, sudo=False):
    """
    Read a small text file and remove it, never through a symbolic link.

    :param context: An execution context.
    :param pathname: The file's pathname (a string).
    :param sudo: :data:`True` to read and remove it with superuser privileges.
    :returns: The file's content (a string; empty when there is no such
              file, or a symbolic link has its name).
    :raises: :exc:`~exceptions.OSError` (locally) or executor's
             :exc:`~executor.ExternalCommandFailed` when it can't be read or removed.
    """
    if runs_in_process(context, sudo):
        try:
            with os.fdopen(os.open(pathname, os.O_RDONLY | os.O_NOFOLLOW | os.O_NOCTTY)) as handle:
                text = handle.read()
        except (FileNotFoundError, NotADirectoryError):
            return ''
        except OSError as e:
            if e.errno != errno.ELOOP:
                raise
            return ''
        os.unlink(pathname)
        return text
    return context.capture('sh', '-c', TAKE_SCRIPT, 'take', pathname, sudo=sudo, shell=False, tty=False)


def write_file(context, pathname, text, sudo=False):
    """
    Create or replace a small text file, atomically and never through a symbolic link.

    The text goes to a new file with an unpredictable name in the same
    directory, which is then renamed over `pathname` (see :data:`WRITE_SCRIPT`).

    :param context: An execution context.
    :param pathname: The file's pathname (a string).
    :param text: The file's content (a string).
    :param sudo: :data:`True` to write it with superuser privileges.
    """
    if runs_in_process(context, sudo):
        directory, name = os.path.split(pathname)
        try:
            handle, temporary = tempfile.mkstemp(prefix=name + '.', dir=directory or '.')
        except OSError as e:
            # Name the file being written, not the temporary one, in the message.
            raise OSError(e.errno, e.strerror, pathname) from e
        try:
            with os.fdopen(handle, 'w') as stream:
                stream.write(text)
            os.rename(temporary, pathname)
        except BaseException as e:
            os.unlink(temporary)
            if isinstance(e, OSError):
                raise OSError(e.errno, e.strerror, pathname) from e
            raise
    else:
        context.execute('sh', '-c', WRITE_SCRIPT, 'write', text, pathname, sudo=sudo, shell=False, tty=False)


def flush_filesystem(context, pathname, sudo=False):
    """
    Write everything that is cached for a filesystem to its disk (:manpage:`syncfs(2)`, with ``sync -f``).

    Called before the rename that makes a tree final, so that a power cut
    can't leave a complete-looking tree whose files never reached the disk.

    :param context: An execution context.
    :param pathname: A file or directory on the filesystem (a string).
    :param sudo: :data:`True` to flush it with superuser privileges.
    """
    context.execute('sync', '-f', '--', pathname, sudo=sudo, shell=False, tty=False)


def rename_directory(context, old, new, sudo=False, flush=False):
    """
    Rename a directory atomically (within one filesystem).

    :param context: An execution context.
    :param old: The current pathname (a string).
    :param new: The new pathname (a string), which must not exist.
    :param sudo: :data:`True` to rename it with superuser privileges.
    :param flush: :data:`True` to flush the filesystem first (see
                  :func:`flush_filesystem()`), for a rename that makes a
                  tree final; on another system the flush and the rename
                  are one command (one round trip).
    """
    if runs_in_process(context, sudo):
        if flush:
            flush_filesystem(context, old, sudo=sudo)
        os.rename(old, new)
    elif flush:
        context.execute('sh', '-c', FLUSH_AND_RENAME_SCRIPT, 'rename', old, new, sudo=sudo, shell=False, tty=False)
    else:
        context.execute('mv', '--no-target-directory', '--', old, new, sudo=sudo, shell=False, tty=False)


def remove_trees(context, pathnames, sudo=False, ionice=None, doomed_suffix=None):
    """
    Remove directory trees, all of them with one ``rm`` process.

    ``rm -rf`` is faster than :func:`shutil.rmtree()` on large trees, so even
    local removals run it.

    :param context: An execution context.
    :param pathnames: The pathnames to remove (a list of strings).
    :param sudo: :data:`True` to remove them with superuser privileges.
    :param ionice: The I/O scheduling class for the removal (a string or :data:`None`).
    :param doomed_suffix: When given, each tree is first renamed to its name
                          plus this suffix, and only then removed: an
                          interrupted removal then never leaves a partial
                          tree under its old name.
    """
    if not pathnames:
        return
    if doomed_suffix:
        pathnames = add_suffix(context, pathnames, doomed_suffix, sudo=sudo)
    context.execute('rm', '-rf', '--', *pathnames, sudo=sudo, ionice=ionice, shell=False, tty=False)


def add_suffix(context, pathnames, suffix, sudo=False):
    """
    Rename entries by adding a suffix to their names.

    :param context: An execution context.
    :param pathnames: The pathnames to rename (a list of strings).
    :param suffix: The suffix (a string).
    :param sudo: :data:`True` to rename them with superuser privileges.
    :returns: The new pathnames (a list of strings, in the same order).
    """
    renamed = [pathname + suffix for pathname in pathnames]
    if runs_in_process(context, sudo):
        for old, new in zip(pathnames, renamed):
            os.rename(old, new)
    elif pathnames:
        # One process renames them all; the names travel as arguments, never through the shell's parser.
        context.execute('sh', '-c', 'suffix=$1; shift; for p do mv -T -- "$p" "$p$suffix" || exit; done',
                        'rename', suffix, *pathnames, sudo=sudo, shell=False, tty=False)
    return renamed
