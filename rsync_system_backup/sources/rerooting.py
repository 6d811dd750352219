"""
The absolute paths that a transfer leaves out, moved onto a snapshot of the source.

rsync matches a ``--filter=-/ PATTERN`` rule (see
:data:`.DEFAULT_EXCLUDED_ROOTS`) against the absolute path of each file on
the sending side. From a snapshot, the file that was ``SOURCE/etc/x`` is
``SNAPSHOT/etc/x``, so each pattern's components that name the source are
replaced by the snapshot's path (:func:`move_patterns()`); a pattern whose
start doesn't match the source, or that names the source itself, matched
nothing in the transfer and is dropped. The wildcards of rsync (``*``,
``?``, ``[...]`` and backslash escapes, which count only in a pattern that
has a wildcard) are matched one component at a time; ``**`` there, or a
pattern that isn't absolute but holds a slash (it can match across the
source's path), can't be moved, and the run transfers from the live source.
"""

import re

from rsync_system_backup.checks.paths import escape_pattern

WILDCARDS = '*?['
"""The characters that make rsync match a pattern with wildcards."""


def move_patterns(patterns, source, snapshot):
    """
    Move absolute filter patterns of the source onto its snapshot.

    :param patterns: rsync patterns of absolute paths (strings, as :meth:`.excluded_paths()` gives them).
    :param source: The source's real path (a string, as rsync sees it).
    :param snapshot: The snapshot's real path (a string).
    :returns: The moved patterns (a list of strings), or :data:`None` when one can't be moved.
    """
    source_parts = [part for part in source.split('/') if part]
    moved = []
    for pattern in patterns:
        if not pattern.startswith('/'):
            if '/' in pattern.rstrip('/'):
                return None
            moved.append(pattern)
            continue
        wild = any(character in pattern for character in WILDCARDS)
        parts = [part for part in pattern.split('/') if part]
        head, rest = parts[:len(source_parts)], parts[len(source_parts):]
        if any('**' in part for part in head):
            return None
        if not rest or not all(component_matches(part, name, wild) for part, name in zip(head, source_parts)):
            continue
        tail = '/'.join(rest) + ('/' if pattern.endswith('/') else '')
        if wild:
            moved.append(escape_pattern(snapshot) + '/' + tail)
        else:
            moved.append(literal_pattern(snapshot + '/' + tail))
    return moved


def anchor_patterns(patterns, source):
    """
    Give absolute filter patterns of the source as patterns anchored at the transfer's top.

    :param patterns: See :func:`move_patterns()`.
    :param source: The source's real path (a string).
    :returns: The patterns (a list of strings; ``/etc/x`` for ``SOURCE/etc/x``, which rsync matches at the top
              of whatever directory the transfer reads), or :data:`None` when one can't be moved.
    """
    return move_patterns(patterns, source, '')


def literal_pattern(pathname):
    """
    Give the pattern that matches a path and nothing else.

    :param pathname: The path (a string).
    :returns: The path itself when it holds no wildcard, otherwise the path escaped (see :func:`.escape_pattern()`).
    """
    return escape_pattern(pathname) if any(character in pathname for character in WILDCARDS) else pathname


def component_matches(part, name, wild):
    """
    Match one component of a pattern against one component of a path, as rsync would.

    :param part: The pattern's component (a string, without ``**``).
    :param name: The path's component (a string).
    :param wild: :data:`True` when the whole pattern has wildcards (then backslashes escape).
    :returns: :data:`True` when it matches.
    """
    if not wild:
        return part == name
    return re.fullmatch(translate_component(part), name, re.DOTALL) is not None


def translate_component(part):
    """
    Translate one component of an rsync pattern with wildcards into a regular expression.

    :param part: The component (a string).
    :returns: The regular expression (a string).
    """
    pieces, index = [], 0
    while index < len(part):
        character = part[index]
        if character == '\\' and index + 1 < len(part):
            index += 1
            pieces.append(re.escape(part[index]))
        elif character == '*':
            pieces.append('[^/]*')
        elif character == '?':
            pieces.append('[^/]')
        elif character == '[' and part.find(']', index + 2) > 0:
            end = part.find(']', index + 2)
            inside = part[index + 1:end]
            negate = inside[:1] in ('!', '^')
            inside = inside[1:] if negate else inside
            pieces.append('[%s%s]' % ('^' if negate else '', inside.replace('\\', '\\\\').replace('[', '\\[')))
            index = end
        else:
            pieces.append(re.escape(character))
        index += 1
    return ''.join(pieces)
