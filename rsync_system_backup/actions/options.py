"""
The command line options of the actions: which action, its value, and what doesn't go with it.

The read-only actions look at a backup set; ``--keep=NAME:SNAPSHOT`` and
``--release=NAME`` mark its snapshots kept or let them go, and change nothing
else (``--keep=NAME`` alone is an option of a backup, see
:attr:`.RsyncSystemBackup.keep_as`). Used by :mod:`.command_line` while it
parses, so it imports nothing heavy (humanfriendly only for ``--max-age``'s value).
"""

import re

from rsync_system_backup.checks.values import KEEP_NAME_RULE, is_keep_name
from rsync_system_backup.exceptions import InvalidOptionError

READ_ONLY_ACTIONS = ('--list', '--verify', '--verify-all', '--diff', '--max-age')
"""The options that look at a backup set instead of making a backup."""

MARKING_ACTIONS = ('--keep', '--release')
"""The options that mark snapshots kept or release them instead of making a backup (``--keep`` as ``NAME:SNAPSHOT``)."""

STEP_PROPERTIES = ('backup_enabled', 'snapshot_enabled', 'rotate_enabled')
"""The properties that ``-b``, ``-s`` and ``-r`` set, which no action goes with."""

NUMBER = re.compile(r'[0-9]+(?:\.[0-9]*)?')
"""A number as a duration takes it (whole or with decimals)."""

DURATION_PART = re.compile(r'([0-9]+(?:\.[0-9]*)?)\s*([A-Za-z]+)')
"""One part of a duration: a number and its unit (``12h``, ``2 days``)."""

DURATION = re.compile(r'(?:\s*%s)+\s*' % DURATION_PART.pattern)
"""A whole duration: one part or several, with blanks allowed between them."""


def record_action(parsed, name, value):
    """
    Record one of the options of the actions, or ``--json``, or ``--keep=NAME`` for a backup.

    :param parsed: The :class:`.CommandLine` being built (its ``action``,
                   ``action_value`` and ``json`` are set, or for
                   ``--keep=NAME`` the ``keep_as`` of its ``program_options``).
    :param name: The option's long name (one of :data:`READ_ONLY_ACTIONS`
                 or :data:`MARKING_ACTIONS`, or ``--json``).
    :param value: The option's value (a string, empty for flags).
    :raises: :exc:`.InvalidOptionError` for a second action or an invalid value.
    """
    if name == '--json':
        parsed.json = True
        return
    if name == '--keep':
        keep_name, separator, snapshot = value.partition(':')
        check_keep_option_name(name, keep_name)
        if not separator:
            parsed.program_options['keep_as'] = keep_name
            return
        if not snapshot.strip():
            raise InvalidOptionError("--keep=%s gives no snapshot after the colon: give --keep=%s:SNAPSHOT (a "
                                     "snapshot that --list shows), or --keep=%s to keep the snapshot of a backup."
                                     % (value, keep_name, keep_name))
        value = (keep_name, snapshot)
    elif name == '--release':
        check_keep_option_name(name, value)
    if parsed.action:
        raise InvalidOptionError("%s and %s can't be combined: give one of them per run." % (parsed.action, name))
    parsed.action = name
    if name == '--diff':
        if not value.strip():
            raise InvalidOptionError("--diff is empty: give OLD or OLD:NEW (snapshot names, see --list), "
                                     "or DESTINATION alone.")
        parsed.action_value = value
    elif name == '--max-age':
        parsed.action_value = parse_duration(name, value)
    elif name in MARKING_ACTIONS:
        parsed.action_value = value


def check_keep_option_name(option, name):
    """
    Refuse a name that can't keep a snapshot (see :data:`.KEEP_NAME_PATTERN`).

    :param option: ``--keep`` or ``--release`` (used in the message).
    :param name: The name (a string).
    :raises: :exc:`.InvalidOptionError` for a name that doesn't fit.
    """
    if not is_keep_name(name):
        raise InvalidOptionError("Invalid %s name %r: use %s." % (option, name, KEEP_NAME_RULE))


def parse_duration(name, value):
    """
    Read a duration: numbers with units, one or several (``90s``, ``26h``, ``2 days``, ``1d12h``, ``1h 30m``).

    The units are those of :func:`humanfriendly.parse_timespan()` (``s``,
    ``m``, ``h``, ``d``, ``w`` and their words, in any case); several parts
    add up. A number without a unit is refused: ``--max-age=26`` would mean
    seconds to the program and hours to most people who write it.

    :param name: The option (used in the message).
    :param value: The value (a string).
    :returns: The number of seconds (a float, more than 0).
    :raises: :exc:`.InvalidOptionError` for anything else.
    """
    from humanfriendly import time_units
    text = value.strip()
    if NUMBER.fullmatch(text) and float(text) > 0:
        raise InvalidOptionError("%s=%s has no unit: give one, as in %sh (s, m, h, d or w; they combine, "
                                 "as in 1d12h)." % (name, text, text))
    factors = dict((word, unit['divider']) for unit in time_units
                   for word in [unit['singular'], unit['plural']] + unit['abbreviations'])
    parts = DURATION_PART.findall(text) if DURATION.fullmatch(text) else []
    if parts and all(unit.lower() in factors for _, unit in parts):
        seconds = sum(float(number) * factors[unit.lower()] for number, unit in parts)
        if seconds > 0:
            return seconds
    raise InvalidOptionError("Invalid %s value %r: give a duration such as 90s, 26h, 2d or 1d12h." % (name, value))


def parse_diff_spec(value):
    """
    Split the value of ``--diff``.

    :param value: ``OLD`` or ``OLD:NEW`` (a string). Snapshot names of
                  version 1.1 contain colons (``2024-05-01 13:45:00``), so
                  the split is at the colon that starts a second snapshot name.
    :returns: A tuple of the old name and the new name (:data:`None` for the newest).
    """
    for index, character in enumerate(value):
        if character == ':' and value[index + 1:index + 5].isdigit() and len(value) - index - 1 >= 19:
            return value[:index], value[index + 1:]
    return value, None


def place_diff_operands(parsed, positional, module_path=None):
    """
    Read which snapshots ``--diff`` compares, from its value and the positional arguments.

    getopt gives ``--diff`` the argument after it as its value, so the forms
    with spaces arrive in pieces: ``--diff DESTINATION`` (the newest
    snapshot against the one before it) has DESTINATION as the value and no
    positional argument, and ``--diff OLD NEW DESTINATION`` has NEW as a
    positional argument where SOURCE would be. ``--diff=OLD[:NEW]
    DESTINATION`` and ``--diff OLD DESTINATION`` read as they did.

    :param parsed: The :class:`.CommandLine` being built; for ``--diff`` its
                   ``action_value`` becomes a tuple of the old and the new
                   snapshot's names (each :data:`None` for the default).
    :param positional: The positional arguments (a list of strings).
    :param module_path: ``$RSYNC_MODULE_PATH`` (a string or :data:`None`), which
                        stands for DESTINATION when none is given.
    :returns: The positional arguments left for ``[SOURCE] DESTINATION`` (a list of strings).
    """
    if parsed.action != '--diff':
        return positional
    given = parsed.action_value
    if not positional and not module_path:
        parsed.action_value = (None, None)
        return [given]
    old, new = parse_diff_spec(given)
    if new is None and len(positional) == 2:
        new = positional[0]
        positional = positional[1:]
    parsed.action_value = (old, new)
    return positional


def check_action(parsed):
    """
    Refuse what doesn't go with an action, and ``--json`` without ``--list``.

    :param parsed: The :class:`.CommandLine`, with its positional arguments applied.
    :raises: :exc:`.InvalidOptionError` for a SOURCE, a step (``-b``, ``-s``,
             ``-r``) or ``--keep=NAME`` given with an action.
    """
    if parsed.json:
        if parsed.action != '--list':
            raise InvalidOptionError("--json only goes with --list.")
        parsed.action_value = True
    if not parsed.action:
        return
    if 'keep_as' in parsed.program_options:
        raise InvalidOptionError("--keep=%s keeps the snapshot that a backup makes, so it doesn't go with %s."
                                 % (parsed.program_options['keep_as'], parsed.action))
    if 'source' in parsed.program_options:
        if parsed.action == '--keep':
            raise InvalidOptionError("--keep=NAME:SNAPSHOT keeps an existing snapshot and takes DESTINATION alone; "
                                     "to keep the snapshot of this backup, give --keep=NAME (without ':SNAPSHOT').")
        raise InvalidOptionError("%s takes DESTINATION alone, not SOURCE DESTINATION." % parsed.action)
    if any(step in parsed.program_options for step in STEP_PROPERTIES):
        raise InvalidOptionError("%s %s, so it doesn't go with -b, -s or -r." % (
            parsed.action, "works on existing snapshots" if parsed.action in MARKING_ACTIONS
            else "changes nothing"))
