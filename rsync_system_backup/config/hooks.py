"""
The hooks of a job: commands that run before it, after its snapshot and when it fails.

A hook is a command of this system: a string, which runs with ``bash -c``,
or a list of the program and its arguments, which runs without a shell. It
runs in a session of its own, with the job's facts in its environment
(:func:`hook_environment()`); what it writes goes to the log, and a hook
that runs longer than the job's ``hook-timeout`` is stopped (SIGTERM to its
whole process group, SIGKILL after a grace period) and counts as failed. A
hook that fails raises :exc:`HookFailedError`. In a dry run, hooks don't
run: the log says which would.
"""

import logging
import os
import shlex
import signal
import subprocess
import time

from humanfriendly import format_timespan

from rsync_system_backup.exceptions import HookFailedError, RsyncSystemBackupError
from rsync_system_backup.processes.signals import GRACE_PERIOD, status_fields

POLL_INTERVAL = 0.05
"""Seconds between the looks at a stopped hook's processes."""

logger = logging.getLogger(__name__)


class JobHooks(object):

    """The hooks of one job, run with the job's facts in their environment."""

    def __init__(self, job, dry_run=False):
        """
        Prepare to run a job's hooks.

        :param job: The :class:`.Job`.
        :param dry_run: :data:`True` to only log which hooks would run.
        """
        self.job = job
        self.dry_run = dry_run

    def run(self, key, snapshot=None, exit_code=None, message=None):
        """
        Run one of the job's hooks, when it has that hook.

        :param key: ``before``, ``after`` or ``on-error``.
        :param snapshot: The pathname of the job's new snapshot (a string), or :data:`None`.
        :param exit_code: The job's exit code so far (an integer), or :data:`None` before it runs.
        :param message: The job's summary line so far, or the line that says why it failed (a string), or :data:`None`.
        :raises: :exc:`HookFailedError` when the hook fails.
        """
        command = self.job.hook(key)
        if command is None:
            return
        label = "the %s hook of job %s" % (key, self.job.name)
        if self.dry_run:
            logger.info("Would run %s: %s", label, show_command(command))
            return
        environment = hook_environment(self.job, snapshot, exit_code, message)
        run_hook(label, command, environment, self.job.hook_timeout)

    def after_snapshot(self, program):
        """
        Run the ``after`` hook of a backup that has made its snapshot (see :attr:`.RsyncSystemBackup.after_snapshot`).

        :param program: The :class:`.RsyncSystemBackup` that runs the job.
        :raises: :exc:`HookFailedError` when the hook fails (the run fails with it, before rotation).
        """
        from rsync_system_backup.cli import EXIT_INCOMPLETE
        summary = program.summary
        self.run('after', snapshot=summary.snapshot_pathname, exit_code=EXIT_INCOMPLETE if summary.incomplete else 0,
                 message=summary.format_line())


def hook_environment(job, snapshot=None, exit_code=None, message=None):
    """
    Give the environment variables that tell a hook about its job.

    :param job: The :class:`.Job`.
    :param snapshot: See :meth:`JobHooks.run()`.
    :param exit_code: See :meth:`JobHooks.run()`.
    :param message: See :meth:`JobHooks.run()`.
    :returns: A dict of ``RSB_JOB`` (the job's name), ``RSB_SOURCE``,
              ``RSB_DESTINATION`` (as the job gives them), ``RSB_SNAPSHOT``,
              ``RSB_EXIT_CODE`` and ``RSB_SUMMARY`` (empty when unknown).
    """
    return dict(
        RSB_JOB=job.name,
        RSB_SOURCE=job.program_options.get('source', '/'),
        RSB_DESTINATION=job.program_options['destination'],
        RSB_SNAPSHOT=snapshot or '',
        RSB_EXIT_CODE='' if exit_code is None else str(exit_code),
        RSB_SUMMARY=message or '',
    )


def show_command(command):
    """
    Show a hook's command for the log.

    :param command: A string (for bash) or a list of strings.
    :returns: A string.
    """
    return command if isinstance(command, str) else ' '.join(map(shlex.quote, command))


def run_hook(label, command, environment, timeout, grace_period=GRACE_PERIOD):
    """
    Run a hook, log what it writes, and stop it when it runs too long.

    :param label: What the hook is, for the log (``the before hook of job home``).
    :param command: A string (run with ``bash -c``) or a list of the program and its arguments.
    :param environment: Environment variables to add (a dict).
    :param timeout: The seconds the hook may run (a number).
    :param grace_period: The seconds between SIGTERM and SIGKILL when the hook is stopped.
    :raises: :exc:`HookFailedError` when the hook can't start, exits with a
             status other than 0 or runs longer than `timeout`.
    """
    from rsync_system_backup.processes.sessions import create_local_context
    shell = isinstance(command, str)
    logger.info("Running %s: %s", label, show_command(command))
    try:
        process = create_local_context().prepare(*([command] if shell else command), shell=shell, asynchronous=True,
                                                 capture=True, merge_streams=True, environment=environment,
                                                 own_session=True, check=False, tty=False)
    except RsyncSystemBackupError as e:
        raise HookFailedError("%s can't run: %s" % (capitalize(label), e))
    try:
        process.start()
    except OSError as e:
        process.cleanup()
        raise HookFailedError("%s can't run: %s: %s." % (capitalize(label), command[0], e.strerror))
    if process.subprocess is None:
        # executor's answer to a program that isn't there.
        raise HookFailedError("%s can't run: %s: No such file or directory." % (capitalize(label), command[0]))
    try:
        process.subprocess.wait(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        stop_process_group(process.subprocess, grace_period)
        timed_out = True
    except BaseException:
        signal_group(process.pid, signal.SIGKILL)
        raise
    process.wait(check=False, use_spinner=False)
    lines = [line for line in process.output.splitlines() if line.strip()]
    failed = timed_out or process.returncode != 0
    for line in lines:
        logger.log(logging.WARNING if failed else logging.INFO, "Output of %s: %s", label, line)
    if timed_out:
        raise HookFailedError("%s ran longer than its hook-timeout of %s and was stopped."
                              % (capitalize(label), format_timespan(timeout)))
    if failed:
        last_words = ": %s" % lines[-1].strip() if lines else "."
        raise HookFailedError("%s failed with exit code %i%s" % (capitalize(label), process.returncode, last_words))


def capitalize(text):
    """Give a text with its first letter in upper case (the rest unchanged)."""
    return text[:1].upper() + text[1:]


def signal_group(group, number):
    """
    Send a signal to a process group.

    :param group: The group's id (the pid of the process that started it).
    :param number: The signal's number.
    :returns: :data:`False` when the group has no process left, else :data:`True`.
    """
    try:
        os.killpg(group, number)
    except ProcessLookupError:
        return False
    return True


def group_members(group):
    """
    Find the processes of a process group that still run (zombies don't count).

    :param group: The group's id.
    :returns: Their process ids (a list of integers).
    """
    members = []
    for name in os.listdir('/proc'):
        if name.isdigit():
            try:
                fields = status_fields(int(name))
            except (OSError, IndexError):
                continue
            if fields[0] != 'Z' and int(fields[2]) == group:
                members.append(int(name))
    return members


def stop_process_group(process, grace_period):
    """
    Stop a hook and every process it started: SIGTERM, then SIGKILL to those left after the grace period.

    :param process: The hook's :class:`subprocess.Popen` (which leads a session and process group of its own).
    :param grace_period: Seconds (a number).
    """
    signal_group(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_period
    while group_members(process.pid) and time.monotonic() < deadline:
        process.poll()
        time.sleep(POLL_INTERVAL)
    signal_group(process.pid, signal.SIGKILL)
    process.wait()
