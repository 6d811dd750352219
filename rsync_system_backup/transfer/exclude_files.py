"""
Reading an exclude file (``--exclude-from=FILE``) into exclude patterns, as rsync reads one.

The file has rsync's syntax for ``--exclude-from``: one pattern per line
(a line ends at a line feed or a carriage return), blank lines are skipped,
and so are lines that start with ``;`` or ``#``. Every other line is a
pattern as ``-x`` gives one, so ``+ PATTERN`` includes, as in rsync.

This program reads the file itself and hands rsync its patterns as
``--exclude=PATTERN``, in the place of the option among the ``-x`` options:
the file's name never reaches rsync, a file that can't be read is refused
before anything is written, and ``--show-excludes`` shows the patterns.
"""

import os
import stat

from rsync_system_backup.checks.values import CLEARING_PATTERN, CLEARING_PATTERN_PROBLEM
from rsync_system_backup.exceptions import InvalidOptionError

COMMENT_MARKERS = (b';', b'#')
"""The first characters of the lines that rsync skips as comments."""


def read_exclude_file(pathname):
    """
    Read the patterns of an exclude file.

    :param pathname: The file's pathname (a string).
    :returns: The patterns, in the file's order (a list of strings; bytes
              that aren't UTF-8 are kept as :func:`os.fsdecode()` keeps them).
    :raises: :exc:`.InvalidOptionError` when the file can't be read, isn't a
             regular file (a pipe or a device could block the run, or never end),
             or holds a line of blanks only or a NUL byte (which rsync would
             take for a pattern, or can't be given to it).
    """
    try:
        descriptor = os.open(pathname, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise InvalidOptionError("Can't read the exclude file %s (--exclude-from): %s." % (pathname, e.strerror))
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise InvalidOptionError("The exclude file %s (--exclude-from) is not a regular file: give a file that "
                                 "holds the patterns, one per line." % pathname)
    with os.fdopen(descriptor, 'rb') as handle:
        try:
            content = handle.read()
        except OSError as e:
            raise InvalidOptionError("Can't read the exclude file %s (--exclude-from): %s." % (pathname, e.strerror))
    return parse_exclude_lines(pathname, content)


def parse_exclude_lines(pathname, content):
    """
    Split the content of an exclude file into its patterns.

    :param pathname: The file's pathname (a string, for the messages).
    :param content: The file's content (bytes).
    :returns: The patterns (a list of strings).
    :raises: :exc:`.InvalidOptionError` for a line of blanks only, a NUL byte or ``!`` (see :data:`.CLEARING_PATTERN`).
    """
    patterns = []
    for number, line in enumerate(content.replace(b'\r\n', b'\n').replace(b'\r', b'\n').split(b'\n'), 1):
        if not line or line[:1] in COMMENT_MARKERS:
            continue
        if b'\0' in line:
            raise InvalidOptionError("Line %i of the exclude file %s (--exclude-from) holds a NUL byte, which can't "
                                     "be given to rsync: remove it." % (number, pathname))
        if not line.strip():
            raise InvalidOptionError("Line %i of the exclude file %s (--exclude-from) holds only blanks, which rsync "
                                     "would take for a pattern: empty the line, or write ? for each blank."
                                     % (number, pathname))
        if line == CLEARING_PATTERN.encode():
            raise InvalidOptionError("Line %i of the exclude file %s (--exclude-from): %s."
                                     % (number, pathname, CLEARING_PATTERN_PROBLEM))
        patterns.append(os.fsdecode(line))
    return patterns
