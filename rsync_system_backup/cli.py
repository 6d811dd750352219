"""
The ``rsync-system-backup`` command line interface.

:func:`main()` parses the command line with :mod:`getopt`, builds a
:class:`.RsyncSystemBackup` from it and runs it. Parsing imports nothing
heavy, so ``--help`` and usage errors answer at once.
"""

import getopt
import logging
import os
import sys

from rsync_system_backup.usage import USAGE_TEXT

SHORT_OPTIONS = 'bsrm:c:t:i:unx:fvqh'
"""The short options, in :func:`getopt.gnu_getopt()` syntax."""

LONG_OPTIONS = [
    'backup', 'snapshot', 'rotate', 'mount=', 'crypto=', 'tunnel=', 'ionice=', 'no-sudo',
    'dry-run', 'multi-fs', 'exclude=', 'force', 'disable-notifications', 'verbose', 'quiet', 'help',
]
"""The long options, in :func:`getopt.gnu_getopt()` syntax."""

SHORT_TO_LONG = {
    '-b': '--backup', '-s': '--snapshot', '-r': '--rotate', '-m': '--mount', '-c': '--crypto', '-t': '--tunnel',
    '-i': '--ionice', '-u': '--no-sudo', '-n': '--dry-run', '-x': '--exclude', '-f': '--force',
    '-v': '--verbose', '-q': '--quiet', '-h': '--help',
}
"""The long name of each short option."""

IONICE_CLASSES = ('idle', 'best-effort', 'realtime', '1', '2', '3')
"""The values that ``-i/--ionice`` accepts (ionice's class names and numbers)."""

ACTIONS = ('backup_enabled', 'snapshot_enabled', 'rotate_enabled')
"""The properties behind ``-b``, ``-s`` and ``-r``."""

logger = logging.getLogger('rsync_system_backup')


class UsageError(Exception):
    """Raised for a command line that can't be understood."""


class CommandLine(object):

    """The outcome of parsing a command line."""

    def __init__(self):
        """Start with no options: every step enabled, default verbosity."""
        self.program_options = {}
        self.verbosity = 0
        self.show_help = False
        self.seen_options = set()


def parse_command_line(arguments, environment=os.environ):
    """
    Turn command line arguments into keyword arguments for :class:`.RsyncSystemBackup`.

    :param arguments: The arguments (a list of strings, without the program name).
    :param environment: The environment (for ``$RSYNC_MODULE_PATH``).
    :returns: A :class:`CommandLine`.
    :raises: :exc:`UsageError` for unknown, duplicate or invalid options and
             for a wrong number of positional arguments.
    """
    try:
        options, positional = getopt.gnu_getopt(arguments, SHORT_OPTIONS, LONG_OPTIONS)
    except getopt.GetoptError as e:
        raise UsageError("%s (see --help)." % e)
    parsed = CommandLine()
    for option, value in options:
        apply_option(parsed, option, value)
    if parsed.show_help:
        return parsed
    if len(positional) > 2:
        raise UsageError("Expected [SOURCE] DESTINATION, got %i arguments: %s (quote names with spaces)."
                         % (len(positional), ' '.join(map(repr, positional))))
    if len(positional) == 2:
        parsed.program_options['source'] = check_not_empty('SOURCE', positional.pop(0))
    if positional:
        parsed.program_options['destination'] = check_not_empty('DESTINATION', positional[0])
    elif not environment.get('RSYNC_MODULE_PATH'):
        parsed.show_help = True
    return parsed


def apply_option(parsed, option, value):
    """
    Record one option in a :class:`CommandLine`.

    :param parsed: The :class:`CommandLine` being built.
    :param option: The option as getopt reports it (``-b``, ``--mount``, ...).
    :param value: The option's value (a string, empty for flags).
    :raises: :exc:`UsageError` for a duplicate or invalid option.
    """
    settings = parsed.program_options
    if option in ('-b', '--backup'):
        enable_explicit_action(settings, 'backup_enabled')
    elif option in ('-s', '--snapshot'):
        enable_explicit_action(settings, 'snapshot_enabled')
    elif option in ('-r', '--rotate'):
        enable_explicit_action(settings, 'rotate_enabled')
    elif option in ('-x', '--exclude'):
        settings.setdefault('exclude_list', []).append(check_exclude_pattern(value))
    elif option in ('-v', '--verbose'):
        parsed.verbosity += 1
    elif option in ('-q', '--quiet'):
        parsed.verbosity -= 1
    elif option in ('-h', '--help'):
        parsed.show_help = True
    else:
        name = option_name(option)
        if name in parsed.seen_options:
            raise UsageError("The option %s was given twice: give it once." % name)
        parsed.seen_options.add(name)
        if name == '--mount':
            settings['mount_point'] = check_not_empty(name, value)
        elif name == '--crypto':
            settings['crypto_device'] = check_not_empty(name, value)
        elif name == '--tunnel':
            settings['tunnel'] = check_not_empty(name, value)
        elif name == '--ionice':
            settings['ionice'] = check_ionice_class(value)
        elif name == '--no-sudo':
            settings['sudo_enabled'] = False
        elif name == '--dry-run':
            settings['dry_run'] = True
        elif name == '--multi-fs':
            settings['multi_fs'] = True
        elif name == '--force':
            settings['force'] = True
        elif name == '--disable-notifications':
            settings['notifications_enabled'] = False


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
    :param action: One of :data:`ACTIONS`.
    """
    settings[action] = True
    for other in ACTIONS:
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


def check_exclude_pattern(value):
    """
    Refuse an exclude pattern that rsync would misread.

    :param value: The pattern (a string).
    :returns: The pattern.
    :raises: :exc:`UsageError` when it is empty or contains a line break.
    """
    check_not_empty('--exclude', value)
    if '\n' in value or '\r' in value:
        raise UsageError("The exclude pattern %r contains a line break: rsync can't match that; "
                         "use ? or * in its place." % value)
    return value


def check_ionice_class(value):
    """
    Refuse an I/O scheduling class that ionice doesn't know.

    :param value: The class (a string).
    :returns: The class.
    :raises: :exc:`UsageError` for anything but :data:`IONICE_CLASSES`.
    """
    if value not in IONICE_CLASSES:
        raise UsageError("Invalid --ionice class %r: use idle, best-effort or realtime (lower case)." % value)
    return value


def configure_logging(verbosity):
    """
    Send log messages to the terminal, with colours where it supports them.

    :param verbosity: The number of ``-v`` options minus the number of ``-q`` options.
    """
    import coloredlogs
    level = logging.INFO - 10 * verbosity
    coloredlogs.install(level=max(logging.DEBUG, min(logging.CRITICAL, level)))


def connected_to_terminal():
    """:data:`True` when any of the standard streams is a terminal (so a person is watching)."""
    return any(stream is not None and stream.isatty() for stream in (sys.stdin, sys.stdout, sys.stderr))


def main(arguments=None):
    """
    Run the ``rsync-system-backup`` command.

    :param arguments: The command line arguments (defaults to ``sys.argv[1:]``).

    Exits with code 0 on success (or a quietly skipped run) and 1 on errors.
    """
    try:
        parsed = parse_command_line(sys.argv[1:] if arguments is None else arguments)
    except UsageError as e:
        sys.stderr.write("Error: %s\n" % e)
        sys.exit(1)
    if parsed.show_help:
        sys.stdout.write(USAGE_TEXT)
        return
    configure_logging(parsed.verbosity)
    sys.exit(run(parsed.program_options))


def run(program_options):
    """
    Run a backup and translate its outcome into an exit code.

    :param program_options: Keyword arguments for :class:`.RsyncSystemBackup`.
    :returns: The exit code (an integer).
    """
    from rsync_system_backup.exceptions import MissingBackupDiskError, RsyncSystemBackupError
    try:
        from rsync_system_backup import RsyncSystemBackup
        if program_options.pop('tunnel', None):
            raise UsageError("-t/--tunnel is not supported yet.")
        RsyncSystemBackup(**program_options).execute()
    except MissingBackupDiskError as e:
        if not connected_to_terminal():
            logger.info("Skipping backup: %s", e)
            return 0
        logger.error("Aborting due to error: %s", e)
        return 1
    except (RsyncSystemBackupError, UsageError) as e:
        logger.error("Aborting due to error: %s", e)
        return 1
    except Exception:
        logger.exception("Aborting due to an unexpected error (please report it with this traceback):")
        return 1
    return 0
