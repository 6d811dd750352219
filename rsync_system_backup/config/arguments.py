"""
A job's keys turned into the command line that would run it, and checked by the command line's own checks.

Each key becomes the arguments of its option, ``--NAME=VALUE`` as one
argument (so that no value is ever read as an option), and ``source`` and
``destination`` come last, after ``--``. :func:`parse_job()` parses each
key's arguments alone first (so that a refusal names the key and its line),
then the whole command line, with the parser of the command line
(:func:`.parse_command_line()`) and the checks of the Python API (building
an :class:`.RsyncSystemBackup`); the job's keyword arguments for
:class:`.RsyncSystemBackup` are what the parser makes of the whole.
"""

import shlex

from rsync_system_backup.command_line import UsageError, expand_home, parse_command_line
from rsync_system_backup.config.keys import (
    FLAG,
    HOOK_KEYS,
    HOOK_TIMEOUT_KEY,
    JOB_KEYS,
    MONITORING_KEYS,
    POSITIONAL_KEYS,
    STEP_KEYS,
    TEXTS,
)
from rsync_system_backup.exceptions import InvalidOptionError, RsyncSystemBackupError

PLACEHOLDER_DESTINATION = '/backups/latest'
"""The destination that the check of a key's arguments alone gives the parser (which wants one)."""

LOCAL_PATH_KEYS = ('source', 'mount', 'password-file', 'exclude-from', 'metrics-file')
"""The keys that name files or directories of this system, which must be absolute paths."""

PROGRAM_NAME = 'rsync-system-backup'
"""The command's name, for the command line that ``--check-config`` shows."""


def key_arguments(key, value):
    """
    Give the command line arguments of one key.

    :param key: One of :data:`.JOB_KEYS` (a string).
    :param value: Its value, of the right type.
    :returns: A list of strings: ``--NAME=VALUE`` (one per value of a key
              that takes several), ``--NAME`` for a flag that is true, none for
              a flag that is false and for the keys that are no options
              (positional arguments, steps, hooks, monitoring).
    """
    if key in POSITIONAL_KEYS + STEP_KEYS + HOOK_KEYS + MONITORING_KEYS + (HOOK_TIMEOUT_KEY,):
        return []
    if key == 'manifest':
        return ['--manifest' if value else '--no-manifest']
    if JOB_KEYS[key] == FLAG:
        return ['--' + key] if value else []
    values = [value] if JOB_KEYS[key] != TEXTS or isinstance(value, str) else value
    return ['--%s=%s' % (key, item) for item in values]


def step_arguments(settings):
    """
    Give the arguments that run only the steps a job turns on.

    :param settings: The job's keys (a dict).
    :returns: A list of strings: none when every step is on (the default),
              otherwise ``--backup``, ``--snapshot`` and ``--rotate`` for the
              steps that are on (naming one runs only the steps named).
    """
    enabled = [key for key in STEP_KEYS if settings.get(key, True)]
    return [] if len(enabled) == len(STEP_KEYS) else ['--' + key for key in enabled]


def positional_arguments(settings):
    """
    Give a job's SOURCE (when it has one) and DESTINATION, after ``--``.

    :param settings: The job's keys (a dict).
    :returns: A list of strings.
    """
    return ['--'] + [settings[key] for key in POSITIONAL_KEYS if key in settings]


def job_arguments(job):
    """
    Give the command line that runs a job (without the program's name).

    The options come in the order of :data:`.JOB_KEYS`, whatever the order of
    the keys in the file (so the patterns of ``exclude`` come before those of
    ``exclude-from``).

    :param job: A :class:`.Job`.
    :returns: A list of strings.
    """
    settings = job.settings
    options = [argument for key in JOB_KEYS if key in settings for argument in key_arguments(key, settings[key])]
    return options + step_arguments(settings) + positional_arguments(settings)


def format_command_line(arguments):
    """
    Show a command line as a shell would take it.

    :param arguments: The arguments (a list of strings, without the program's name).
    :returns: A string that starts with the program's name.
    """
    return ' '.join([PROGRAM_NAME] + [shlex.quote(argument) for argument in arguments])


def parse_arguments(arguments):
    """
    Parse a command line as the command does and build the :class:`.RsyncSystemBackup` it asks for.

    :param arguments: The arguments (a list of strings).
    :returns: The keyword arguments for :class:`.RsyncSystemBackup` (a dict).
    :raises: :exc:`.UsageError` or :exc:`.RsyncSystemBackupError` with the refusal.
    """
    from rsync_system_backup import RsyncSystemBackup
    program_options = parse_command_line(arguments, environment={}).program_options
    RsyncSystemBackup(**program_options)
    return program_options


def parse_job(config_file, job):
    """
    Check a job's keys with the checks of the command line, and give it its command line and keyword arguments.

    :param config_file: The :class:`.ConfigFile` (for the lines in the messages).
    :param job: A :class:`.Job`; its ``arguments`` and ``program_options``
                are set when there is no problem.
    :returns: The problems found (a list of strings, one line each).
    """
    problems = []
    for key in job.settings:
        problem = check_key(key, job.settings[key])
        if problem:
            problems.append("%s: %s in [%s]: %s" % (config_file.where(job.key_path(key)), key,
                                                    '.'.join(job.key_path(key)[:-1]), problem))
    if not any(job.settings.get(key, True) for key in STEP_KEYS):
        problems.append("%s: %s turns off backup, snapshot and rotate: turn on at least one step."
                        % (config_file.where(job.path), job.title))
    if problems:
        return problems
    arguments = job_arguments(job)
    try:
        job.program_options = parse_arguments(arguments)
    except (UsageError, RsyncSystemBackupError) as e:
        return ["%s: %s: %s" % (config_file.where(job.path), job.title, e)]
    job.arguments = arguments
    return []


def check_key(key, value):
    """
    Check the value of one key.

    :param key: One of :data:`.JOB_KEYS` (a string).
    :param value: Its value, of the right type.
    :returns: The problem (a string), or :data:`None`.
    """
    values = value if isinstance(value, list) else [value]
    if key in LOCAL_PATH_KEYS + ('destination',):
        relative = [item for item in values if is_relative_path(key, item)]
        if relative:
            return ("%r is a relative path: give an absolute one (a job doesn't run in the directory of the file)."
                    % relative[0])
    if key in HOOK_KEYS:
        return None if values[0].strip() else "the command is empty: give one, or leave the key out."
    if key == HOOK_TIMEOUT_KEY:
        return None if value > 0 else "give a number of seconds more than 0."
    if key in MONITORING_KEYS:
        return check_monitoring(key, value)
    if key == 'source':
        arguments = ['--', value, PLACEHOLDER_DESTINATION]
    elif key == 'destination':
        arguments = ['--', value]
    else:
        arguments = key_arguments(key, value) + ['--', PLACEHOLDER_DESTINATION]
    try:
        parse_arguments(arguments)
    except (UsageError, RsyncSystemBackupError) as e:
        return str(e)
    return None


def is_relative_path(key, value):
    """
    Check whether a key names a file or directory of this system by a relative path.

    :param key: The key (a string).
    :param value: One of its values (a string).
    :returns: :data:`True` for a relative local path (after ``~`` is expanded);
              a destination on another system, or one that can't be parsed, isn't one.
    """
    value = expand_home(value)
    if key != 'destination':
        return bool(value.strip()) and not value.startswith('/')
    from rsync_system_backup.destinations import Destination
    try:
        destination = Destination(expression=value)
    except RsyncSystemBackupError:
        return False
    return destination.is_local and not destination.directory.startswith('/')


def check_monitoring(key, value):
    """
    Check the value of ``ping-url`` or ``metrics-file`` (see :mod:`.integrations.pings`, :mod:`.integrations.metrics`).

    :param key: ``ping-url`` or ``metrics-file``.
    :param value: Its value (a string).
    :returns: The problem (a string), or :data:`None`.
    """
    from rsync_system_backup.integrations.metrics import check_metrics_file
    from rsync_system_backup.integrations.pings import check_ping_url
    try:
        (check_ping_url if key == 'ping-url' else check_metrics_file)(value)
    except InvalidOptionError as e:
        return str(e)
    return None
