"""
The transfer step: run rsync from the source to the destination and judge its exit code.

:func:`transfer_changes()` builds the command line (see
:func:`.build_rsync_command()`), runs it in the source's execution context
while :class:`.TransferMonitor` follows its output, and turns a failure
into a :exc:`.TransferFailedError` whose message explains it.
"""

import logging

from humanfriendly import Timer, format_size

from rsync_system_backup.connections.tunnel import LOOPBACK_ADDRESS
from rsync_system_backup.destinations import Destination
from rsync_system_backup.exceptions import TransferFailedError
from rsync_system_backup.target.operations import make_directory
from rsync_system_backup.transfer.command import WARNING_EXIT_CODES, build_rsync_command
from rsync_system_backup.transfer.errors import ErrorOutputRecorder, explain_rsync_failure
from rsync_system_backup.transfer.progress import TransferMonitor

logger = logging.getLogger(__name__)


def rsync_location(destination, tunnel=None, target=None):
    """
    Render a destination for rsync's command line.

    :param destination: The :class:`.Destination` of the backup.
    :param tunnel: An open tunnel to the destination's rsync daemon, or :data:`None`.
    :param target: A :class:`.TransferTarget`, or :data:`None` to write to
                   the destination itself.
    :returns: The destination in rsync's syntax, pointed at the tunnel's
              local port when a tunnel is given, or at the target's
              directory on the destination's system (a string).
    """
    if target is not None:
        return Destination(username=destination.username, hostname=destination.hostname,
                           directory=target.directory).expression
    if tunnel is None:
        return destination.expression
    return Destination(username=destination.username, hostname=LOOPBACK_ADDRESS,
                       port_number=tunnel.local_port, module=destination.module,
                       directory=destination.directory).expression


def destination_options(backup):
    """
    Choose the rsync options that depend on the kind of destination.

    :param backup: The :class:`.RsyncSystemBackup` being run.
    :returns: For SSH destinations ``--protect-args`` (so the remote shell
              never interprets the directory's name) and, while the shared
              connection is open, ``--rsh`` to send the transfer through it;
              ``--password-file`` when a password file is set (a list of
              strings).
    """
    options = []
    if backup.destination.is_remote_shell:
        options.append('--protect-args')
        if backup.destination_context.rsync_shell:
            options.append('--rsh=%s' % backup.destination_context.rsync_shell)
    if backup.password_file:
        options.append('--password-file=%s' % backup.password_file)
    return options


def transfer_changes(backup, tunnel=None, target=None):
    """
    Transfer the source to the destination with rsync.

    :param backup: The :class:`.RsyncSystemBackup` being run.
    :param tunnel: An open tunnel to the destination's rsync daemon, or
                   :data:`None` to connect directly.
    :param target: Where rsync writes (a :class:`.TransferTarget`), or
                   :data:`None` for the destination itself.
    :returns: The :class:`.TransferStatistics` that rsync reported.
    :raises: :exc:`.TransferFailedError` for any exit code but 0, 23 and 24.

    Exit codes 23 and 24 (some files couldn't be read, or vanished) are
    logged as warnings and the backup goes on. rsync's error messages are
    shown as they come and the last of them explain a failure. Its standard
    output is read as it comes: the overall progress is shown when asked
    for, and the statistics are collected.
    """
    destination = backup.destination
    if not backup.dry_run and not destination.is_daemon:
        make_directory(backup.destination_context, target.directory if target else destination.directory,
                       sudo=backup.sudo_enabled)
    monitor = TransferMonitor(show_progress=backup.show_progress)
    command = build_rsync_command(
        source=backup.source,
        destination=rsync_location(destination, tunnel, target),
        dry_run=backup.dry_run,
        multi_fs=backup.multi_fs,
        excluded_roots=backup.excluded_roots + backup.backup_inside_source(),
        exclude_list=backup.exclude_list,
        extra_options=(destination_options(backup) + (target.rsync_options if target else [])
                       + list(monitor.rsync_options)),
    )
    logger.info("Transferring %s to %s ..", backup.source, destination.expression)
    timer = Timer()
    with ErrorOutputRecorder() as errors:
        rsync = backup.source_context.execute(
            *command, check=False, shell=False, environment=dict(HOME=''),
            ionice=backup.ionice, sudo=backup.sudo_enabled, stderr_file=errors.stream,
            **monitor.command_options
        )
        monitor.follow(rsync)
    if rsync.returncode in WARNING_EXIT_CODES:
        logger.warning("rsync exited with code %i: %s (%s); the backup goes on.", rsync.returncode,
                       WARNING_EXIT_CODES[rsync.returncode], errors.describe_affected_files(rsync.returncode))
    elif rsync.returncode != 0:
        full = describe_full_destination(backup.measure_disk_space()) if errors.disk_full else ''
        raise TransferFailedError("%srsync failed with %s; no snapshot was made and the earlier snapshots "
                                  "are intact." % (full, explain_rsync_failure(rsync.returncode, errors.lines)))
    logger.info("Transferred %s to %s in %s.", backup.source, destination.expression, timer)
    if target and target.directory != destination.directory:
        # rsync built a new tree, where files gone from the source are simply
        # missing: it deleted nothing, so it can't count what went away.
        monitor.statistics.deleted_files = None
    return monitor.statistics


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
