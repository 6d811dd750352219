"""
Matching simple exclude rules as rsync does, in this process.

A plan from the source's snapshots (see :mod:`.transfer.send_plan`) must
leave out what the transfer's filter options leave out. rsync's own dry run
over the planned names decides that for any rule; this module decides it
without a process for the rules that a run has by default and most ``-x``
patterns: exclude rules whose pattern is

- anchored (``/home/*/.cache/``): it matches a path of as many components,
  from the transfer's top, component by component; or
- a single component (``*.skip``, ``cache/``): it matches the last
  component of any path;

with rsync's wildcards ``*`` and ``?`` inside a component (see
:func:`.component_matches()`), and a trailing slash that restricts it to
directories. Names are matched byte by byte, as rsync matches them (``?``
is one byte of a name). :func:`parse_exclude_rules()` gives :data:`None`
for anything else (``**``, ``[...]``, a slash inside an unanchored pattern,
the old ``+ ``/``- `` prefixes of ``--exclude``, other rules, characters
beyond ASCII), and rsync decides then.
"""

from rsync_system_backup.sources.rerooting import WILDCARDS, component_matches

FILTER_PREFIX = '--filter=- '
"""How :func:`.send_filter_options()` gives an anchored exclude rule."""

EXCLUDE_PREFIX = '--exclude='
"""How :func:`.send_filter_options()` gives a pattern of ``-x``."""


class ExcludeRule(object):

    """One exclude pattern, ready to be matched against paths."""

    def __init__(self, parts, anchored, directories_only, wild):
        """
        Remember a pattern.

        :param parts: Its components (strings).
        :param anchored: :data:`True` when it matches from the transfer's top.
        :param directories_only: :data:`True` when it had a trailing slash.
        :param wild: :data:`True` when it holds a wildcard (then backslashes escape).
        """
        self.parts = parts
        self.anchored = anchored
        self.directories_only = directories_only
        self.wild = wild

    def matches(self, parts):
        """
        Match a path's components (not looking at the entry's kind).

        :param parts: The components of a path relative to the transfer's top (strings).
        :returns: :data:`True` when the pattern matches.
        """
        if not self.anchored:
            return component_matches(self.parts[0], parts[-1], self.wild)
        return len(parts) == len(self.parts) and all(component_matches(part, name, self.wild)
                                                     for part, name in zip(self.parts, parts))


def parse_exclude_rules(filter_options):
    """
    Read filter options into rules that this module can match.

    :param filter_options: rsync options, as :func:`.send_filter_options()` gives them (strings).
    :returns: A list of :class:`ExcludeRule` objects, or :data:`None` when
              an option isn't one (rsync must apply the options then).
    """
    rules = []
    for option in filter_options:
        if option.startswith(FILTER_PREFIX):
            pattern = option[len(FILTER_PREFIX):]
        elif option.startswith(EXCLUDE_PREFIX):
            pattern = option[len(EXCLUDE_PREFIX):]
            if pattern.startswith(('+ ', '- ')):
                return None
        else:
            return None
        rule = parse_pattern(pattern)
        if rule is None:
            return None
        rules.append(rule)
    return rules


def parse_pattern(pattern):
    """
    Read one exclude pattern.

    :param pattern: The pattern (a string).
    :returns: An :class:`ExcludeRule`, or :data:`None` when this module can't match it as rsync would.
    """
    if not pattern.isascii() or pattern != pattern.strip() or '**' in pattern or '[' in pattern \
            or pattern.endswith('//'):
        return None
    directories_only = pattern.endswith('/')
    body = pattern.rstrip('/') if directories_only else pattern
    anchored = body.startswith('/')
    parts = body[1:].split('/') if anchored else [body]
    if not anchored and '/' in body:
        return None
    wild = any(character in pattern for character in WILDCARDS)
    # rsync's backslash escapes the next character of a pattern with wildcards, a slash too, and at the end nothing.
    if any(part == '' or (wild and escapes_its_end(part)) for part in parts):
        return None
    return ExcludeRule(parts, anchored, directories_only, wild)


def escapes_its_end(part):
    """
    Check whether a component of a pattern ends in a backslash that escapes nothing in it.

    :param part: The component (a string).
    :returns: :data:`True` when it ends in an odd number of backslashes.
    """
    return (len(part) - len(part.rstrip('\\'))) % 2 == 1


def excluded(rules, name, is_directory):
    """
    Check whether the rules leave a path out (the path itself, not what lies above it).

    :param rules: What :func:`parse_exclude_rules()` gave (a list of :class:`ExcludeRule` objects).
    :param name: A path relative to the transfer's top (bytes).
    :param is_directory: A function that tells whether the entry is a
                         directory (called only when a rule for directories matches).
    :returns: :data:`True` when a rule matches it.
    """
    parts = name.decode('latin-1').split('/')
    return any(rule.matches(parts) and (not rule.directories_only or is_directory()) for rule in rules)
