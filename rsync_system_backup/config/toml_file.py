"""
Reading the configuration file: its TOML content, and the line of each table and key for the messages.

:func:`read_config_file()` refuses a file that can't be read, that others
may change (its hooks run as the user who runs the jobs, root as a rule)
and a TOML syntax error (the parser's message names the line). TOML's
parser keeps no line numbers, so :func:`find_lines()` scans the text for
the tables' headers and the keys' lines itself; every problem found later
names the line of the key it is about (see :meth:`ConfigFile.where()`).
"""

import os
import stat

try:
    import tomllib
except ImportError:  # Python < 3.11: the same parser, as a backport.
    import tomli as tomllib

from rsync_system_backup.exceptions import ConfigError

MULTILINE_QUOTES = ('"""', "'''")
"""The delimiters of TOML's strings that may span lines."""


class ConfigFile(object):

    """The content of a configuration file, with the lines of its tables and keys."""

    def __init__(self, pathname, data, lines):
        """
        Record what was read.

        :param pathname: The file's pathname as given (a string, for the messages).
        :param data: The parsed TOML (a dict).
        :param lines: A dict from key paths (tuples of strings, such as
                      ``('jobs', 'home', 'source')``) to line numbers (see :func:`find_lines()`).
        """
        self.pathname = pathname
        self.data = data
        self.lines = lines

    def line_of(self, path):
        """
        Find the line of a table or key, or of the nearest table around it.

        :param path: A key path (a tuple of strings).
        :returns: A line number (an integer), or :data:`None` when nothing on the path was found.
        """
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None

    def where(self, path=()):
        """
        Name the place of a table or key for a message.

        :param path: A key path (a tuple of strings; empty for the whole file).
        :returns: ``FILE line N``, or ``FILE`` when the line isn't known (a string).
        """
        number = self.line_of(path)
        return self.pathname if number is None else '%s line %i' % (self.pathname, number)


def read_config_file(pathname):
    """
    Read and parse a configuration file.

    :param pathname: The file's pathname (a string).
    :returns: A :class:`ConfigFile`.
    :raises: :exc:`ConfigError` when the file can't be read, may be changed
             by other users, isn't UTF-8 or isn't valid TOML.
    """
    try:
        with open(pathname, 'rb') as handle:
            check_file_owner(pathname, os.fstat(handle.fileno()))
            content = handle.read()
    except OSError as e:
        raise ConfigError("Can't read the configuration file %s: %s." % (pathname, e.strerror))
    try:
        text = content.decode('utf-8')
    except UnicodeDecodeError as e:
        line = content[:e.start].count(b'\n') + 1
        raise ConfigError("%s line %i: the file is not UTF-8 text, which TOML requires: save it as UTF-8."
                          % (pathname, line))
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("%s: %s: fix the TOML syntax there (docs/configuration.rst shows examples)." % (pathname, e))
    return ConfigFile(pathname, data, find_lines(text))


def check_file_owner(pathname, status):
    """
    Refuse a configuration file that users other than its owner may change, or that another user owns.

    Its hooks run as the user who runs the jobs (root, as a rule): whoever
    can change the file can run commands as that user.

    :param pathname: The file's pathname (a string, for the messages).
    :param status: The file's :func:`os.stat_result`.
    :raises: :exc:`ConfigError` when the file is owned by someone other than
             root and this user, writable by others, or writable by a group
             other than root's.
    """
    mode = stat.S_IMODE(status.st_mode)
    if status.st_uid not in (0, os.geteuid()):
        raise ConfigError("The configuration file %s belongs to the user %i, who could run commands as this user "
                          "through its hooks: give it to root (chown root %s)." % (pathname, status.st_uid, pathname))
    if mode & stat.S_IWOTH or (mode & stat.S_IWGRP and status.st_gid != 0):
        raise ConfigError("The configuration file %s can be changed by other users (mode %04o), who could run "
                          "commands as this user through its hooks: chmod go-w %s." % (pathname, mode, pathname))


def find_lines(text):
    """
    Find the line of each table header and key of a TOML document.

    :param text: A valid TOML document (a string).
    :returns: A dict from key paths (tuples of strings) to line numbers:
              a header ``[jobs.home]`` gives ``('jobs', 'home')``, a key
              ``source = ...`` below it ``('jobs', 'home', 'source')``.
              Keys inside inline tables are left out (their table's line stands for them).
    """
    lines = {}
    table = ()
    state = ScanState()
    for number, line in enumerate(text.split('\n'), 1):
        if state.open_string or state.depth:
            state.scan(line, 0)
            continue
        statement = line.lstrip()
        start = len(line) - len(statement)
        if not statement or statement.startswith('#'):
            continue
        if statement.startswith('['):
            brackets = 2 if statement.startswith('[[') else 1
            end = find_outside_strings(line, ']', start + brackets)
            table = parse_key_path(line[start + brackets:end])
            lines.setdefault(table, number)
            continue
        equals = find_outside_strings(line, '=', start)
        path = table + parse_key_path(line[start:equals])
        # A dotted key (jobs.home.source = ...) also stands for the tables it names.
        for end in range(len(table) + 1, len(path) + 1):
            lines.setdefault(path[:end], number)
        state.scan(line, equals + 1)
    return lines


def parse_key_path(text):
    """
    Read a TOML key (bare, quoted or dotted) into its parts, with TOML's own parser.

    :param text: The key as written (a string, such as ``jobs."my home"``).
    :returns: A tuple of strings.
    """
    data = tomllib.loads('%s = 0' % text.strip())
    path = ()
    while isinstance(data, dict):
        key, data = next(iter(data.items()))
        path += (key,)
    return path


def find_outside_strings(line, character, start):
    """
    Find a character of a line that isn't inside a quoted string.

    :param line: The line (a string).
    :param character: The character to find (``=`` or ``]``).
    :param start: Where to start looking (an index).
    :returns: Its index (the line's length when it isn't there).
    """
    index = start
    while index < len(line):
        if line[index] == character:
            return index
        if line[index] in '"\'':
            index = skip_string(line, index)
        else:
            index += 1
    return len(line)


def skip_string(line, start):
    """
    Skip a one-line string of TOML.

    :param line: The line (a string).
    :param start: The index of the opening quote.
    :returns: The index after the closing quote.
    """
    quote = line[start]
    index = start + 1
    while index < len(line) and line[index] != quote:
        index += 2 if quote == '"' and line[index] == '\\' else 1
    return index + 1


class ScanState(object):

    """What the scan of a value has open at the end of a line: a string that spans lines, brackets."""

    def __init__(self):
        """Start outside strings and brackets."""
        self.open_string = None
        self.depth = 0

    def scan(self, line, start):
        """
        Follow a line (or the rest of one, after a key's ``=``) through strings, comments and brackets.

        :param line: The line (a string).
        :param start: Where the value's text starts (an index).
        """
        index = start
        while index < len(line):
            if self.open_string:
                index = self.close_string(line, index)
                continue
            character = line[index]
            if character == '#':
                return
            if line.startswith(MULTILINE_QUOTES, index):
                self.open_string = line[index:index + 3]
                index += 3
            elif character in '"\'':
                index = skip_string(line, index)
            else:
                self.depth += (character in '[{') - (character in ']}')
                index += 1

    def close_string(self, line, index):
        """
        Look for the end of a string that spans lines.

        :param line: The line (a string).
        :param index: Where to look from (an index inside the string).
        :returns: The index to go on from: after the closing quotes, or the line's end.
        """
        quote = self.open_string[0]
        while index < len(line):
            if quote == '"' and line[index] == '\\':
                index += 2
            elif line.startswith(self.open_string, index):
                # Up to two more quotes right before the closing ones belong to the string.
                while line.startswith(quote, index + 3):
                    index += 1
                self.open_string = None
                return index + 3
            else:
                index += 1
        return index
