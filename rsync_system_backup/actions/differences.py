"""
What the read-only actions print: differences between trees, one line each, and their exit codes.
"""

from rsync_system_backup.manifests.format import escape

EXIT_DIFFERENT = 2
"""
The exit code when an action found what it looks for: a snapshot that
differs from its manifest (``--verify``), or a newest snapshot older than
allowed (``--max-age``). Errors exit with 1.
"""


def render_differences(differences, name, extra='added', missing='removed'):
    """
    Render differences as lines, one per entry.

    :param differences: A :class:`.Differences`.
    :param name: The snapshot the lines are about (a string, the first word of each line).
    :param extra: The word for entries only in the newer or present tree.
    :param missing: The word for entries only in the older or recorded tree.
    :returns: A string (lines ending in line feeds; empty without differences).

    Paths are written as in a manifest (line feeds, tabs and backslashes
    escaped), so that each entry takes exactly one line.
    """
    lines = ['%s: %s %s\n' % (name, extra, printable(path)) for path in differences.added]
    lines.extend('%s: %s %s\n' % (name, missing, printable(path)) for path in differences.removed)
    for path, fields in differences.changed:
        lines.append('%s: changed %s (%s)\n' % (name, printable(path), ', '.join(
            '%s %s -> %s' % tuple(printable(value) for value in field) for field in fields)))
    return ''.join(lines)


def printable(text):
    """
    Make a name printable on one line, whatever its bytes.

    :param text: A name (a string, with surrogate escapes for bytes that aren't UTF-8).
    :returns: The name escaped as in a manifest, with bytes that aren't UTF-8 as ``\\xNN``.
    """
    return escape(text).encode('utf-8', 'surrogateescape').decode('utf-8', 'backslashreplace')
