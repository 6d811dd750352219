"""
The ``rsync-system-backup`` command line interface.

:func:`main()` parses the command line with :mod:`getopt`, builds a
:class:`.RsyncSystemBackup` from it and runs it. Parsing imports nothing
heavy, so ``--help`` and usage errors answer at once.
"""

import getopt
import os
import sys

from rsync_system_backup import DEFAULT_ROTATION_SCHEME
from rsync_system_backup.exceptions import InvalidOptionError
from rsync_system_backup.rotation.schemes import FREQUENCIES, override_rotation_scheme, parse_retention
from rsync_system_backup.usage import USAGE_TEXT

SHORT_OPTIONS = 'bsrm:c:t:i:unx:fvqh'
"""The short options, in :func:`getopt.gnu_getopt()` syntax."""

LONG_OPTIONS = [
    'backup', 'snapshot', 'rotate', 'mount=', 'crypto=', 'tunnel=', 'ionice=', 'no-sudo',
    'dry-run', 'multi-fs', 'exclude=', 'force', 'disable-notifications', 'verbose', 'quiet', 'help',
    'daemon-port=', 'password-file=', 'log-file=', 'accept-existing', 'wait',
    'minutely=', 'hourly=', 'daily=', 'weekly=', 'monthly=', 'yearly=', 'prefer-recent', 'relaxed',
    'snapshot-method=',
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
    '--wait': ('wait_for_lock', True),
    '--prefer-recent': ('prefer_recent', True),
    '--relaxed': ('strict', False),
}
"""The options without a value that set a property of :class:`.RsyncSystemBackup`: the property and its value."""

EXIT_BUSY = 75
"""The exit code when another run holds the destination's lock (EX_TEMPFAIL: try again later)."""

IONICE_CLASSES = ('idle', 'best-effort', 'realtime', '1', '2', '3')
"""The values that ``-i/--ionice`` accepts (ionice's class names and numbers)."""

ACTIONS = ('backup_enabled', 'snapshot_enabled', 'rotate_enabled')
"""The properties behind ``-b``, ``-s`` and ``-r``."""

LOG_FILE_FORMAT = '%(asctime)s rsync-system-backup[%(process)d] %(levelname)s %(message)s'
"""The format of the lines in the ``--log-file``."""

LOGGER_NAME = 'rsync_system_backup'
"""The logger that :func:`run()` reports the outcome on (:mod:`logging` is imported only for a run)."""


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
        self.log_file = None
        self.rotation_overrides = {}


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
    if parsed.rotation_overrides:
        try:
            scheme = override_rotation_scheme(DEFAULT_ROTATION_SCHEME, parsed.rotation_overrides)
        except InvalidOptionError as e:
            raise UsageError(str(e))
        parsed.program_options['rotation_scheme'] = scheme
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
        if name in FLAG_SETTINGS:
            property_name, flag_value = FLAG_SETTINGS[name]
            settings[property_name] = flag_value
        elif name == '--mount':
            settings['mount_point'] = check_not_empty(name, value)
        elif name == '--crypto':
            settings['crypto_device'] = check_not_empty(name, value)
        elif name == '--tunnel':
            settings['tunnel'] = check_not_empty(name, value)
        elif name == '--daemon-port':
            settings['daemon_port'] = check_port_number(name, value)
        elif name == '--password-file':
            settings['password_file'] = check_not_empty(name, value)
        elif name == '--log-file':
            parsed.log_file = check_not_empty(name, value)
        elif name == '--ionice':
            settings['ionice'] = check_ionice_class(value)
        elif name == '--snapshot-method':
            settings['snapshot_method'] = check_snapshot_method(value)
        elif name[2:] in FREQUENCIES:
            parsed.rotation_overrides[name[2:]] = check_retention(name, value)


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


def check_port_number(name, value):
    """
    Refuse a value that is not a TCP port number.

    :param name: What the value is for (used in the message).
    :param value: The value (a string).
    :returns: The port number (an integer).
    :raises: :exc:`UsageError` unless the value is a number from 1 to 65535.
    """
    if not (value.isdigit() and 0 < int(value) < 65536):
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
    :raises: :exc:`UsageError` when it is empty or contains a line break.
    """
    check_not_empty('--exclude', value)
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
    try:
        return check_method_name(value)
    except InvalidOptionError as e:
        raise UsageError(str(e))


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


def configure_logging(verbosity, log_file=None):
    """
    Send log messages to the terminal (with colours where it supports them), the system log and a file.

    An rsync daemon discards what its ``post-xfer exec`` command writes, so
    such runs report in the system log (as in version 1.1; see
    :mod:`.system_log` for which messages go there, and set
    ``$COLOREDLOGS_SYSLOG`` to ``false`` to turn it off) and in the log file.

    :param verbosity: The number of ``-v`` options minus the number of ``-q`` options.
    :param log_file: The pathname of a file to append the messages to (a string or :data:`None`).
    :raises: :exc:`~exceptions.OSError` when the log file can't be opened.
    """
    import logging

    import coloredlogs

    from rsync_system_backup.reporting.system_log import enable_system_log
    level = max(logging.DEBUG, min(logging.CRITICAL, logging.INFO - 10 * verbosity))
    coloredlogs.install(level=level)
    enable_system_log(on_terminal=stderr_is_terminal())
    if log_file:
        handler = logging.FileHandler(log_file)
        handler.setLevel(level)
        handler.setFormatter(logging.Formatter(LOG_FILE_FORMAT))
        logging.getLogger().addHandler(handler)


def connected_to_terminal():
    """:data:`True` when any of the standard streams is a terminal (so a person is watching)."""
    return any(stream is not None and stream.isatty() for stream in (sys.stdin, sys.stdout, sys.stderr))


def stderr_is_terminal():
    """
    Check whether standard error, where messages and progress go, is a terminal.

    :returns: :data:`True` on a terminal (progress, colours and a summary
              block), :data:`False` under cron, systemd and the like (no
              progress or colours, and a one-line summary).
    """
    return sys.stderr is not None and sys.stderr.isatty()


def main(arguments=None):
    """
    Run the ``rsync-system-backup`` command.

    :param arguments: The command line arguments (defaults to ``sys.argv[1:]``).

    Exits with code 0 on success (or a quietly skipped run), 1 on errors,
    :data:`EXIT_BUSY` when another run holds the destination's lock and 128
    plus the signal's number when a signal stopped the run (see :func:`run()`).
    """
    try:
        parsed = parse_command_line(sys.argv[1:] if arguments is None else arguments)
    except UsageError as e:
        sys.stderr.write("Error: %s\n" % e)
        sys.exit(1)
    if parsed.show_help:
        sys.stdout.write(USAGE_TEXT)
        return
    try:
        configure_logging(parsed.verbosity, parsed.log_file)
    except OSError as e:
        sys.stderr.write("Error: Can't open the log file %s: %s\n" % (parsed.log_file, e.strerror or e))
        sys.exit(1)
    sys.exit(run(parsed.program_options))


def run(program_options):
    """
    Run a backup and translate its outcome into an exit code.

    :param program_options: Keyword arguments for :class:`.RsyncSystemBackup`.
    :returns: The exit code (an integer).
    """
    import logging

    from rsync_system_backup.exceptions import BackupInProgressError, MissingBackupDiskError, RsyncSystemBackupError
    from rsync_system_backup.signals import Interrupted, stop_on_signals
    logger = logging.getLogger(LOGGER_NAME)
    try:
        from rsync_system_backup import RsyncSystemBackup
        from rsync_system_backup.reporting.summary import report_summary
        on_terminal = stderr_is_terminal()
        # -q hides the progress along with the informational messages.
        show_progress = on_terminal and logger.isEnabledFor(logging.INFO)
        with stop_on_signals():
            program = RsyncSystemBackup(show_progress=show_progress, **program_options)
            program.execute()
        report_summary(program.summary, on_terminal)
    except Interrupted as e:
        logger.error("Aborting: interrupted by %s; every cleanup has run and the earlier snapshots are intact.",
                     e.signal_name)
        return e.exit_code
    except BackupInProgressError as e:
        logger.error("Aborting due to error: %s", e)
        return EXIT_BUSY
    except MissingBackupDiskError as e:
        if not connected_to_terminal():
            logger.info("Skipping backup: %s", e)
            return 0
        logger.error("Aborting due to error: %s", e)
        return 1
    except RsyncSystemBackupError as e:
        logger.error("Aborting due to error: %s", e)
        return 1
    except Exception:
        logger.exception("Aborting due to an unexpected error (please report it with this traceback):")
        return 1
    return 0
