"""
The :class:`RsyncSystemBackup` orchestrator.

It strings the steps of a system backup together: unlock and mount the backup
disk when asked to, transfer the system with rsync, snapshot the result and
rotate old snapshots, then undo the unlocking and mounting. Each step lives in
a module of its own; this class holds the configuration and the order.
"""

import contextlib
import logging
import os
import posixpath

from executor.contexts import create_context
from humanfriendly import Timer, format_size
from property_manager import PropertyManager, cached_property, lazy_property, mutable_property, set_property

from rsync_system_backup import DEFAULT_ROTATION_SCHEME
from rsync_system_backup.destinations import Destination
from rsync_system_backup.disk_space import measure_disk_space
from rsync_system_backup.disks import MountedFilesystem, UnlockedDevice
from rsync_system_backup.exceptions import (
    DestinationContextUnavailable,
    InvalidDestinationDirectory,
    InvalidDestinationError,
    InvalidOptionError,
    TransferFailedError,
    UnsupportedPlatformError,
)
from rsync_system_backup.filesystem import make_directory, runs_in_process
from rsync_system_backup.locking import DestinationLock
from rsync_system_backup.markers import ensure_backup_target
from rsync_system_backup.method_names import AUTOMATIC, check_method_name
from rsync_system_backup.notifications import notify
from rsync_system_backup.paths import check_local_destination, check_source, exclude_backup_from_source, is_inside
from rsync_system_backup.progress import TransferMonitor
from rsync_system_backup.remote import (
    check_ssh_access,
    create_remote_context,
    shared_connection,
    translate_remote_errors,
)
from rsync_system_backup.rotation import rotate_snapshots
from rsync_system_backup.rotation_schemes import check_rotation_scheme
from rsync_system_backup.rsync_command import DEFAULT_EXCLUDED_ROOTS, WARNING_EXIT_CODES, build_rsync_command
from rsync_system_backup.rsync_errors import ErrorOutputRecorder, describe_exit_code, explain_rsync_failure
from rsync_system_backup.snapshot_methods import choose_snapshot_method
from rsync_system_backup.snapshots import create_snapshot
from rsync_system_backup.summary import BackupSummary
from rsync_system_backup.tunnel import LOOPBACK_ADDRESS, RSYNCD_PORT, create_tunnel, open_tunnel, parse_tunnel_spec

logger = logging.getLogger(__name__)


class RsyncSystemBackup(PropertyManager):

    """
    Make a full system backup with rsync, a snapshot and rotation.

    Give the properties as keyword arguments and call :meth:`execute()`::

        from rsync_system_backup import RsyncSystemBackup
        RsyncSystemBackup(destination='/mnt/backups/latest').execute()
    """

    @mutable_property
    def accept_existing(self):
        """
        :data:`True` to let the first backup overwrite a destination directory that already holds files.

        Without it such a backup is refused (see :mod:`.markers`), because
        rsync would replace those files with a copy of the source.
        """
        return False

    @mutable_property
    def backup_enabled(self):
        """:data:`True` to transfer the source to the destination with rsync (the default)."""
        return True

    @mutable_property
    def snapshot_enabled(self):
        """:data:`True` to snapshot the destination directory after the transfer (the default)."""
        return True

    @mutable_property
    def rotate_enabled(self):
        """:data:`True` to rotate old snapshots after the snapshot (the default)."""
        return True

    @mutable_property
    def crypto_device(self):
        """The target name in ``/etc/crypttab`` of an encrypted filesystem to unlock (a string or :data:`None`)."""
        return None

    @mutable_property
    def mount_point(self):
        """A directory listed in ``/etc/fstab`` to mount during the backup (a string or :data:`None`)."""
        return None

    @mutable_property
    def destination(self):
        """
        Where the backup goes (a :class:`.Destination`; strings are parsed).

        It defaults to ``$RSYNC_MODULE_PATH``, which an rsync daemon sets for
        its ``post-xfer exec`` command.

        :raises: :exc:`.InvalidDestinationError` when neither was given.
        """
        module_path = os.environ.get('RSYNC_MODULE_PATH')
        if not module_path:
            raise InvalidDestinationError("No destination given (and $RSYNC_MODULE_PATH is not set).")
        value = Destination(expression=module_path)
        set_property(self, 'destination', value)
        return value

    @destination.setter
    def destination(self, value):
        """Parse a string into a :class:`.Destination` and forget the old destination's context."""
        if not isinstance(value, Destination):
            value = Destination(expression=value)
        set_property(self, 'destination', value)
        if 'destination_context' in self.__dict__:
            del self.destination_context

    @cached_property
    def destination_context(self):
        """
        The execution context of the system that holds the destination directory.

        A local context for local destinations and an SSH context for
        ``host:directory`` destinations (see :func:`.create_remote_context()`:
        ``~/.ssh/config`` decides on host keys and the user).

        :raises: :exc:`.DestinationContextUnavailable` for rsync daemon
                 destinations, where the client can't run commands.
        """
        if self.destination.is_daemon:
            raise DestinationContextUnavailable(
                "Can't run commands on the rsync daemon %s, so snapshots and rotation can't be done from here: "
                "use -b/--backup alone and let the daemon run 'rsync-system-backup --snapshot --rotate' "
                "as its post-xfer exec command." % self.destination.hostname
            )
        if self.destination.is_remote_shell:
            return create_remote_context(self.destination.ssh_alias, self.destination.username or None)
        return create_context()

    @mutable_property
    def daemon_exit_status(self):
        """
        The exit status of the rsync daemon's transfer that this run follows (an integer or :data:`None`).

        It defaults to ``$RSYNC_EXIT_STATUS``, which an rsync daemon sets for
        its ``post-xfer exec`` command (-1 when the transfer ended abnormally).
        See :meth:`check_daemon_transfer()` for what each value does.

        :raises: :exc:`.InvalidOptionError` when ``$RSYNC_EXIT_STATUS`` is not a number.
        """
        value = os.environ.get('RSYNC_EXIT_STATUS', '').strip()
        if not value:
            return None
        try:
            return int(value)
        except ValueError:
            raise InvalidOptionError("$RSYNC_EXIT_STATUS is %r, not a number: only an rsync daemon's "
                                     "post-xfer exec should set it." % value)

    @mutable_property
    def daemon_port(self):
        """
        The rsync daemon's port on the host that :attr:`tunnel` leads to (an integer, :data:`None` for 873).

        Only for a tunnel given as a string: a
        :class:`~executor.ssh.client.SecureTunnel` has its own
        ``remote_port``. Without a tunnel the port goes in the destination
        (``rsync://HOST:PORT/MODULE``).
        """
        return None

    @mutable_property
    def dry_run(self):
        """:data:`True` to only report what would change (rsync runs with ``--dry-run``)."""
        return False

    @mutable_property
    def multi_fs(self):
        """:data:`True` to let rsync cross filesystem boundaries (no ``--one-file-system``)."""
        return False

    @lazy_property(writable=True)
    def exclude_list(self):
        """rsync exclude patterns given by the user (a list of strings)."""
        return []

    @lazy_property(writable=True)
    def excluded_roots(self):
        """
        Absolute paths on the source system that are left out of the backup (a list of strings).

        See :data:`.DEFAULT_EXCLUDED_ROOTS` for the defaults and how they match.
        """
        return list(DEFAULT_EXCLUDED_ROOTS)

    @mutable_property
    def force(self):
        """:data:`True` to run on operating systems other than Linux."""
        return False

    @mutable_property
    def ionice(self):
        """The I/O scheduling class of rsync, cp and rm (``idle``, ``best-effort``, ``realtime`` or :data:`None`)."""
        return None

    @mutable_property
    def notifications_enabled(self):
        """:data:`True` to show desktop notifications when the backup starts, finishes and fails."""
        return True

    @mutable_property
    def password_file(self):
        """
        A file holding the rsync daemon's password, for rsync's ``--password-file`` (a string or :data:`None`).

        rsync also takes the password from ``$RSYNC_PASSWORD``; either way it
        never appears on a command line or in the log.
        """
        return None

    @mutable_property
    def prefer_recent(self):
        """:data:`True` to keep the newest snapshot of each hour, day, week, ... instead of the oldest."""
        return False

    @lazy_property(writable=True)
    def rotation_scheme(self):
        """
        The rotation scheme (a :class:`dict`, see :data:`.DEFAULT_ROTATION_SCHEME`).

        Frequencies whose count is 0 keep no snapshots (see
        :func:`.check_rotation_scheme()`).
        """
        return dict(DEFAULT_ROTATION_SCHEME)

    @mutable_property
    def show_progress(self):
        """:data:`True` to show rsync's overall progress on the terminal (standard error) during the transfer."""
        return False

    @mutable_property
    def source(self):
        """The directory to back up (a string, ``/`` by default)."""
        return '/'

    @lazy_property(writable=True)
    def source_context(self):
        """The execution context in which rsync runs (the local system)."""
        return create_context()

    @mutable_property
    def strict(self):
        """
        :data:`True` for strict rotation (the default), :data:`False` for relaxed rotation.

        With strict rotation a count of N for a frequency only keeps
        snapshots from the N periods (hours, days, ...) before the newest
        snapshot; with relaxed rotation it keeps the newest N periods that
        have a snapshot, however long ago they were.
        """
        return True

    @mutable_property
    def snapshot_method(self):
        """
        How snapshots are made: ``auto`` (the default), ``btrfs``, ``reflink``, ``link-dest`` or ``hardlink``.

        ``auto`` picks the best method that the destination's filesystem
        supports, and with every method but ``hardlink`` (the flow of version
        1.1) a later backup never changes an earlier snapshot (see
        :mod:`.snapshot_methods`).

        :raises: :exc:`.InvalidOptionError` (on assignment) for any other value.
        """
        return AUTOMATIC

    @snapshot_method.setter
    def snapshot_method(self, value):
        """Check the method's name on assignment."""
        set_property(self, 'snapshot_method', check_method_name(value))

    @cached_property(repr=False)
    def snapshot_method_in_use(self):
        """
        The :class:`.SnapshotMethod` that works on this destination (see :func:`.choose_snapshot_method()`).

        It looks at the destination's filesystem, so :meth:`execute()`
        chooses it afresh once the backup disk is mounted.
        """
        return choose_snapshot_method(self.snapshot_method, self.destination_context, self.destination.directory,
                                      sudo=self.sudo_enabled, ionice=self.ionice,
                                      daemon_transfer=self.daemon_exit_status is not None, dry_run=self.dry_run)

    @mutable_property
    def sudo_enabled(self):
        """:data:`True` to run rsync, cp and rm with sudo when not running as root (the default)."""
        return True

    @mutable_property
    def summary(self):
        """The :class:`.BackupSummary` of the latest :meth:`execute()` (:data:`None` before the first)."""
        return None

    @mutable_property
    def tunnel(self):
        """
        The SSH tunnel that carries the traffic to the destination's rsync daemon (:data:`None` for none).

        Either a string ``[USER@]HOST[:PORT]`` as for ``-t/--tunnel`` (HOST
        may be a ``Host`` alias from ``~/.ssh/config`` and PORT is the SSH
        server's port; the daemon's port there is :attr:`daemon_port`), or
        an :class:`executor.ssh.client.SecureTunnel` that hasn't been
        started. The tunnel is opened for the transfer and closed when the
        run ends, however it ends.

        :raises: :exc:`.InvalidOptionError` (on assignment) when a string
                 doesn't fit ``[USER@]HOST[:PORT]``.
        """
        return None

    @tunnel.setter
    def tunnel(self, value):
        """Check a tunnel spec string on assignment."""
        if isinstance(value, str):
            parse_tunnel_spec(value)
        set_property(self, 'tunnel', value)

    @mutable_property
    def wait_for_lock(self):
        """:data:`True` to wait for another run on the same destination to finish, instead of failing at once."""
        return False

    def execute(self):
        """
        Run the enabled steps: unlock, mount, transfer, snapshot, rotate, unmount and lock.

        What each step did is recorded in :attr:`summary` as it goes.

        :raises: :exc:`.RsyncSystemBackupError` subclasses for known
                 problems; every cleanup has run by then.
        """
        self.ensure_supported_platform()
        self.check_configuration()
        timer = Timer()
        self.summary = summary = BackupSummary(destination=self.destination.expression, dry_run=self.dry_run)
        self.notify_starting()
        try:
            with contextlib.ExitStack() as stack:
                stack.enter_context(translate_remote_errors())
                stack.enter_context(self.share_connection())
                stack.enter_context(self.unlock_device())
                stack.enter_context(self.mount_filesystem())
                if self.mount_point and self.destination.is_local:
                    # Again, now that symbolic links on the mounted filesystem can be followed.
                    self.ensure_inside_mount_point()
                if self.backup_enabled and not self.destination.is_daemon:
                    self.ensure_backup_target()
                stack.enter_context(self.lock_destination())
                self.prepare_snapshot_method()
                if self.backup_enabled:
                    tunnel = stack.enter_context(self.open_tunnel())
                    with summary.timed('transfer'), self.transfer_target() as target:
                        summary.transfer_statistics = self.transfer_changes(tunnel, target)
                if self.snapshot_enabled:
                    with summary.timed('snapshot'):
                        summary.snapshot_pathname = self.create_snapshot()
                if self.rotate_enabled:
                    with summary.timed('rotation'):
                        summary.rotation_plan = self.rotate_snapshots()
                # Measured before the backup disk is unmounted.
                summary.disk_space = self.measure_disk_space()
        except BaseException:
            self.notify_failed(timer)
            raise
        summary.total_time = timer.elapsed_time
        self.notify_finished(timer)

    def check_configuration(self):
        """
        Refuse a configuration that can't work, before anything is written.

        :raises: :exc:`.InvalidSourceError`,
                 :exc:`.TransferFailedError` (see :meth:`check_daemon_transfer()`),
                 :exc:`.InvalidOptionError` (see :meth:`check_remote_options()`,
                 :func:`.check_rotation_scheme()` and :meth:`ensure_inside_mount_point()`),
                 :exc:`.DestinationContextUnavailable`,
                 :exc:`.InvalidDestinationDirectory`,
                 :exc:`.SSHConnectionError` or :exc:`.RemoteCommandError`
                 (see :func:`.check_ssh_access()`),
                 :exc:`.MissingBackupDiskError` or :exc:`.FailedToUnlockError`
                 (see :meth:`.UnlockedDevice.ensure_available()`).
        """
        if self.backup_enabled:
            check_source(self.source)
        if self.destination.is_local:
            check_local_destination(self.source if self.backup_enabled else None, self.destination.directory)
        self.check_daemon_transfer()
        self.check_remote_options()
        if self.rotate_enabled:
            check_rotation_scheme(self.rotation_scheme)
        if self.snapshot_enabled or self.rotate_enabled:
            # Raises DestinationContextUnavailable for rsync daemons.
            self.destination_context
        if self.mount_point and not self.destination.module:
            self.ensure_inside_mount_point()
        if self.destination.is_remote_shell:
            check_ssh_access(self.destination_context, need_rsync=self.backup_enabled)
        if self.crypto_device:
            UnlockedDevice(self.crypto_context, self.crypto_device).ensure_available()

    def ensure_inside_mount_point(self):
        """
        Check that the destination directory is on the filesystem that gets mounted.

        The destination must lie below :attr:`mount_point`, not be the mount
        point itself, because the snapshots go next to it. For a local
        destination, symbolic links are resolved as far as the paths exist:
        :meth:`execute()` checks before mounting and again after, when links
        on the mounted filesystem can be followed too.

        :raises: :exc:`.InvalidOptionError` when :attr:`mount_point` is a
                 relative path, :exc:`.InvalidDestinationDirectory` when the
                 destination isn't inside it (the backup would then fill the
                 filesystem under the mount point).
        """
        if not self.mount_point.startswith('/'):
            raise InvalidOptionError("The mount point %r is a relative path: give its absolute path, "
                                     "as in /etc/fstab." % self.mount_point)
        resolve = os.path.realpath if self.destination.is_local else posixpath.normpath
        mount_point = resolve(self.mount_point)
        directory = resolve(self.destination.directory)
        if is_inside(directory, mount_point):
            return
        given = self.destination.directory
        if posixpath.normpath(given) != directory:
            given = "%s (%s)" % (given, directory)
        if directory == mount_point:
            raise InvalidDestinationDirectory(
                "The destination %s is the mount point %s itself, but the snapshots go next to the destination, "
                "outside the mounted filesystem: use a subdirectory such as %s."
                % (given, self.mount_point, posixpath.join(self.mount_point, 'latest'))
            )
        raise InvalidDestinationDirectory(
            "The destination %s is not inside the mount point %s, so the backup wouldn't go to the mounted "
            "filesystem: put it in a subdirectory of %s." % (given, self.mount_point, self.mount_point)
        )

    def check_daemon_transfer(self):
        """
        Refuse to snapshot after a failed transfer into an rsync daemon's module.

        Run as the daemon's ``post-xfer exec`` command, this program learns the
        transfer's outcome from :attr:`daemon_exit_status`. Exit status 0 lets
        the run go on, 23 and 24 (some files weren't transferred) go on with
        a warning, and anything else stops the run: the module then holds a
        half-transferred tree that must not become a snapshot.

        :raises: :exc:`.TransferFailedError` after a failed transfer.
        """
        status = self.daemon_exit_status
        if status is None or status == 0:
            return
        if status in WARNING_EXIT_CODES:
            logger.warning("The rsync daemon's transfer into %s ended with %s; going on with it.",
                           self.destination.expression, describe_exit_code(status))
            return
        raise TransferFailedError(
            "The rsync daemon's transfer into %s failed with %s, so no snapshot was made and nothing was rotated; "
            "the earlier snapshots are intact. Look for the cause in the daemon's log and on the sending side."
            % (self.destination.expression, describe_exit_code(status))
        )

    def check_remote_options(self):
        """
        Refuse :attr:`tunnel`, :attr:`daemon_port` and :attr:`password_file` where they don't apply.

        :raises: :exc:`.InvalidOptionError` when one of them is set for a
                 destination that isn't an rsync daemon, when a tunnel meets
                 a port in the destination, or when :attr:`daemon_port` is
                 set without a tunnel spec or isn't a port number.
        """
        expression = self.destination.expression
        if self.tunnel and not self.destination.is_daemon:
            raise InvalidOptionError(
                "-t/--tunnel reaches an rsync daemon, but %s is not one: a HOST:DIRECTORY destination already "
                "goes over SSH; for a daemon write HOST::MODULE[/DIRECTORY]." % expression
            )
        if self.tunnel and self.destination.port_number:
            raise InvalidOptionError(
                "With -t/--tunnel rsync connects to the tunnel, so the destination %s can't name a port: "
                "give the daemon's port on the tunnel's host with --daemon-port instead." % expression
            )
        if self.daemon_port is not None:
            if not isinstance(self.tunnel, str):
                raise InvalidOptionError(
                    "--daemon-port names the daemon's port behind -t/--tunnel [USER@]HOST[:PORT]: without such "
                    "a tunnel, put the port in the destination (rsync://HOST:PORT/MODULE)."
                )
            if isinstance(self.daemon_port, bool) or not isinstance(self.daemon_port, int) or \
                    not 0 < self.daemon_port < 65536:
                raise InvalidOptionError("The daemon port %r is not a number from 1 to 65535." % (self.daemon_port,))
        if self.password_file and not self.destination.is_daemon:
            raise InvalidOptionError(
                "--password-file is for rsync daemon logins, but %s is not an rsync daemon "
                "(SSH destinations log in with SSH keys)." % expression
            )

    @property
    def crypto_context(self):
        """The execution context for unlocking and mounting: the destination's, or this system's for daemons."""
        return self.source_context if self.destination.is_daemon else self.destination_context

    def ensure_supported_platform(self):
        """
        Refuse to run anywhere but on Linux, unless :attr:`force` is set.

        :raises: :exc:`.UnsupportedPlatformError`.

        On this system the answer comes from :func:`os.uname()`, which is
        what ``uname`` prints, without starting it.
        """
        if runs_in_process(self.source_context, sudo=False):
            system = os.uname().sysname
        else:
            system = self.source_context.capture('uname', shell=False).strip()
        if system != 'Linux':
            if not self.force:
                raise UnsupportedPlatformError("This program was made for Linux, not %s: use -f/--force to run "
                                               "it anyway." % (system or "an unknown system"))
            logger.warning("Running on %s, which is not supported (forced).", system)

    def ensure_backup_target(self):
        """
        Refuse to overwrite a directory that holds files but was never a backup target, and mark a new target.

        :raises: :exc:`.UnmarkedDestinationError` (see :mod:`.markers`).
        """
        ensure_backup_target(self.destination_context, self.destination.directory, self.destination.parent_directory,
                             accept_existing=self.accept_existing, sudo=self.sudo_enabled, dry_run=self.dry_run)

    def lock_destination(self):
        """
        Lock the destination's backup directory against other runs, for the duration of a ``with`` block.

        :returns: A :class:`.DestinationLock`, or a context manager that does
                  nothing for dry runs (which change nothing) and for rsync
                  daemons (where the daemon's ``post-xfer exec`` run locks).
        """
        if self.dry_run or self.destination.is_daemon:
            return contextlib.nullcontext()
        directory = self.destination.parent_directory
        make_directory(self.destination_context, directory, sudo=self.sudo_enabled)
        return DestinationLock(self.destination_context, directory, sudo=self.sudo_enabled, wait=self.wait_for_lock)

    def unlock_device(self):
        """
        Unlock :attr:`crypto_device` for the duration of a ``with`` block.

        :returns: An :class:`.UnlockedDevice`, or a context manager that does
                  nothing when :attr:`crypto_device` isn't set.
        """
        if not self.crypto_device:
            return contextlib.nullcontext()
        return UnlockedDevice(self.crypto_context, self.crypto_device, sudo=self.sudo_enabled)

    def mount_filesystem(self):
        """
        Mount :attr:`mount_point` for the duration of a ``with`` block.

        :returns: A :class:`.MountedFilesystem`, or a context manager that
                  does nothing when :attr:`mount_point` isn't set.
        """
        if not self.mount_point:
            return contextlib.nullcontext()
        return MountedFilesystem(self.crypto_context, self.mount_point, sudo=self.sudo_enabled)

    def share_connection(self):
        """
        Send every command on an SSH destination, and the transfer, through one SSH connection.

        :returns: A context manager (see :func:`.shared_connection()`), or
                  one that does nothing for destinations not reached over SSH.
        """
        if not self.destination.is_remote_shell:
            return contextlib.nullcontext()
        return shared_connection(self.destination_context)

    def open_tunnel(self):
        """
        Open :attr:`tunnel` for the duration of a ``with`` block.

        :returns: A context manager that gives the open tunnel (see
                  :func:`.open_tunnel()`), or one that gives :data:`None`
                  when :attr:`tunnel` isn't set.
        """
        if not self.tunnel:
            return contextlib.nullcontext()
        if isinstance(self.tunnel, str):
            return open_tunnel(create_tunnel(self.tunnel, remote_port=self.daemon_port or RSYNCD_PORT))
        return open_tunnel(self.tunnel)

    def prepare_snapshot_method(self):
        """
        Choose the snapshot method afresh and get the destination ready for it (after mounting and locking).

        For an rsync daemon nothing is chosen: the daemon's ``post-xfer exec``
        run makes the snapshots, with a method of its own.
        """
        if self.destination.is_daemon:
            if self.snapshot_method != AUTOMATIC:
                logger.warning("The snapshot method %s has no effect here: the rsync daemon's post-xfer exec command "
                               "makes the snapshots, with its own --snapshot-method.", self.snapshot_method)
            return
        del self.snapshot_method_in_use
        if (self.backup_enabled or self.snapshot_enabled) and not self.dry_run:
            self.snapshot_method_in_use.prepare()

    def transfer_target(self):
        """
        Choose where rsync writes, for the duration of a ``with`` block that runs it.

        :returns: A context manager that gives a :class:`.TransferTarget`
                  (see :meth:`.SnapshotMethod.transfer_target()`), or one
                  that gives :data:`None` for dry runs and rsync daemons,
                  where rsync writes to the destination itself.
        """
        if self.dry_run or self.destination.is_daemon:
            return contextlib.nullcontext()
        return self.snapshot_method_in_use.transfer_target()

    def rsync_location(self, tunnel=None, target=None):
        """
        Render the destination for rsync's command line.

        :param tunnel: An open tunnel to the destination's rsync daemon (see
                       :meth:`open_tunnel()`), or :data:`None`.
        :param target: A :class:`.TransferTarget` (see :meth:`transfer_target()`),
                       or :data:`None` to write to the destination itself.
        :returns: :attr:`destination` in rsync's syntax, pointed at the
                  tunnel's local port when a tunnel is given, or at the
                  target's directory on the destination's system (a string).
        """
        if target is not None:
            return Destination(username=self.destination.username, hostname=self.destination.hostname,
                               directory=target.directory).expression
        if tunnel is None:
            return self.destination.expression
        return Destination(username=self.destination.username, hostname=LOOPBACK_ADDRESS,
                           port_number=tunnel.local_port, module=self.destination.module,
                           directory=self.destination.directory).expression

    def rsync_options(self):
        """
        Choose the rsync options that depend on the kind of destination.

        :returns: For SSH destinations ``--protect-args`` (so the remote
                  shell never interprets the directory's name) and, while
                  :meth:`share_connection()` is in effect, ``--rsh`` to send
                  the transfer through the shared connection;
                  ``--password-file`` when :attr:`password_file` is set
                  (a list of strings).
        """
        options = []
        if self.destination.is_remote_shell:
            options.append('--protect-args')
            if self.destination_context.rsync_shell:
                options.append('--rsh=%s' % self.destination_context.rsync_shell)
        if self.password_file:
            options.append('--password-file=%s' % self.password_file)
        return options

    def transfer_changes(self, tunnel=None, target=None):
        """
        Transfer the source to the destination with rsync.

        Exit codes 23 and 24 (some files couldn't be read, or vanished) are
        logged as warnings; the backup goes on. rsync's error messages are
        shown as they come and the last of them explain a failure.

        :param tunnel: An open tunnel to the destination's rsync daemon (see
                       :meth:`open_tunnel()`), or :data:`None` to connect
                       directly.
        :param target: Where rsync writes (a :class:`.TransferTarget` from
                       :meth:`transfer_target()`), or :data:`None` for the
                       destination itself.
        :returns: The :class:`.TransferStatistics` that rsync reported.
        :raises: :exc:`.TransferFailedError` for any other nonzero exit code.

        rsync's standard output is read as it comes (see
        :class:`.TransferMonitor`): its overall progress is shown when
        :attr:`show_progress` is set, and its statistics are collected.
        """
        if not self.dry_run and not self.destination.is_daemon:
            make_directory(self.destination_context, target.directory if target else self.destination.directory,
                           sudo=self.sudo_enabled)
        monitor = TransferMonitor(show_progress=self.show_progress)
        command = build_rsync_command(
            source=self.source,
            destination=self.rsync_location(tunnel, target),
            dry_run=self.dry_run,
            multi_fs=self.multi_fs,
            excluded_roots=self.excluded_roots + self.backup_inside_source(),
            exclude_list=self.exclude_list,
            extra_options=(self.rsync_options() + (target.rsync_options if target else [])
                           + list(monitor.rsync_options)),
        )
        logger.info("Transferring %s to %s ..", self.source, self.destination.expression)
        timer = Timer()
        with ErrorOutputRecorder() as errors:
            rsync = self.source_context.execute(
                *command, check=False, shell=False, environment=dict(HOME=''),
                ionice=self.ionice, sudo=self.sudo_enabled, stderr_file=errors.stream,
                **monitor.command_options
            )
            monitor.follow(rsync)
        if rsync.returncode in WARNING_EXIT_CODES:
            logger.warning("rsync exited with code %i: %s (%s); the backup goes on.", rsync.returncode,
                           WARNING_EXIT_CODES[rsync.returncode], errors.describe_affected_files(rsync.returncode))
        elif rsync.returncode != 0:
            full = self.describe_full_destination() if errors.disk_full else ''
            raise TransferFailedError("%srsync failed with %s; no snapshot was made and the earlier snapshots "
                                      "are intact." % (full, explain_rsync_failure(rsync.returncode, errors.lines)))
        logger.info("Transferred %s to %s in %s.", self.source, self.destination.expression, timer)
        if target and target.directory != self.destination.directory:
            # rsync built a new tree, where files gone from the source are simply
            # missing: it deleted nothing, so it can't count what went away.
            monitor.statistics.deleted_files = None
        return monitor.statistics

    def backup_inside_source(self):
        """
        Keep the backup out of its own source.

        :returns: rsync filter patterns (absolute paths, like
                  :attr:`excluded_roots`) that leave out the backup directory
                  when it lies inside the source (also with :attr:`multi_fs`).
        """
        if not self.destination.is_local:
            return []
        return exclude_backup_from_source(self.source, self.destination.directory, self.destination.parent_directory)

    def create_snapshot(self):
        """
        Snapshot the destination directory into its parent directory.

        :returns: The pathname of the new snapshot (a string).
        """
        method = self.snapshot_method_in_use
        return create_snapshot(
            self.destination_context,
            directory=self.destination.directory,
            parent_directory=self.destination.parent_directory,
            copy_tree=method.copy_tree,
            sudo=self.sudo_enabled,
            dry_run=self.dry_run,
            ionice=self.ionice,
            remove=method.remove_trees,
        )

    def rotate_snapshots(self):
        """
        Remove the snapshots that :attr:`rotation_scheme` doesn't keep.

        :returns: The :class:`.RotationPlan` that was carried out.
        :raises: :exc:`.InvalidOptionError` when :attr:`rotation_scheme`
                 isn't valid (see :func:`.check_rotation_scheme()`).
        """
        return rotate_snapshots(
            self.destination_context,
            directory=self.destination.parent_directory,
            rotation_scheme=check_rotation_scheme(self.rotation_scheme),
            prefer_recent=self.prefer_recent,
            strict=self.strict,
            dry_run=self.dry_run,
            ionice=self.ionice,
            sudo=self.sudo_enabled,
            remove=self.snapshot_method_in_use.remove_trees,
        )

    def describe_full_destination(self):
        """
        Describe a destination that ran out of space.

        :returns: The start of the failure message (a string), for example
                  "The destination is full (12 KB free of 2 MB): ".
        """
        space = self.measure_disk_space()
        if space is None:
            return "The destination is full: "
        return "The destination is full (%s free of %s): " % (format_size(space.free), format_size(space.total))

    def measure_disk_space(self):
        """
        Measure the free space on the destination's filesystem.

        :returns: A :class:`.DiskSpace`, or :data:`None` for rsync daemons
                  (which run no commands for us) and for destinations that
                  can't be measured.

        A dry run's destination directory may not exist yet; its parent
        directory is measured then.
        """
        if self.destination.is_daemon:
            return None
        context = self.destination_context
        return (measure_disk_space(context, self.destination.directory)
                or measure_disk_space(context, self.destination.parent_directory))

    def notify_starting(self):
        """Show a desktop notification that the backup starts."""
        if self.notifications_enabled and not self.dry_run:
            notify("Starting the backup to %s." % self.destination.expression)

    def notify_finished(self, timer):
        """
        Show a desktop notification that the backup finished.

        :param timer: A :class:`~humanfriendly.Timer` started with the backup.
        """
        if self.notifications_enabled and not self.dry_run:
            notify("Finished the backup to %s in %s." % (self.destination.expression, timer))

    def notify_failed(self, timer):
        """
        Show a desktop notification that the backup failed.

        :param timer: A :class:`~humanfriendly.Timer` started with the backup.
        """
        if self.notifications_enabled and not self.dry_run:
            notify("The backup to %s failed after %s." % (self.destination.expression, timer), urgency='critical')
