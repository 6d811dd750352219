"""
The keys of a job in the configuration file, the TOML type each takes, and the hint for a key that isn't one.

A job's keys are the long options of the command line that shape a backup
(``source`` and ``destination`` for the positional arguments, ``backup``,
``snapshot`` and ``rotate`` as booleans of their own, ``manifest`` for
``--manifest`` and ``--no-manifest``), the hooks and the monitoring.
:data:`JOB_KEYS` gives the kind of each: what TOML type it takes. Whether
the value itself is right is the command line's check (see
:mod:`.config.arguments`).
"""

import difflib

from rsync_system_backup.command_line import CONFIG_RUN_OPTIONS, LONG_OPTIONS

TEXT = 'text'
"""The kind of a key that takes a string."""

FLAG = 'flag'
"""The kind of a key that takes ``true`` or ``false``."""

WHOLE_NUMBER = 'whole number'
"""The kind of a key that takes an integer."""

RETENTION = 'retention'
"""The kind of a key that takes a number of snapshots or ``"always"``."""

TEXTS = 'texts'
"""The kind of a key that takes a string or an array of strings (an option that can be repeated)."""

COMMAND = 'command'
"""The kind of a key that takes a command: a string for bash, or an array of the program and its arguments."""

SECONDS = 'seconds'
"""The kind of a key that takes a number of seconds (an integer or a float)."""

POSITIONAL_KEYS = ('source', 'destination')
"""The keys of the command line's positional arguments."""

STEP_KEYS = ('backup', 'snapshot', 'rotate')
"""The keys that turn the steps of a run on and off (``true`` by default)."""

HOOK_KEYS = ('before', 'after', 'on-error')
"""The keys of the commands that run around a job (see :mod:`.config.hooks`)."""

HOOK_TIMEOUT_KEY = 'hook-timeout'
"""The key of the seconds that a hook may run."""

MONITORING_KEYS = ('ping-url', 'metrics-file')
"""The keys of the monitoring of a job: a healthchecks-style URL and a Prometheus textfile."""

JOB_KEYS = dict(
    [(key, TEXT) for key in POSITIONAL_KEYS]
    + [(key, FLAG) for key in STEP_KEYS]
    + [('snapshot-method', TEXT), ('source-snapshot', TEXT), ('full-check', FLAG)]
    + [(key, RETENTION) for key in ('minutely', 'hourly', 'daily', 'weekly', 'monthly', 'yearly')]
    + [('prefer-recent', FLAG), ('relaxed', FLAG)]
    + [('mount', TEXT), ('crypto', TEXT), ('tunnel', TEXT), ('daemon-port', WHOLE_NUMBER), ('password-file', TEXT)]
    + [('ionice', TEXT), ('no-sudo', FLAG), ('multi-fs', FLAG), ('exclude', TEXTS), ('exclude-from', TEXTS)]
    + [(key, FLAG) for key in ('accept-existing', 'create-set', 'wait', 'force', 'disable-notifications',
                               'manifest')]
    + [(key, COMMAND) for key in HOOK_KEYS] + [(HOOK_TIMEOUT_KEY, SECONDS)]
    + [(key, TEXT) for key in MONITORING_KEYS]
)
"""Every key of a job (and of ``[defaults]``) and its kind, in the order that ``--check-config`` shows them."""

EXPECTED = {
    TEXT: "a string",
    FLAG: "true or false",
    WHOLE_NUMBER: "a whole number",
    RETENTION: "a whole number of snapshots or \"always\"",
    TEXTS: "a string or an array of strings",
    COMMAND: "a command: a string (run with bash -c) or an array of the program and its arguments",
    SECONDS: "a number of seconds",
}
"""What each kind of key takes, for the messages."""

HINTS = {
    'no-manifest': "write manifest = false.",
    'sudo': "write no-sudo = true to run without sudo.",
    'excludes': "did you mean 'exclude'?",
}
"""Hints for keys that people write for a key of another name."""


def has_kind(kind, value):
    """
    Check the TOML type of a value against the kind of its key.

    :param kind: One of the kinds above (a string).
    :param value: The value as the TOML parser gave it.
    :returns: :data:`True` when the value is of a type that the key takes.
    """
    if kind == TEXT:
        return isinstance(value, str)
    if kind == FLAG:
        return isinstance(value, bool)
    if kind in (WHOLE_NUMBER, RETENTION) and isinstance(value, int) and not isinstance(value, bool):
        return True
    if kind == RETENTION:
        return isinstance(value, str)
    if kind in (TEXTS, COMMAND):
        return isinstance(value, str) or (isinstance(value, list) and all(isinstance(item, str) for item in value)
                                          and (kind == TEXTS or bool(value)))
    return kind == SECONDS and isinstance(value, (int, float)) and not isinstance(value, bool)


def describe_value(value):
    """
    Show a value with its TOML type, for a message.

    :param value: The value as the TOML parser gave it.
    :returns: For example ``true (a boolean)`` or ``"idle" (a string)``.
    """
    if isinstance(value, bool):
        return "%s (a boolean)" % str(value).lower()
    if isinstance(value, str):
        return "%r (a string)" % value
    if isinstance(value, (int, float)):
        return "%r (a number)" % value
    if isinstance(value, list):
        return "an array" if all(isinstance(item, str) for item in value) else "an array with other things than strings"
    if isinstance(value, dict):
        return "a table"
    return "%s (a date or time)" % value


def hint_for_unknown_key(key):
    """
    Suggest what to write instead of a key that isn't a job's.

    :param key: The key (a string).
    :returns: The hint (a string, a sentence): a key of similar name, the command line
              for an option that says how to run the jobs, or where the keys are listed.
    """
    if key in HINTS:
        return HINTS[key]
    option = '--' + key
    if option in CONFIG_RUN_OPTIONS:
        return "%s says how to run the jobs: give it on the command line, with --config." % option
    if key in (name.rstrip('=') for name in LONG_OPTIONS):
        return "%s is not a setting of a job (docs/configuration.rst lists the keys)." % option
    close = difflib.get_close_matches(key, list(JOB_KEYS), n=1)
    if close:
        return "did you mean '%s'?" % close[0]
    return "docs/configuration.rst lists the keys."
