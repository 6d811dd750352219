"""
The transfer step: run rsync from the source to the destination and judge its exit code.

:func:`transfer_changes()` builds the command line (see
:func:`.build_rsync_command()`), runs it in the source's execution context
while :class:`.TransferMonitor` follows its output, and turns a failure
into a :exc:`.TransferFailedError` whose message explains it.
"""

import logging

from humanfriendly import Timer, format_size

from rsync_system_backup.destinations import Destination
from rsync_system_backup.exceptions import BackupInProgressError
from rsync_system_backup.processes.waiting import wait_for_exit
from rsync_system_backup.backup_set.operations import make_directory
from rsync_system_backup.transfer.command import WARNING_EXIT_CODES, build_rsync_command
from rsync_system_backup.transfer.errors import (
    ErrorOutputRecorder,
    RsyncFailedError,
    explain_rsync_failure,
    find_busy_module,
)
from rsync_system_backup.transfer.output import PARTIAL_TRANSFER, TransferStatistics
from rsync_system_backup.transfer.plan import (
    APPLY_OPTIONS,
    IN_PLACE_APPLY_OPTIONS,
    PLAN_ENVIRONMENT,
    PLAN_OPTIONS,
    ROOT_OPTIONS,
    SourceView,
    drop_redirected_names,
    files_from,
    in_place_names,
    read_plan,
)
from rsync_system_backup.transfer.plan_choice import DRY_RUN_FALLBACK, IN_PLACE_FALLBACK
from rsync_system_backup.transfer.progress import TransferMonitor

PLANNED_PASSES = 2
"""How many times a planned transfer plans at most (see :func:`transfer_planned()`)."""

SUDO_RSYNC = 'sudo -n rsync'
"""How rsync on an SSH destination runs when the SSH user isn't root (see :func:`.check_sudo()`)."""

logger = logging.getLogger(__name__)


def rsync_location(destination, target=None):
    """
    Render a destination for rsync's command line.

    :param destination: The :class:`.Destination` of the backup.
    :param target: A :class:`.TransferTarget`, or :data:`None` to write to
                   the destination itself.
    :returns: The destination in rsync's syntax, pointed at the target's
              directory on the destination's system (a string). A tunnel
              changes nothing here: rsync reaches the daemon through it by
              itself (see :attr:`.OpenTunnel.environment`).
    """
    if destination.is_remote_shell:
        # The user travels in --rsh (see ConfiguredRemoteContext.rsync_shell), before ssh's '--'.
        return Destination(hostname=destination.hostname,
                           directory=target.directory if target else destination.directory).expression
    if target is not None:
        return target.directory
    return destination.expression


def destination_options(backup):
    """
    Choose the rsync options that depend on the kind of destination.

    :param backup: The :class:`.RsyncSystemBackup` being run.
    :returns: For SSH destinations ``--protect-args`` (so the remote shell
              never interprets the directory's name) and ``--rsh`` (with
              the user, ``--`` before the host, and while the shared
              connection is open, the options to send the transfer through it),
              and ``--rsync-path`` to run rsync there through sudo when
              the SSH user isn't root and sudo is enabled (so that the files
              keep their owners, like the other commands that run there);
              ``--password-file`` when a password file is set (a list of
              strings).
    """
    options = []
    if backup.destination.is_remote_shell:
        options.append('--protect-args')
        options.append('--rsh=%s' % backup.destination_context.rsync_shell)
        if backup.sudo_enabled and not backup.destination_context.logs_in_as_root:
            options.append('--rsync-path=%s' % SUDO_RSYNC)
    if backup.password_file:
        options.append('--password-file=%s' % backup.password_file)
    return options


def transfer_changes(backup, tunnel=None, target=None, origin=None, choice=None):
    """
    Transfer the source to the destination with rsync.

    :param backup: The :class:`.RsyncSystemBackup` being run.
    :param tunnel: An :class:`.OpenTunnel` to the destination's rsync
                   daemon, or :data:`None` to connect directly.
    :param target: Where rsync writes (a :class:`.TransferTarget`), or
                   :data:`None` for the destination itself.
    :param origin: What rsync reads (a :class:`.SourceSnapshot`), or :data:`None` for the live source.
    :param choice: The :class:`.PlanChoice` that may give a planned transfer its plan, or :data:`None`.
    :returns: The :class:`.TransferStatistics` that rsync reported.
    :raises: :exc:`.RsyncFailedError` (a :exc:`.TransferFailedError`) for any exit code but 0, 23 and 24,
             but :exc:`.BackupInProgressError` when an rsync daemon's module is busy
             (see :func:`.find_busy_module()`).

    Exit codes 23 and 24 (some files couldn't be read, or vanished) are
    logged as warnings and the backup goes on; the statistics record them
    (see :attr:`.TransferStatistics.incomplete`), so that the run ends with
    :data:`.EXIT_INCOMPLETE` after 23. rsync's error messages are
    shown as they come and the last of them explain a failure. Its standard
    output is read as it comes: the overall progress is shown when asked
    for, and the statistics are collected.
    """
    destination = backup.destination
    if not backup.dry_run and not destination.is_daemon:
        make_directory(backup.destination_context, target.directory if target else destination.directory,
                       sudo=backup.sudo_enabled)
    monitor = TransferMonitor(show_progress=backup.show_progress)
    logger.info("Transferring %s to %s ..", backup.source, destination.expression)
    if backup.dry_run and not backup.list_changes:
        logger.info("Counting the changes for the summary without listing them (-v lists them).")
    timer = Timer()
    with ErrorOutputRecorder(write=monitor.progress_line.write_above if monitor.progress_line else None) as errors:
        runner = RsyncRunner(backup, errors, target, tunnel, origin)
        plan = choose_plan(choice, target)
        if target is not None and target.protect is not None and (plan is not None or not target.needs_send_plan):
            rsync, returncode = transfer_planned(runner, monitor, target, plan)
        else:
            rsync = runner.run(list(monitor.rsync_options), monitor=monitor)
            returncode = rsync.returncode
    judged = errors.judge(returncode)
    if judged != returncode:
        logger.warning("rsync exited with code %i but couldn't set the attributes of %i file(s) (see its messages "
                       "above); the backup goes on, counted as incomplete, and the next run sends them again.",
                       returncode, errors.uncounted_failures)
        returncode = judged
    elif returncode in WARNING_EXIT_CODES:
        logger.warning("rsync exited with code %i: %s (%s); the backup goes on.", returncode,
                       WARNING_EXIT_CODES[returncode], errors.describe_affected_files(returncode))
    elif returncode != 0:
        busy = find_busy_module(returncode, errors.lines)
        if busy:
            raise BackupInProgressError("The rsync daemon refused the transfer to %s (%s): another run is working "
                                        "on that module; let it finish, or try again later." % (destination.expression,
                                                                                                busy))
        full = describe_full_destination(backup.measure_disk_space()) if errors.disk_full else ''
        explanation = explain_rsync_failure(returncode, errors.lines, destination, tunnel)
        raise RsyncFailedError(rsync, "%srsync failed with %s; no snapshot was made and the earlier snapshots "
                                      "are intact." % (full, explanation))
    statistics = monitor.statistics
    statistics.exit_code = returncode
    statistics.failed_files = errors.failed_files
    statistics.vanished_files = errors.vanished_files
    logger.info("Transferred %s to %s in %s.", backup.source, destination.expression, timer)
    if target and target.directory != destination.directory:
        # rsync built a new tree, where files gone from the source are simply
        # missing: it deleted nothing, so it can't count what went away.
        statistics.deleted_files = None
    return statistics


def choose_plan(choice, target):
    """
    Take the plan from the source's snapshots, for a target that transfers with a plan.

    :param choice: The :class:`.PlanChoice`, or :data:`None`.
    :param target: The :class:`.TransferTarget`, or :data:`None`.
    :returns: A :class:`.SendPlan`, or :data:`None` when the transfer plans
              with rsync's dry run (safe-hardlink, and the in-place methods
              when the manifest is built from the plan's names) or is one
              rsync (the in-place methods otherwise), or isn't a planned one.
    """
    if choice is None or target is None or target.protect is None:
        return None
    return choice.plan(IN_PLACE_FALLBACK if target.needs_send_plan else DRY_RUN_FALLBACK)


class RsyncRunner(object):

    """Runs the rsync commands of one transfer in the source's context, all with the run's options."""

    def __init__(self, backup, errors, target=None, tunnel=None, origin=None):
        """
        Prepare to run rsync.

        :param backup: The :class:`.RsyncSystemBackup` being run.
        :param errors: The :class:`.ErrorOutputRecorder` that gets rsync's error output.
        :param target: Where rsync writes (a :class:`.TransferTarget`), or :data:`None`.
        :param tunnel: An :class:`.OpenTunnel`, or :data:`None`.
        :param origin: What rsync reads (a :class:`.SourceSnapshot`), or :data:`None` for the live source.
        """
        self.backup = backup
        self.errors = errors
        self.target = target
        self.source = origin.directory if origin else backup.source
        self.excluded_paths = origin.filters if origin else backup.excluded_paths()
        self.environment = dict(HOME='', **(tunnel.environment if tunnel else {}))

    def command(self, options, delete=True):
        """
        Build an rsync command line with the run's options (see :func:`.build_rsync_command()`).

        :param options: More rsync options (a list of strings).
        :param delete: :data:`False` to leave out ``--delete``.
        :returns: A list of strings.
        """
        backup = self.backup
        return build_rsync_command(
            source=self.source,
            destination=rsync_location(backup.destination, self.target),
            dry_run=backup.dry_run,
            list_changes=backup.list_changes,
            multi_fs=backup.multi_fs,
            excluded_roots=self.excluded_paths,
            exclude_list=backup.exclude_list,
            extra_options=destination_options(backup) + (self.target.rsync_options if self.target else []) + options,
            delete=delete,
        )

    def run(self, options, delete=True, monitor=None, environment=None, **kw):
        """
        Run rsync (with ionice and sudo as configured, its error output going to :attr:`errors`).

        :param options: See :meth:`command()`.
        :param delete: See :meth:`command()`.
        :param monitor: A :class:`.TransferMonitor` to follow rsync's output,
                        or :data:`None` to run rsync to its end (unless
                        `kw` says otherwise).
        :param environment: More environment variables (a dict).
        :param kw: More :mod:`executor` options (``input``, ``capture``, ...).
        :returns: The :class:`~executor.ExternalCommand`.
        """
        if monitor is not None:
            kw.update(monitor.command_options)
        rsync = self.backup.source_context.execute(
            *self.command(options, delete), check=False, shell=False,
            environment=dict(self.environment, **(environment or {})), ionice=self.backup.ionice,
            sudo=self.backup.sudo_enabled, stderr_file=self.errors.stream, **kw
        )
        if monitor is not None:
            monitor.follow(rsync)
        return rsync


def transfer_planned(runner, monitor, target, plan=None):
    """
    Transfer in steps: plan, check the names, protect, apply, check ``latest`` (see :mod:`.transfer.plan`).

    :param runner: An :class:`RsyncRunner`.
    :param monitor: The :class:`.TransferMonitor` that follows the apply.
    :param target: The :class:`.TransferTarget`, whose ``protect`` prepares
                   ``latest`` for the checked :class:`.TransferPlan` (it
                   returns the names that the apply must leave out and the
                   planned deletions it couldn't carry out, see
                   :meth:`.SafeHardlinkMethod.protect()`) and whose
                   ``check`` looks at ``latest`` afterwards (see
                   :meth:`.SnapshotMethod.check()`).
    :param plan: The :class:`.SendPlan` of the first pass (see :func:`choose_plan()`), or :data:`None` to
                 plan with rsync's dry run.
    :returns: A tuple of the rsync command that judges the transfer and
              the exit code that stands for it: the first command that
              failed and its code; else 23 when a command exited with 23,
              or a planned name was left out (it couldn't be checked,
              protected or deleted, see :func:`.drop_redirected_names()`):
              files are missing or stale, which outranks 24; else 24 when
              a command exited with 24; else 0.

    A dry run can't look below an entry that becomes a directory (see
    :data:`.BLIND_SPOT_PREFIX`): when it says so, the steps run once more
    after the apply, and the second plan holds what the first one missed.
    The statistics come from the first plan's dry run (the work that the
    run does), with the traffic of the applies.
    """
    statistics, sent, received = None, 0, 0
    for number in range(PLANNED_PASSES):
        last = number == PLANNED_PASSES - 1
        judge, codes, missing, blind_spots = plan_and_apply(runner, monitor, target, last, plan)
        plan = None
        statistics = statistics or monitor.statistics
        sent += monitor.statistics.bytes_sent or 0
        received += monitor.statistics.bytes_received or 0
        if not blind_spots or any(code not in (0,) + tuple(WARNING_EXIT_CODES) for code in codes):
            break
        logger.info("Planning once more: rsync's dry run couldn't look below %i entry(s) that became directories "
                    "(see its messages above).", blind_spots)
    statistics.bytes_sent, statistics.bytes_received = sent, received
    monitor.statistics = statistics
    failed = [code for code in codes if code not in (0,) + tuple(WARNING_EXIT_CODES)]
    if failed:
        return judge, failed[0]
    if PARTIAL_TRANSFER in codes or missing:
        return judge, PARTIAL_TRANSFER
    return judge, max(codes)


def plan_and_apply(runner, monitor, target, last=True, plan=None):
    """
    Run the steps of a planned transfer once (see :func:`transfer_planned()`).

    :param runner: An :class:`RsyncRunner`.
    :param monitor: The :class:`.TransferMonitor`; its statistics are the
                    dry run's, with the apply's traffic, afterwards.
    :param target: The :class:`.TransferTarget`.
    :param last: :data:`False` when another pass follows if the dry run
                 had blind spots: they don't count as failures then.
    :param plan: A :class:`.SendPlan` to apply, or :data:`None` to plan with rsync's dry run.
    :returns: A tuple of the command that judges the pass (the first that
              failed, or the dry run), the exit codes that count, the names
              that were left out (a list) and how many blind spots the dry
              run reported (0 when the pass ended early).
    """
    errors = runner.errors
    failed_before, blind_before = errors.failed_files, errors.blind_spots
    statistics = TransferStatistics()
    if plan is not None:
        return apply_plan(runner, monitor, target, plan, statistics, [0], None, 0)
    dry_run = runner.run(list(PLAN_OPTIONS), environment=PLAN_ENVIRONMENT, asynchronous=True, capture=True,
                         buffered=False)
    try:
        plan = read_plan(dry_run.stdout, statistics)
    except BaseException:
        if dry_run.is_running:
            dry_run.terminate(use_spinner=False)
        raise
    finally:
        wait_for_exit(dry_run)
    monitor.statistics = statistics
    if not succeeded(dry_run):
        return dry_run, [dry_run.returncode], [], 0
    errors.settle()
    blind_spots = 0 if last else errors.blind_spots - blind_before
    codes = [dry_run.returncode]
    if blind_spots:
        # They aren't failures: the next pass plans what lies there.
        errors.failed_files -= blind_spots
        if dry_run.returncode == PARTIAL_TRANSFER and errors.failed_files == failed_before:
            codes = [0]
    return apply_plan(runner, monitor, target, plan, statistics, codes, dry_run, blind_spots)


def apply_plan(runner, monitor, target, plan, statistics, codes, dry_run, blind_spots):
    """
    Carry out a plan: check its names, protect, apply, check ``latest`` (see :func:`plan_and_apply()`).

    :param runner: An :class:`RsyncRunner`.
    :param monitor: The :class:`.TransferMonitor`.
    :param target: The :class:`.TransferTarget`.
    :param plan: A :class:`.TransferPlan` from rsync's dry run, or a :class:`.SendPlan`.
    :param statistics: The dry run's :class:`.TransferStatistics` (empty for a send plan, which gets the apply's).
    :param codes: The exit codes that count so far (a list of integers).
    :param dry_run: The dry run's command, or :data:`None` for a send plan.
    :param blind_spots: How many blind spots the dry run reported.
    :returns: See :func:`plan_and_apply()`; the command that judges a send plan's pass is the apply's.
    """
    errors = runner.errors
    source = SourceView(runner.source)
    plan.check_names(source)
    left_out, undeleted = target.protect(plan)
    left_out = set(left_out)
    carried_out = (set(plan.links) | plan.deletions) - left_out - set(undeleted)
    listed = in_place_names(plan) if target.in_place else plan.apply_names()
    names, unexamined = drop_redirected_names(source, [name for name in listed if name not in left_out])
    carried_out.update(names)
    # Names that couldn't be checked, protected or deleted are like files rsync couldn't transfer (exit code 23).
    missing = unexamined + sorted(plan.unchecked) + sorted(left_out) + undeleted
    errors.failed_files += len(missing)
    commands = []
    if names:
        monitor.statistics = TransferStatistics()
        options = IN_PLACE_APPLY_OPTIONS if target.in_place else APPLY_OPTIONS
        commands.append(runner.run(list(monitor.rsync_options) + list(options), delete=False, monitor=monitor,
                                   input=files_from(names)))
        if dry_run is None:
            statistics = monitor.statistics
        statistics.bytes_sent = monitor.statistics.bytes_sent
        statistics.bytes_received = monitor.statistics.bytes_received
    if dry_run is None:
        count_send_plan(statistics)
    monitor.statistics = statistics
    if plan.touches_root():
        commands.append(runner.run(list(ROOT_OPTIONS), delete=False))
    codes.extend(command.returncode for command in commands)
    failed = [command for command in commands if not succeeded(command)]
    if failed:
        return failed[0], codes, missing, 0
    target.check(plan, source, carried_out, incomplete=PARTIAL_TRANSFER in codes or bool(blind_spots))
    return dry_run or (commands[0] if commands else None), codes, missing, blind_spots


def count_send_plan(statistics):
    """
    Make the apply's statistics those of a transfer planned from the source's snapshots.

    :param statistics: The apply's :class:`.TransferStatistics` (or empty ones when nothing was applied).

    The apply counts only the names it was given: the source's total isn't
    known (no walk), and the deletions were the protect step's, so those
    stay unknown; nothing applied transferred nothing.
    """
    statistics.files = statistics.regular_files = statistics.total_size = statistics.deleted_files = None
    for name in ('transferred_files', 'transferred_size', 'created_files', 'bytes_sent', 'bytes_received'):
        if getattr(statistics, name) is None:
            setattr(statistics, name, 0)


def succeeded(rsync):
    """
    Check whether rsync left a usable result.

    :param rsync: A finished rsync command.
    :returns: :data:`True` for exit code 0 and the codes in :data:`.WARNING_EXIT_CODES`.
    """
    return rsync.returncode == 0 or rsync.returncode in WARNING_EXIT_CODES


def describe_full_destination(space):
    """
    Describe a destination that ran out of space.

    :param space: A :class:`.DiskSpace`, or :data:`None` when it couldn't be measured.
    :returns: The start of the failure message (a string), for example
              "The destination is full (12 KB free of 2 MB): ".
    """
    if space is None:
        return "The destination is full: "
    return "The destination is full (%s free of %s): " % (format_size(space.free), format_size(space.total))
