"""
The ``rsync-system-backup`` command line interface.

:func:`main()` parses the command line (see :mod:`.command_line`), builds a
:class:`.RsyncSystemBackup` from it and runs it, or runs a read-only action;
with ``--config=FILE`` it loads the file's jobs and runs them (see :mod:`.config`).
Parsing imports nothing heavy, so ``--help`` and usage errors answer at once.
"""

import sys

from rsync_system_backup.command_line import UsageError, parse_command_line
from rsync_system_backup.usage import USAGE_TEXT

EXIT_BUSY = 75
"""The exit code when another run holds the destination's lock (EX_TEMPFAIL: try again later)."""

EXIT_INCOMPLETE = 2
"""
The exit code of a backup that completed with errors: rsync couldn't transfer
some files (its exit code 23), the snapshot was made without them.
"""

LOG_FILE_FORMAT = '%(asctime)s rsync-system-backup[%(process)d] %(levelname)s %(message)s'
"""The format of the lines in the ``--log-file``."""

LOGGER_NAME = 'rsync_system_backup'
"""The logger that :func:`exit_code_of()` reports the outcome on (:mod:`logging` is imported only for a run)."""


def configure_logging(verbosity, log_file=None, dry_run=False):
    """
    Send log messages to the terminal (with colours where it supports them), the system log and a file.

    An rsync daemon discards what its ``post-xfer exec`` command writes, so
    such runs report in the system log (as in version 1.1; see
    :mod:`.reporting.system_log` for which messages go there, and set
    ``$COLOREDLOGS_SYSLOG`` to ``false`` to turn it off) and in the log file.

    Without a terminal and without ``-v``, standard error and the system log
    get only the one-line summary, warnings and errors (see :mod:`.reporting.unattended`),
    except in a dry run, which is run to see what a backup would do.

    :param verbosity: The number of ``-v`` options minus the number of ``-q`` options.
    :param log_file: The pathname of a file to append the messages to (a string or :data:`None`).
    :param dry_run: :data:`True` for a dry run.
    :raises: :exc:`~exceptions.OSError` when the log file can't be opened.
    """
    import logging

    import coloredlogs

    from rsync_system_backup.reporting.system_log import enable_system_log
    from rsync_system_backup.reporting.unattended import find_log_level, keep_unattended_output_short
    level = find_log_level(verbosity)
    coloredlogs.install(level=level)
    enable_system_log(on_terminal=stderr_is_terminal())
    if verbosity <= 0 and not dry_run and not stderr_is_terminal():
        keep_unattended_output_short(logging.getLogger().handlers)
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
    :data:`EXIT_INCOMPLETE` when rsync couldn't transfer some files,
    :data:`EXIT_BUSY` when another run holds the destination's lock and 128
    plus the signal's number when a signal stopped the run (see :func:`run()`).
    With ``--config``, the worst exit code of the jobs (see :meth:`.JobRunner.run()`).
    """
    try:
        parsed = parse_command_line(sys.argv[1:] if arguments is None else arguments)
    except UsageError as e:
        sys.stderr.write("Error: %s\n" % e)
        sys.exit(1)
    if parsed.show_help:
        sys.stdout.write(USAGE_TEXT)
        return
    if parsed.show_version:
        from rsync_system_backup import __version__
        sys.stdout.write("rsync-system-backup %s\n" % __version__)
        return
    jobs = load_configuration(parsed) if parsed.config_file else None
    if parsed.check_config:
        from rsync_system_backup.config.report import format_jobs
        sys.stdout.write(format_jobs(parsed.config_file, jobs))
        return
    if parsed.show_excludes:
        if jobs is None:
            show_excludes(parsed.program_options)
        for job in jobs or []:
            # A comment in rsync's syntax of exclude files, which names the job.
            sys.stdout.write("# %s\n" % job.title)
            show_excludes(job.program_options)
        return
    skip_final_collection()
    try:
        configure_logging(parsed.verbosity, parsed.log_file, dry_run=parsed.program_options.get('dry_run', False))
    except OSError as e:
        sys.stderr.write("Error: Can't open the log file %s: %s\n" % (parsed.log_file, e.strerror or e))
        sys.exit(1)
    if jobs is not None:
        from rsync_system_backup.config.runner import JobRunner
        sys.exit(JobRunner(jobs, parsed).run())
    if parsed.action:
        from rsync_system_backup.actions.dispatch import run_action
        sys.exit(exit_code_of(lambda: run_action(parsed.action, parsed.action_value, parsed.program_options,
                                                 show_progress=stderr_is_terminal() and parsed.verbosity >= 0)))
    sys.exit(run(parsed.program_options))


def load_configuration(parsed):
    """
    Load and check the configuration file of ``--config`` (see :func:`.load_jobs()`), or exit with its problems.

    :param parsed: The :class:`.CommandLine`.
    :returns: The jobs to run (a list of :class:`.Job`).

    Each problem of the file is one line that starts with ``Error:``; the exit code is 1.
    """
    from rsync_system_backup.config.loading import load_jobs
    from rsync_system_backup.exceptions import ConfigError
    try:
        jobs = load_jobs(parsed.config_file, parsed.job_names)
    except ConfigError as e:
        sys.stderr.write(''.join("Error: %s\n" % problem for problem in e.problems))
        sys.exit(1)
    if parsed.json and len(jobs) > 1:
        sys.stderr.write("Error: --json with --config lists one job's backup set: add --job=NAME.\n")
        sys.exit(1)
    return jobs


def skip_final_collection():
    """
    Let the interpreter end without collecting the objects of a finished run one by one (a run ends sooner).

    When the interpreter ends, its last garbage collection goes through every
    object that the imported libraries made; a run imports some 250 modules,
    and that collection took about 10 ms of each run, every hour. At the very
    end (an :mod:`atexit` function, so never while :func:`main()` runs inside
    another program's process, such as a test suite) :func:`gc.freeze()`
    takes them out of that collection; the operating system frees the memory
    all the same.
    """
    import atexit
    import gc
    atexit.register(gc.freeze)


def show_excludes(program_options):
    """
    Print what a backup with these options leaves out, one pattern per line, and change nothing (``--show-excludes``).

    First the absolute paths (see :meth:`.excluded_paths()`; the backup
    itself only counts when DESTINATION was given), then the ``-x`` patterns.

    :param program_options: Keyword arguments for :class:`.RsyncSystemBackup`.
    """
    from rsync_system_backup import RsyncSystemBackup
    from rsync_system_backup.exceptions import RsyncSystemBackupError
    try:
        program = RsyncSystemBackup(**program_options)
        paths = program.excluded_paths() if 'destination' in program_options else program.excluded_roots
    except RsyncSystemBackupError as e:
        sys.stderr.write("Error: %s\n" % e)
        sys.exit(1)
    sys.stdout.write(''.join(pattern + '\n' for pattern in paths + program.exclude_list))


def run(program_options, outcome=None):
    """
    Run a backup and translate its outcome into an exit code.

    :param program_options: Keyword arguments for :class:`.RsyncSystemBackup`.
    :param outcome: A :class:`.JobOutcome` whose ``summary`` (the run's
                    :class:`.BackupSummary`, also after a failure) and
                    ``message`` (the summary line, or the line that says how
                    the run failed) are filled in, or :data:`None`.
    :returns: The exit code (an integer, see :func:`exit_code_of()`).
    """
    def backup():
        import logging

        from rsync_system_backup import RsyncSystemBackup
        from rsync_system_backup.processes.signals import stop_on_signals
        from rsync_system_backup.reporting.summary import report_summary
        from rsync_system_backup.reporting.unattended import VERBOSE
        on_terminal = stderr_is_terminal()
        logger = logging.getLogger(LOGGER_NAME)
        # -q hides the progress along with the informational messages; -v lists a dry run's changes.
        show_progress = on_terminal and logger.isEnabledFor(logging.INFO)
        with stop_on_signals():
            program = RsyncSystemBackup(show_progress=show_progress, list_changes=logger.isEnabledFor(VERBOSE),
                                        **program_options)
            try:
                program.execute()
            finally:
                if outcome is not None:
                    outcome.summary = program.summary
        report_summary(program.summary, on_terminal)
        if outcome is not None:
            outcome.message = program.summary.format_line()
        return EXIT_INCOMPLETE if program.summary.incomplete else 0
    return exit_code_of(backup, backup=True, outcome=outcome)


def exit_code_of(work, backup=False, outcome=None):
    """
    Do a backup or a read-only action, and report how it ended and translate that into an exit code.

    :param work: A function without arguments that does it and returns its exit code (an integer).
    :param backup: :data:`True` for a backup, :data:`False` for a read-only action.
    :param outcome: A :class:`.JobOutcome` whose ``message`` becomes the line
                    that reports a failure or a skipped run, or :data:`None`.
    :returns: The exit code of `work`, or after an error (reported in one line,
              or with a traceback when unexpected) 1; for a backup
              :data:`EXIT_BUSY` when another run holds the lock, and 0 when
              the backup disk isn't connected and nobody is watching (the run
              is skipped). After a signal: 128 plus the signal's number.
    """
    import logging

    from rsync_system_backup.exceptions import BackupInProgressError, MissingBackupDiskError, RsyncSystemBackupError
    from rsync_system_backup.processes.signals import Interrupted
    logger = logging.getLogger(LOGGER_NAME)

    def report(level, message, *args, **options):
        # Logged as always; a job's outcome keeps the line too.
        logger.log(level, message, *args, **options)
        if outcome is not None:
            outcome.message = message % args
    try:
        return work()
    except Interrupted as e:
        report(logging.ERROR, "Aborting: interrupted by %s%s.", e.signal_name,
               "; every cleanup has run and the earlier snapshots are intact" if backup else "")
        return e.exit_code
    except RsyncSystemBackupError as e:
        if backup and isinstance(e, MissingBackupDiskError) and not connected_to_terminal():
            from rsync_system_backup.reporting.unattended import SUMMARY
            report(logging.INFO, "Skipping backup: %s", e, extra=SUMMARY)
            return 0
        report(logging.ERROR, "Aborting due to error: %s", e)
        return EXIT_BUSY if backup and isinstance(e, BackupInProgressError) else 1
    except Exception as e:
        logger.exception("Aborting due to an unexpected error (please report it with this traceback):")
        if outcome is not None:
            outcome.message = "Aborting due to an unexpected error: %r" % e
        return 1
