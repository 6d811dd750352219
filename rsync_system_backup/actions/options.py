"""
The command line options of the read-only actions: which action, its value, and what doesn't go with it.

Used by :mod:`.command_line` while it parses, so it imports nothing heavy (humanfriendly
only for ``--max-age``'s value).
"""

from rsync_system_backup.exceptions import InvalidOptionError

READ_ONLY_ACTIONS = ('--list', '--verify', '--verify-all', '--diff', '--max-age')
"""The options that look at a backup set instead of making a backup."""

STEP_PROPERTIES = ('backup_enabled', 'snapshot_enabled', 'rotate_enabled')
"""The properties that ``-b``, ``-s`` and ``-r`` set, which no action goes with."""


def record_action(parsed, name, value):
    """
    Record one of the options of the read-only actions, or ``--json``.

    :param parsed: The :class:`.CommandLine` being built (its ``action``,
                   ``action_value`` and ``json`` are set).
    :param name: The option's long name (one of :data:`READ_ONLY_ACTIONS`, or ``--json``).
    :param value: The option's value (a string, empty for flags).
    :raises: :exc:`.InvalidOptionError` for a second action or an invalid value.
    """
    if name == '--json':
        parsed.json = True
        return
    if parsed.action:
        raise InvalidOptionError("%s and %s can't be combined: give one of them per run." % (parsed.action, name))
    parsed.action = name
    if name == '--diff':
        if not value.strip():
            raise InvalidOptionError("--diff is empty: give OLD or OLD:NEW (snapshot names, see --list).")
        parsed.action_value = value
    elif name == '--max-age':
        parsed.action_value = parse_duration(name, value)


def parse_duration(name, value):
    """
    Read a duration such as ``90s``, ``26h`` or ``2d`` (see :func:`humanfriendly.parse_timespan()`).

    :param name: The option (used in the message).
    :param value: The value (a string).
    :returns: The number of seconds (a float, more than 0).
    :raises: :exc:`.InvalidOptionError` for anything else.
    """
    from humanfriendly import InvalidTimespan, parse_timespan
    try:
        seconds = parse_timespan(value.strip())
    except InvalidTimespan:
        seconds = 0
    if seconds <= 0:
        raise InvalidOptionError("Invalid %s value %r: give a duration such as 90s, 26h or 2d." % (name, value))
    return seconds


def check_action(parsed):
    """
    Refuse what doesn't go with a read-only action, and ``--json`` without ``--list``.

    :param parsed: The :class:`.CommandLine`, with its positional arguments applied.
    :raises: :exc:`.InvalidOptionError` for a SOURCE or a step (``-b``, ``-s``, ``-r``) given with an action.
    """
    if parsed.json:
        if parsed.action != '--list':
            raise InvalidOptionError("--json only goes with --list.")
        parsed.action_value = True
    if not parsed.action:
        return
    if 'source' in parsed.program_options:
        raise InvalidOptionError("%s takes DESTINATION alone, not SOURCE DESTINATION." % parsed.action)
    if any(step in parsed.program_options for step in STEP_PROPERTIES):
        raise InvalidOptionError("%s changes nothing, so it doesn't go with -b, -s or -r." % parsed.action)
