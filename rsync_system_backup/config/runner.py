"""
Running the jobs of a configuration file, one after the other, each with its hooks.

:class:`JobRunner` runs the jobs in the file's order: for each, a backup as
the command line runs one (:func:`.cli.run()`, with the ``before``,
``after`` and ``on-error`` hooks around it, see :mod:`.config.hooks`), or
the read-only action that the command line asks for. A job that fails
doesn't stop the later jobs; a signal stops the whole run at once (after
the cleanups of the job that runs), with exit code 128 plus its number.
Otherwise the run's exit code is the worst job's (see
:func:`.worst_exit_code()`).
"""

import logging
import sys

from rsync_system_backup.actions.options import STEP_PROPERTIES
from rsync_system_backup.cli import LOGGER_NAME, exit_code_of, run, stderr_is_terminal
from rsync_system_backup.config.hooks import JobHooks
from rsync_system_backup.config.outcomes import JobOutcome, worst_exit_code
from rsync_system_backup.exceptions import HookFailedError
from rsync_system_backup.integrations.metrics import metrics_from_summary, write_job_metrics
from rsync_system_backup.integrations.pings import Pinger

SIGNAL_EXIT_CODES = 128
"""The lowest exit code that means a signal stopped a job (128 plus the signal's number)."""

ACTION_IGNORES = ('source', 'keep_as') + STEP_PROPERTIES
"""The keyword arguments of a job that a read-only action leaves out (it only looks at the job's backup set)."""

logger = logging.getLogger(LOGGER_NAME)


class JobRunner(object):

    """
    Run the jobs of a configuration file, and keep each one's :class:`.JobOutcome`.

    Every job that starts goes through :meth:`start_job()` when it starts and
    :meth:`finish_job()` when it ends (also when a signal stops it), with its
    outcome.
    """

    def __init__(self, jobs, command_line):
        """
        Prepare a run.

        :param jobs: The jobs to run (a list of :class:`.Job`, see :func:`.load_jobs()`).
        :param command_line: The :class:`.CommandLine` of ``--config``: its
                             ``program_options`` (``--dry-run``, ``--wait``,
                             ``--full-check``, ``--disable-notifications``)
                             apply to every job, and its action (``--list``,
                             ...) runs for each job instead of a backup.
        """
        self.jobs = jobs
        self.command_line = command_line
        self.outcomes = []

    def run(self):
        """
        Run the jobs.

        :returns: The exit code of the run: 128 plus the signal's number when a
                  signal stopped it, otherwise the worst job's exit code.
        """
        from rsync_system_backup.processes.signals import Interrupted, stop_on_signals
        with stop_on_signals():
            try:
                for job in self.jobs:
                    outcome = self.run_job(job)
                    if outcome.exit_code >= SIGNAL_EXIT_CODES:
                        return outcome.exit_code
            except Interrupted as e:
                logger.error("Aborting: interrupted by %s.", e.signal_name)
                return e.exit_code
        return worst_exit_code(outcome.exit_code for outcome in self.outcomes)

    def run_job(self, job):
        """
        Run one job: a backup with its hooks, or the read-only action of the command line.

        :param job: A :class:`.Job`.
        :returns: The job's :class:`.JobOutcome`.
        :raises: :exc:`.Interrupted` when a signal arrives between the steps of the job.
        """
        from rsync_system_backup.processes.signals import Interrupted
        outcome = JobOutcome(job)
        self.outcomes.append(outcome)
        self.start_job(outcome)
        try:
            outcome.finish(self.look_at_set(outcome) if self.command_line.action else self.back_up(outcome))
        except Interrupted as e:
            outcome.message = "Interrupted by %s." % e.signal_name
            outcome.finish(e.exit_code)
            raise
        finally:
            if outcome.exit_code is not None:
                self.finish_job(outcome)
        return outcome

    @property
    def monitored(self):
        """
        Whether the jobs' ``ping-url`` and ``metrics-file`` hear of this run.

        :data:`True` for backups; a dry run or a read-only action (``--list``, ...) backs nothing up, so it
        would only make a monitoring service believe that one ran.
        """
        return not self.command_line.action and not self.command_line.program_options.get('dry_run', False)

    def start_job(self, outcome):
        """
        Note that a job starts, and tell its ``ping-url`` (see :mod:`.integrations.pings`).

        :param outcome: The job's :class:`.JobOutcome` (only its ``job`` and ``started`` are known).
        """
        logger.info("Starting job %s (%i of %i).", outcome.job.name, len(self.outcomes), len(self.jobs))
        if outcome.job.ping_url and self.monitored:
            Pinger(outcome.job.ping_url, job=outcome.job.name).start()

    def finish_job(self, outcome):
        """
        Note that a job has ended: tell its ``ping-url`` how, and update its ``metrics-file``.

        :param outcome: The job's :class:`.JobOutcome`, complete.

        Exit code 0 is a success ping, any other a failure ping, with the job's
        summary line as the body; the metrics file gets the job's samples (see
        :mod:`.integrations.metrics`). Neither can fail the job: a problem is a warning.
        """
        job = outcome.job
        if not outcome.succeeded:
            logger.warning("Job %s ended with exit code %i.", job.name, outcome.exit_code)
        if not self.monitored:
            return
        if job.ping_url:
            pinger = Pinger(job.ping_url, job=job.name)
            (pinger.success if outcome.succeeded else pinger.failure)(outcome.message or '')
        if job.metrics_file:
            write_job_metrics(job.metrics_file, metrics_from_summary(job.name, outcome.started, outcome.finished,
                                                                     outcome.exit_code, outcome.summary))

    def job_options(self, job):
        """
        Give the keyword arguments for :class:`.RsyncSystemBackup` of a job, with those of the command line.

        :param job: A :class:`.Job`.
        :returns: A new dict.
        """
        options = dict(job.program_options)
        options.update(self.command_line.program_options)
        if self.command_line.action:
            for keyword in ACTION_IGNORES:
                options.pop(keyword, None)
        return options

    def back_up(self, outcome):
        """
        Run a job's backup, with its hooks.

        A ``before`` hook that fails skips the backup; an ``after`` hook that
        fails fails the backup (the snapshot stays, rotation doesn't run);
        the ``on-error`` hook runs when the job's exit code isn't 0 (unless a
        signal stopped it). What the backup did is recorded in `outcome`.

        :param outcome: The job's :class:`.JobOutcome`.
        :returns: The job's exit code.
        :raises: :exc:`.Interrupted` when a signal arrives during the ``on-error`` hook.
        """
        job = outcome.job
        options = self.job_options(job)
        hooks = JobHooks(job, dry_run=options.get('dry_run', False))

        def run_before_hook():
            hooks.run('before')
            return 0
        exit_code = exit_code_of(run_before_hook, outcome=outcome)
        if exit_code == 0:
            options['after_snapshot'] = hooks.after_snapshot
            exit_code = run(options, outcome=outcome)
        if 0 < exit_code < SIGNAL_EXIT_CODES:
            snapshot = outcome.summary.snapshot_pathname if outcome.summary else None
            try:
                hooks.run('on-error', snapshot=snapshot, exit_code=exit_code, message=outcome.message)
            except HookFailedError as e:
                logger.error("%s", e)
        return exit_code

    def look_at_set(self, outcome):
        """
        Run the command line's read-only action on a job's backup set.

        :param outcome: The job's :class:`.JobOutcome`.
        :returns: The action's exit code.
        """
        from rsync_system_backup.actions.dispatch import run_action
        command_line = self.command_line
        if not command_line.json:
            # Which job's set the lines below are about (--json takes one job).
            sys.stdout.write("%s\n" % outcome.job.title)
            sys.stdout.flush()
        show_progress = stderr_is_terminal() and command_line.verbosity >= 0
        options = self.job_options(outcome.job)
        return exit_code_of(lambda: run_action(command_line.action, command_line.action_value, options,
                                               show_progress=show_progress), outcome=outcome)
