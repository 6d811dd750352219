"""
Checks of a whole :class:`.RsyncSystemBackup` configuration, made before anything is written.

Each function takes the :class:`.RsyncSystemBackup` object whose settings
it checks and raises a subclass of :exc:`.RsyncSystemBackupError` with a
message that says what to change.
"""

import logging
import os
import posixpath

from rsync_system_backup.checks.paths import check_local_destination, check_source, is_inside
from rsync_system_backup.connections.ssh import check_remote_rsync, check_sudo
from rsync_system_backup.disks.unlock_and_mount import MountedFilesystem, UnlockedDevice
from rsync_system_backup.exceptions import (
    InvalidDestinationDirectory,
    InvalidOptionError,
    TransferFailedError,
    UnsupportedPlatformError,
)
from rsync_system_backup.processes.sudo import check_sudo_here
from rsync_system_backup.rotation.schemes import check_rotation_scheme
from rsync_system_backup.transfer.command import WARNING_EXIT_CODES
from rsync_system_backup.transfer.errors import DAEMON_STATUS_MEANINGS, describe_exit_code

logger = logging.getLogger(__name__)


def ensure_supported_platform(context, force):
    """
    Refuse to run anywhere but on Linux, unless forced.

    :param context: The execution context of the system to check.
    :param force: :data:`True` to only warn on another system.
    :raises: :exc:`.UnsupportedPlatformError`.

    The answer comes from ``uname`` run in the context, as in version 1.1,
    so the first ``uname`` on ``$PATH`` decides; a ``uname`` that fails
    counts as another system (a missing one is a :exc:`.ProgramNotFoundError`,
    see :mod:`.processes.search_path`).
    """
    system = context.capture('uname', check=False, shell=False, silent=True).strip()
    if system != 'Linux':
        if not force:
            raise UnsupportedPlatformError("This program was made for Linux, not %s: use -f/--force to run "
                                           "it anyway." % (system or "an unknown system"))
        logger.warning("Running on %s, which is not supported (forced).", system)


def check_configuration(backup):
    """
    Refuse a configuration that can't work, before anything is written.

    :param backup: The :class:`.RsyncSystemBackup` to check.
    :raises: :exc:`.InvalidSourceError`,
             :exc:`.TransferFailedError` (see :func:`check_daemon_transfer()`),
             :exc:`.InvalidOptionError` (see :func:`check_remote_options()`,
             :func:`.check_rotation_scheme()` and :func:`ensure_inside_mount_point()`),
             :exc:`.DestinationContextUnavailable`,
             :exc:`.InvalidDestinationDirectory` or
             :exc:`.SudoUnavailableError` (see :func:`check_local_sudo()`).

    These checks don't log in anywhere; :func:`check_destination_access()`
    follows once the shared SSH connection is open.
    """
    destination = backup.destination
    if backup.backup_enabled:
        check_source(backup.source)
    if destination.is_local:
        check_local_destination(backup.source if backup.backup_enabled else None, destination.directory)
    check_daemon_transfer(backup)
    check_remote_options(backup)
    if backup.rotate_enabled:
        check_rotation_scheme(backup.rotation_scheme)
    if destination.is_daemon and (backup.snapshot_enabled or backup.rotate_enabled) and not backup.all_steps_enabled:
        # -s or -r chosen by hand: refused before anything is transferred. With the
        # default steps the transfer goes first (see RsyncSystemBackup.execute_helper()).
        backup.destination_context
    check_disk_names(backup)
    if backup.mount_point and not destination.module:
        ensure_inside_mount_point(backup)
    if backup.keep_as:
        check_keep_option(backup)
    check_local_sudo(backup, transfer=backup.backup_enabled)


def check_keep_option(backup):
    """
    Refuse :attr:`.RsyncSystemBackup.keep_as` (``--keep=NAME``) where the run makes no snapshot to keep.

    :param backup: The :class:`.RsyncSystemBackup` to check.
    :raises: :exc:`.InvalidOptionError` without the snapshot step, and for
             an rsync daemon (its ``post-xfer exec`` run makes the snapshots).
    """
    name = backup.keep_as
    if backup.destination.is_daemon:
        raise InvalidOptionError(
            "--keep=%s keeps the snapshot that this run makes, but the rsync daemon's post-xfer exec run makes the "
            "snapshots of %s: keep one there with 'rsync-system-backup --keep=%s:SNAPSHOT /path/of/the/module'."
            % (name, backup.destination.expression, name))
    if not backup.snapshot_enabled:
        raise InvalidOptionError(
            "--keep=%s keeps the snapshot that this run makes, but -b or -r without -s makes none: add -s, or keep "
            "an existing snapshot with --keep=%s:SNAPSHOT." % (name, name))


def check_local_sudo(backup, transfer):
    """
    Refuse a run whose commands on this system need sudo when sudo would ask for a password.

    The run needs sudo here when the user isn't root, sudo is enabled
    (no ``-u/--no-sudo``) and something runs on this system as root: rsync
    (it reads every file of the source), or the commands on a local
    destination, or unlocking and mounting for an rsync daemon's destination.
    The check comes before anything else of the run happens, so that sudo never
    asks for a password halfway through (see :mod:`.processes.sudo`).

    :param backup: The :class:`.RsyncSystemBackup` to check.
    :param transfer: :data:`True` when rsync runs on this system (a backup's transfer step).
    :raises: :exc:`.SudoUnavailableError` (see :func:`.check_sudo_here()`).
    """
    destination = backup.destination
    disk_here = destination.is_daemon and bool(backup.crypto_device or backup.mount_point)
    if backup.sudo_enabled and (transfer or destination.is_local or disk_here):
        check_sudo_here(backup.source_context)


def check_destination_access(backup):
    """
    Refuse a destination system that can't take the backup, before anything is written.

    It runs after :func:`check_configuration()`, once the shared SSH
    connection is open (see :func:`.shared_connection()`; its login has
    checked the connection), so its commands cost no login of their own.

    :param backup: The :class:`.RsyncSystemBackup` to check.
    :raises: :exc:`.SSHConnectionError` or :exc:`.RemoteCommandError`
             (see :func:`.check_remote_rsync()` and :func:`.check_sudo()`),
             :exc:`.MissingBackupDiskError` or :exc:`.FailedToUnlockError`
             (see :meth:`.UnlockedDevice.ensure_available()`), and
             :exc:`.MissingBackupDiskError` for ``-m`` alone (see
             :meth:`.MountedFilesystem.ensure_available()`).
    """
    if backup.destination.is_remote_shell:
        if backup.backup_enabled:
            check_remote_rsync(backup.destination_context)
        if backup.sudo_enabled:
            check_sudo(backup.destination_context)
    if backup.crypto_device:
        UnlockedDevice(backup.crypto_context, backup.crypto_device).ensure_available()
    elif backup.mount_point:
        # With -c the fstab entry names the unlocked device, which appears only once unlocked.
        MountedFilesystem(backup.crypto_context, backup.mount_point).ensure_available()


def check_disk_names(backup):
    """
    Refuse a mount point or crypttab target that ``mount`` or ``cryptdisks_start`` would take for an option.

    :param backup: The :class:`.RsyncSystemBackup` to check.
    :raises: :exc:`.InvalidOptionError` for a relative mount point (the
             mount point must be absolute, as in ``/etc/fstab``, for every
             kind of destination) or a target name that starts with ``-``.
    """
    if backup.mount_point and not backup.mount_point.startswith('/'):
        raise InvalidOptionError("The mount point %r is a relative path: give its absolute path, "
                                 "as in /etc/fstab." % backup.mount_point)
    if backup.crypto_device and backup.crypto_device.startswith('-'):
        raise InvalidOptionError("The crypttab target %r starts with '-', which cryptdisks_start would take for an "
                                 "option: give the target's name as /etc/crypttab has it." % backup.crypto_device)


def ensure_inside_mount_point(backup):
    """
    Check that the destination directory is on the filesystem that gets mounted.

    :param backup: The :class:`.RsyncSystemBackup` to check.
    :raises: :exc:`.InvalidDestinationDirectory` when the destination
             isn't inside the mount point (checked to be absolute by
             :func:`check_disk_names()`) (the backup would then fill the filesystem
             under the mount point).

    The destination must lie below the mount point, not be the mount point
    itself, because the snapshots go next to it. For a local destination,
    symbolic links are resolved as far as the paths exist:
    :meth:`.RsyncSystemBackup.execute()` checks before mounting and again
    after, when links on the mounted filesystem can be followed too.
    """
    mount_point_given = backup.mount_point
    resolve = os.path.realpath if backup.destination.is_local else posixpath.normpath
    mount_point = resolve(mount_point_given)
    directory = resolve(backup.destination.directory)
    if is_inside(directory, mount_point):
        return
    given = backup.destination.directory
    if posixpath.normpath(given) != directory:
        given = "%s (%s)" % (given, directory)
    if directory == mount_point:
        raise InvalidDestinationDirectory(
            "The destination %s is the mount point %s itself, but the snapshots go next to the destination, "
            "outside the mounted filesystem: use a subdirectory such as %s."
            % (given, mount_point_given, posixpath.join(mount_point_given, 'latest'))
        )
    raise InvalidDestinationDirectory(
        "The destination %s is not inside the mount point %s, so the backup wouldn't go to the mounted "
        "filesystem: put it in a subdirectory of %s." % (given, mount_point_given, mount_point_given)
    )


def explain_daemon_steps(destination, transferred=False):
    """
    Say why snapshots and rotation can't be done from here for an rsync daemon, and what to do instead.

    :param destination: The :class:`.Destination` of an rsync daemon.
    :param transferred: :data:`True` when the transfer has been made already.
    :returns: The message (a string).
    """
    return (
        "%sCan't run commands on the rsync daemon %s, so snapshots and rotation can't be done from here: "
        "use -b/--backup alone and let the daemon run them after each transfer, with the line "
        "'post-xfer exec = rsync-system-backup --snapshot --rotate' in the module's section of its rsyncd.conf."
        % ("The transfer to %s is done. " % destination.expression if transferred else "", destination.hostname)
    )


def check_daemon_transfer(backup):
    """
    Refuse to snapshot after a failed transfer into an rsync daemon's module.

    :param backup: The :class:`.RsyncSystemBackup` to check.
    :raises: :exc:`.TransferFailedError` after a failed transfer.

    Run as the daemon's ``post-xfer exec`` command, the program learns the
    transfer's outcome from :attr:`.RsyncSystemBackup.daemon_exit_status`.
    Exit status 0 lets the run go on, 23 and 24 (some files weren't
    transferred) go on with a warning, and anything else stops the run: the
    module then holds a half-transferred tree that must not become a snapshot,
    or its path doesn't exist (the daemon then gives up before the transfer,
    and the message says so).
    """
    status = backup.daemon_exit_status
    if status is None or status == 0:
        return
    destination = backup.destination
    expression = destination.expression
    outcome = describe_exit_code(status, DAEMON_STATUS_MEANINGS)
    if status in WARNING_EXIT_CODES:
        logger.warning("The rsync daemon's transfer into %s ended with %s; going on with it.", expression, outcome)
        return
    if destination.is_local and not os.path.isdir(destination.directory):
        raise TransferFailedError(
            "The rsync daemon's module path %s doesn't exist, so its transfer failed with %s; no snapshot was "
            "made and nothing was rotated. Mount the backup disk if the path is on one, or create the directory, "
            "or correct 'path =' in the module's section of rsyncd.conf." % (expression, outcome)
        )
    raise TransferFailedError(
        "The rsync daemon's transfer into %s failed with %s, so no snapshot was made and nothing was rotated; "
        "the earlier snapshots are intact. Look for the cause in the daemon's log and on the sending side."
        % (expression, outcome)
    )


def check_remote_options(backup):
    """
    Refuse the tunnel, daemon port and password file settings where they don't apply.

    :param backup: The :class:`.RsyncSystemBackup` to check.
    :raises: :exc:`.InvalidOptionError` when one of them is set for a
             destination that isn't an rsync daemon, when a tunnel meets
             a port in the destination, or when the daemon port is set
             without a tunnel spec.
    """
    destination = backup.destination
    expression = destination.expression
    if backup.tunnel and not destination.is_daemon:
        raise InvalidOptionError(
            "-t/--tunnel reaches an rsync daemon, but %s is not one: a HOST:DIRECTORY destination already "
            "goes over SSH; for a daemon write HOST::MODULE[/DIRECTORY]." % expression
        )
    if backup.tunnel and destination.port_number:
        raise InvalidOptionError(
            "With -t/--tunnel rsync connects to the tunnel, so the destination %s can't name a port: "
            "give the daemon's port on the tunnel's host with --daemon-port instead." % expression
        )
    if backup.daemon_port is not None and not isinstance(backup.tunnel, str):
        raise InvalidOptionError(
            "--daemon-port names the daemon's port behind -t/--tunnel [USER@]HOST[:PORT]: without such "
            "a tunnel, put the port in the destination (rsync://HOST:PORT/MODULE)."
        )
    if backup.password_file and not destination.is_daemon:
        raise InvalidOptionError(
            "--password-file is for rsync daemon logins, but %s is not an rsync daemon "
            "(SSH destinations log in with SSH keys)." % expression
        )
