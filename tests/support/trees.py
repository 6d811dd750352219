"""Helpers for the tests: the outcome of a run of the command, and describing trees on disk."""

import os
import stat


class CommandResult(object):

    """The outcome of running the command: exit code and output."""

    def __init__(self, returncode, stdout, stderr):
        """Store the exit code and the decoded output streams."""
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    @property
    def output(self):
        """Standard output and standard error together (a string)."""
        return self.stdout + self.stderr

    def __repr__(self):
        """Show everything, so a failing assertion explains itself."""
        return 'CommandResult(returncode=%r, stdout=%r, stderr=%r)' % (self.returncode, self.stdout, self.stderr)


def assert_failed(result, *messages):
    """
    Check that a run failed with one ``Aborting due to error`` line containing every message.

    :param result: A :class:`CommandResult` (or one of its subclasses).
    :param messages: Strings that the error line must contain.
    """
    assert result.returncode == 1, result
    errors = [line for line in result.stderr.splitlines() if 'Aborting due to error: ' in line]
    assert len(errors) == 1, result
    for message in messages:
        assert message in errors[0], result
    assert 'Traceback' not in result.stderr, result


def describe_tree(root):
    """
    Describe every entry below a directory: type, mode, owner, size, content and links.

    :param root: The directory (a string or path).
    :returns: A dict from relative path (bytes) to a tuple of attributes.
              Files hard-linked to each other inside the tree name the
              first (sorted) path of their group; links that leave the tree
              (to snapshots, say) don't count.
    """
    root = os.fsencode(str(root))
    description = {}
    paths_by_inode = {}
    for directory, subdirectories, files in os.walk(root):
        for name in subdirectories + files:
            pathname = os.path.join(directory, name)
            relative = os.path.relpath(pathname, root)
            info = os.lstat(pathname)
            if stat.S_ISLNK(info.st_mode):
                content = os.readlink(pathname)
            elif stat.S_ISREG(info.st_mode):
                with open(pathname, 'rb') as handle:
                    content = handle.read()
            else:
                content = None
            if stat.S_ISREG(info.st_mode):
                paths_by_inode.setdefault(info.st_ino, []).append(relative)
            description[relative] = (
                stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid,
                content, int(info.st_mtime) if not stat.S_ISDIR(info.st_mode) else None,
            )
    for paths in paths_by_inode.values():
        group = min(paths) if len(paths) > 1 else None
        for path in paths:
            description[path] += (group,)
    return description


BOOKKEEPING_FILES = ('.rsync-system-backup', '.rsync-system-backup.lock')
"""The marker and lock files that the program keeps next to ``latest``."""


def list_names(directory):
    """
    List the names in a directory, sorted, without the program's marker and lock files.

    :param directory: The directory (a string or path).
    :returns: A list of strings.
    """
    return sorted(name for name in os.listdir(str(directory)) if name not in BOOKKEEPING_FILES)
