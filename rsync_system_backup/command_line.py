"""
The command line's options: getopt, the checks of their values, and the settings they make.

:func:`parse_command_line()` turns the arguments into a :class:`CommandLine`:
the keyword arguments for :class:`.RsyncSystemBackup`, or a read-only action,
and what the command itself does with ``--help``, ``--version``,
``--show-excludes``, ``-v`` and ``-q``; or, with ``--config=FILE``, how to
run the jobs of FILE (which :mod:`.config` reads). It imports nothing heavy, so
``--help`` and usage errors answer at once.
"""

import getopt
import os

from rsync_system_backup import DEFAULT_ROTATION_SCHEME
from rsync_system_backup.actions.options import (
    MARKING_ACTIONS,
    READ_ONLY_ACTIONS,
    STEP_PROPERTIES,
    check_action,
    place_diff_operands,
    record_action,
)
from rsync_system_backup.checks.values import (
    CLEARING_PATTERN,
    CLEARING_PATTERN_PROBLEM,
    IONICE_CLASSES,
    is_port_number,
)
from rsync_system_backup.exceptions import InvalidOptionError
from rsync_system_backup.rotation.schemes import FREQUENCIES, override_rotation_scheme, parse_retention

SHORT_OPTIONS = 'bsrm:c:t:i:unx:fvqh'
"""The short options, in :func:`getopt.gnu_getopt()` syntax."""

LONG_OPTIONS = [
    'backup', 'snapshot', 'rotate', 'mount=', 'crypto=', 'tunnel=', 'ionice=', 'no-sudo',
    'dry-run', 'multi-fs', 'exclude=', 'force', 'disable-notifications', 'verbose', 'quiet', 'help',
    'daemon-port=', 'password-file=', 'log-file=', 'accept-existing', 'create-set', 'wait',
    'minutely=', 'hourly=', 'daily=', 'weekly=', 'monthly=', 'yearly=', 'prefer-recent', 'relaxed',
    'snapshot-method=', 'source-snapshot=', 'full-check', 'version', 'show-excludes',
    'list', 'json', 'verify', 'verify-all', 'diff=', 'max-age=', 'manifest', 'no-manifest', 'keep=',
    'release=', 'exclude-from=', 'config=', 'job=', 'check-config',
]
"""The long options, in :func:`getopt.gnu_getopt()` syntax."""

SHORT_TO_LONG = {
    '-b': '--backup', '-s': '--snapshot', '-r': '--rotate', '-m': '--mount', '-c': '--crypto', '-t': '--tunnel',
    '-i': '--ionice', '-u': '--no-sudo', '-n': '--dry-run', '-x': '--exclude', '-f': '--force',
    '-v': '--verbose', '-q': '--quiet', '-h': '--help',
}
"""The long name of each short option."""

FLAG_SETTINGS = {
    '--no-sudo': ('sudo_enabled', False),
    '--dry-run': ('dry_run', True),
    '--multi-fs': ('multi_fs', True),
    '--force': ('force', True),
    '--disable-notifications': ('notifications_enabled', False),
    '--accept-existing': ('accept_existing', True),
    '--create-set': ('create_set', True),
    '--wait': ('wait_for_lock', True),
    '--prefer-recent': ('prefer_recent', True),
    '--relaxed': ('strict', False),
    '--full-check': ('full_check', True),
    '--manifest': ('manifests_enabled', True),
    '--no-manifest': ('manifests_enabled', False),
}
"""The options without a value that set a property of :class:`.RsyncSystemBackup`: the property and its value."""

CONFIG_RUN_OPTIONS = (
    '--config', '--job', '--check-config', '--dry-run', '--verbose', '--quiet', '--log-file', '--help', '--version',
    '--list', '--json', '--verify', '--verify-all', '--max-age', '--show-excludes',
    '--wait', '--full-check', '--disable-notifications',
)
"""
The options that go with ``--config``: they say how to run the file's jobs, not what a job backs up.

The last three are also keys of a job; given on the command line they turn
the setting on for every job that runs.
"""

ONE_SET_OPTIONS = ('--diff', '--keep', '--release')
"""The options that work on one backup set, which ``--config`` (several jobs) doesn't name."""


class UsageError(Exception):
    """Raised for a command line that can't be understood."""


class CommandLine(object):

    """The outcome of parsing a command line."""

    def __init__(self):
        """Start with no options: every step enabled, default verbosity."""
        self.program_options = {}
        self.verbosity = 0
        self.show_help = False
        self.show_version = False
        self.show_excludes = False
        self.seen_options = set()
        self.log_file = None
        self.rotation_overrides = {}
        self.action = None
        self.action_value = None
        self.json = False
        self.excludes = []
        self.given_options = []
        self.config_file = None
        self.job_names = []
        self.check_config = False


def parse_command_line(arguments, environment=os.environ):
    """
    Turn command line arguments into keyword arguments for :class:`.RsyncSystemBackup`.

    :param arguments: The arguments (a list of strings, without the program name).
    :param environment: The environment (for ``$RSYNC_MODULE_PATH``).
    :returns: A :class:`CommandLine`.
    :raises: :exc:`UsageError` for unknown, duplicate or invalid options, for
             a wrong number of positional arguments, and with ``--config``
             for what doesn't go with it (see :func:`check_config_command_line()`).
    """
    try:
        options, positional = getopt.gnu_getopt(arguments, SHORT_OPTIONS, LONG_OPTIONS)
    except getopt.GetoptError as e:
        raise UsageError("%s (see --help)." % e)
    parsed = CommandLine()
    for option, value in options:
        apply_option(parsed, option, value)
    if parsed.show_help or parsed.show_version:
        return parsed
    if parsed.config_file:
        check_config_command_line(parsed, positional)
        check_as_usage(check_action, parsed)
        return parsed
    if parsed.job_names or parsed.check_config:
        raise UsageError("%s needs --config=FILE, the file that defines the jobs."
                         % ('--job' if parsed.job_names else '--check-config'))
    read_excludes(parsed)
    if parsed.rotation_overrides:
        try:
            scheme = override_rotation_scheme(DEFAULT_ROTATION_SCHEME, parsed.rotation_overrides)
        except InvalidOptionError as e:
            raise UsageError(str(e))
        parsed.program_options['rotation_scheme'] = scheme
    positional = place_diff_operands(parsed, positional, environment.get('RSYNC_MODULE_PATH'))
    if len(positional) > 2:
        raise UsageError("Expected [SOURCE] DESTINATION, got %i arguments: %s (quote names with spaces)."
                         % (len(positional), ' '.join(map(repr, positional))))
    if len(positional) == 2:
        parsed.program_options['source'] = expand_home(check_not_empty('SOURCE', positional.pop(0)))
    if positional:
        parsed.program_options['destination'] = expand_home(check_not_empty('DESTINATION', positional[0]))
    elif not arguments:
        parsed.show_help = True
    elif not parsed.show_excludes and not environment.get('RSYNC_MODULE_PATH'):
        raise UsageError("No DESTINATION given (and $RSYNC_MODULE_PATH is not set): give the directory that "
                         "receives the backup, for example /mnt/backups/latest (see --help).")
    if parsed.show_excludes:
        # Like --help, it answers whatever else is asked.
        return parsed
    try:
        check_action(parsed)
    except InvalidOptionError as e:
        raise UsageError(str(e))
    return parsed


def expand_home(pathname):
    """
    Expand a leading ``~`` or ``~USER``, which the shell leaves alone after ``=`` (``--log-file=~/x.log``).

    :param pathname: A pathname or rsync location (a string).
    :returns: The pathname with the home directory filled in (a string);
              anything else, such as ``HOST:~/x``, is returned unchanged.
    """
    return os.path.expanduser(pathname) if pathname.startswith('~') else pathname


def apply_option(parsed, option, value):
    """
    Record one option in a :class:`CommandLine`.

    :param parsed: The :class:`CommandLine` being built.
    :param option: The option as getopt reports it (``-b``, ``--mount``, ...).
    :param value: The option's value (a string, empty for flags).
    :raises: :exc:`UsageError` for a duplicate or invalid option.
    """
    settings = parsed.program_options
    parsed.given_options.append(option_name(option))
    if option in ('-b', '--backup'):
        enable_explicit_action(settings, 'backup_enabled')
    elif option in ('-s', '--snapshot'):
        enable_explicit_action(settings, 'snapshot_enabled')
    elif option in ('-r', '--rotate'):
        enable_explicit_action(settings, 'rotate_enabled')
    elif option in ('-x', '--exclude'):
        parsed.excludes.append((option_name(option), check_exclude_pattern(value)))
    elif option == '--exclude-from':
        parsed.excludes.append((option, expand_home(check_not_empty(option, value))))
    elif option == '--job':
        parsed.job_names.append(check_not_empty(option, value))
    elif option in ('-v', '--verbose'):
        parsed.verbosity += 1
    elif option in ('-q', '--quiet'):
        parsed.verbosity -= 1
    elif option in ('-h', '--help'):
        parsed.show_help = True
    elif option == '--version':
        parsed.show_version = True
    else:
        name = option_name(option)
        if name in parsed.seen_options:
            raise UsageError("The option %s was given twice: give it once." % name)
        parsed.seen_options.add(name)
        if name in FLAG_SETTINGS:
            property_name, flag_value = FLAG_SETTINGS[name]
            settings[property_name] = flag_value
        elif name == '--mount':
            settings['mount_point'] = expand_home(check_not_empty(name, value))
        elif name == '--crypto':
            settings['crypto_device'] = check_not_empty(name, value)
        elif name == '--tunnel':
            settings['tunnel'] = check_not_empty(name, value)
        elif name == '--daemon-port':
            settings['daemon_port'] = check_port_number(name, value)
        elif name == '--password-file':
            settings['password_file'] = expand_home(check_not_empty(name, value))
        elif name == '--log-file':
            parsed.log_file = expand_home(check_not_empty(name, value))
        elif name == '--config':
            parsed.config_file = expand_home(check_not_empty(name, value))
        elif name == '--check-config':
            parsed.check_config = True
        elif name == '--ionice':
            settings['ionice'] = check_ionice_class(value)
        elif name == '--snapshot-method':
            settings['snapshot_method'] = check_snapshot_method(value)
        elif name == '--source-snapshot':
            settings['source_snapshot'] = check_source_snapshot(value)
        elif name == '--show-excludes':
            parsed.show_excludes = True
        elif name in READ_ONLY_ACTIONS or name in MARKING_ACTIONS or name == '--json':
            try:
                record_action(parsed, name, value)
            except InvalidOptionError as e:
                raise UsageError(str(e))
        elif name[2:] in FREQUENCIES:
            parsed.rotation_overrides[name[2:]] = check_retention(name, value)


def read_excludes(parsed):
    """
    Fill in the exclude patterns of ``-x`` and the files of ``--exclude-from``, in the order of the options.

    :param parsed: The :class:`CommandLine` being built (its ``program_options``
                   get ``exclude_list`` when any of the options was given).
    :raises: :exc:`UsageError` when an exclude file can't be read (see :func:`.read_exclude_file()`).
    """
    from rsync_system_backup.transfer.exclude_files import read_exclude_file
    for option, value in parsed.excludes:
        patterns = parsed.program_options.setdefault('exclude_list', [])
        patterns.extend(check_as_usage(read_exclude_file, value) if option == '--exclude-from' else [value])


def check_config_command_line(parsed, positional):
    """
    Refuse what doesn't go with ``--config``: SOURCE, DESTINATION and the options that shape a backup.

    :param parsed: The :class:`CommandLine` being built.
    :param positional: The positional arguments (a list of strings).
    :raises: :exc:`UsageError` for a positional argument or an option that
             isn't one of :data:`CONFIG_RUN_OPTIONS`.
    """
    if positional:
        raise UsageError("--config=FILE takes no SOURCE or DESTINATION (got %s): the jobs in FILE name them."
                         % ' '.join(map(repr, positional)))
    for name in parsed.given_options:
        if name in ONE_SET_OPTIONS:
            raise UsageError("%s works on one backup set, so it doesn't go with --config: give that set's "
                             "DESTINATION instead." % name)
        if name not in CONFIG_RUN_OPTIONS:
            key = 'manifest' if name == '--no-manifest' else name[2:]
            raise UsageError("%s shapes a backup, so it doesn't go with --config: set %s in the jobs' tables of %s "
                             "(or in [defaults]) instead." % (name, key, parsed.config_file))


def option_name(option):
    """
    Give the long name of an option.

    :param option: ``-m`` or ``--mount`` and so on.
    :returns: The long form (a string).
    """
    return SHORT_TO_LONG.get(option, option)


def enable_explicit_action(settings, action):
    """
    Enable one step and disable the steps that weren't named explicitly.

    :param settings: The keyword arguments being built (a dict).
    :param action: One of :data:`.STEP_PROPERTIES`.
    """
    settings[action] = True
    for other in STEP_PROPERTIES:
        settings.setdefault(other, False)


def check_not_empty(name, value):
    """
    Refuse an empty value.

    :param name: What the value is for (used in the message).
    :param value: The value (a string).
    :returns: The value.
    :raises: :exc:`UsageError` when the value is empty or only white space.
    """
    if not value.strip():
        raise UsageError("%s is empty: give a value." % name)
    return value


def check_port_number(name, value):
    """
    Refuse a value that is not a TCP port number.

    :param name: What the value is for (used in the message).
    :param value: The value (a string).
    :returns: The port number (an integer).
    :raises: :exc:`UsageError` unless the value is a number from 1 to 65535.
    """
    if not is_port_number(value):
        raise UsageError("%s must be a port number from 1 to 65535, not %r." % (name, value))
    return int(value)


def check_retention(name, value):
    """
    Refuse a count of snapshots that rotation can't use.

    :param name: The option (``--hourly`` and so on).
    :param value: The value (a string).
    :returns: A whole number or ``'always'``.
    :raises: :exc:`UsageError` for anything else.
    """
    try:
        return parse_retention(name[2:], value)
    except InvalidOptionError:
        raise UsageError("Invalid %s value %r: give a number of snapshots (0 or more) or 'always'." % (name, value))


def check_exclude_pattern(value):
    """
    Refuse an exclude pattern that rsync would misread.

    :param value: The pattern (a string).
    :returns: The pattern.
    :raises: :exc:`UsageError` when it is empty, contains a line break or is
             ``!`` (see :data:`.CLEARING_PATTERN`).
    """
    check_not_empty('--exclude', value)
    if value == CLEARING_PATTERN:
        raise UsageError("Invalid --exclude: %s." % CLEARING_PATTERN_PROBLEM)
    if '\n' in value or '\r' in value:
        raise UsageError("The exclude pattern %r contains a line break: rsync can't match that; "
                         "use ? or * in its place." % value)
    return value


def check_snapshot_method(value):
    """
    Refuse a snapshot method that doesn't exist.

    :param value: The method's name (a string).
    :returns: The name.
    :raises: :exc:`UsageError` for anything but :data:`.METHOD_NAMES`.
    """
    from rsync_system_backup.snapshots.method_names import check_method_name
    return check_as_usage(check_method_name, value)


def check_source_snapshot(value):
    """
    Refuse a value of ``--source-snapshot`` other than ``auto`` and ``never``.

    :param value: The value (a string).
    :returns: The value.
    :raises: :exc:`UsageError` for anything but :data:`.SOURCE_SNAPSHOT_MODES`.
    """
    from rsync_system_backup.sources.names import check_mode
    return check_as_usage(check_mode, value)


def check_as_usage(check, value):
    """
    Run a check of the Python API on an option's value, its refusal becoming a usage error.

    :param check: A function that returns the value or raises :exc:`.InvalidOptionError`.
    :param value: The option's value (a string).
    :returns: What `check` returns.
    :raises: :exc:`UsageError` with the message of :exc:`.InvalidOptionError`.
    """
    try:
        return check(value)
    except InvalidOptionError as e:
        raise UsageError(str(e))


def check_ionice_class(value):
    """
    Refuse an I/O scheduling class that ionice doesn't know (in any case, with blanks around it, as 1.1 did).

    :param value: The class (a string).
    :returns: The class, in lower case without surrounding blanks.
    :raises: :exc:`UsageError` for anything but :data:`.IONICE_CLASSES`.
    """
    normalized = value.strip().lower()
    if normalized not in IONICE_CLASSES:
        raise UsageError("Invalid --ionice class %r: use idle, best-effort or realtime." % value)
    return normalized
