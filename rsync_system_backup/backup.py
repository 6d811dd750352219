"""
The :class:`RsyncSystemBackup` orchestrator.

It strings the steps of a system backup together: unlock and mount the backup
disk when asked to, transfer the system with rsync, snapshot the result and
rotate old snapshots, then undo the unlocking and mounting. Each step lives in
a module of its own; this class holds the configuration and the order.
"""

import logging
import os

from humanfriendly import Timer
from property_manager import PropertyManager, cached_property, lazy_property, mutable_property, set_property

from rsync_system_backup import DEFAULT_ROTATION_SCHEME
from rsync_system_backup.checks.configuration import explain_daemon_steps
from rsync_system_backup.checks.values import CheckedProperties
from rsync_system_backup.connections.ssh import create_remote_context
from rsync_system_backup.connections.tunnel import parse_tunnel_spec
from rsync_system_backup.destinations import Destination
from rsync_system_backup.exceptions import DestinationContextUnavailable, InvalidDestinationError, InvalidOptionError
from rsync_system_backup.option_keywords import document_option_keywords
from rsync_system_backup.processes.command_failures import explain_failures
from rsync_system_backup.processes.sessions import create_local_context
from rsync_system_backup.processes.signals import CleanupStack
from rsync_system_backup.reporting.summary import BackupSummary
from rsync_system_backup.snapshots.choice import choose_snapshot_method
from rsync_system_backup.snapshots.method_names import AUTOMATIC, check_method_name
from rsync_system_backup.backup_steps import BackupSteps
from rsync_system_backup.sources.names import SNAPSHOT_AUTOMATICALLY, check_mode
from rsync_system_backup.transfer.command import DEFAULT_EXCLUDED_ROOTS

logger = logging.getLogger(__name__)


@document_option_keywords
class RsyncSystemBackup(CheckedProperties, BackupSteps, PropertyManager):

    """
    Make a full system backup with rsync, a snapshot and rotation.

    Give the properties as keyword arguments and call :meth:`execute()`
    (each value is checked where it is set, see :mod:`.checks.values`)::

        from rsync_system_backup import RsyncSystemBackup
        RsyncSystemBackup(destination='/mnt/backups/latest').execute()

    The options of the command line and the keyword arguments they set
    (see :mod:`.option_keywords`):
    """

    @mutable_property
    def accept_existing(self):
        """
        :data:`True` to let the first backup overwrite a destination directory that already holds files.

        Without it such a backup is refused (see :mod:`.backup_set.marker`), because
        rsync would replace those files with a copy of the source.
        """
        return False

    @mutable_property
    def after_snapshot(self):
        """
        A function to call after the snapshot step and before rotation (:data:`None`, the default, for none).

        It gets this object as its argument; :attr:`summary` says what the run
        has done so far (the new snapshot's pathname among it). It is called
        where the snapshot step ends, also when that step is turned off, and in
        dry runs. When it raises an exception the run stops there, as after a
        failed step: the snapshot stays, rotation doesn't run, every cleanup
        runs, and :meth:`execute()` raises the exception. A job of a
        configuration file runs its ``after`` hook with it (see :mod:`.config.hooks`).
        """
        return None

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
    def create_set(self):
        """
        :data:`True` to let the first backup create a new backup set where the backup disk looks unmounted.

        Without it a new set is refused below a mount point of ``/etc/fstab``
        (or of a systemd mount unit) that isn't mounted, and in an empty
        directory that looks like a mount point (in ``/mnt``, ``/media``, ...)
        with nothing mounted on it, because the backup would go to the
        filesystem underneath (see :mod:`.checks.new_sets`). The command
        line's ``--create-set``.
        """
        return False

    @mutable_property
    def crypto_device(self):
        """The target name in ``/etc/crypttab`` of an encrypted filesystem to unlock (a string or :data:`None`)."""
        return None

    @mutable_property
    def keep_as(self):
        """
        A name to keep the snapshot of this run under, so that rotation never removes it (a string or :data:`None`).

        The command line's ``--keep=NAME`` (see :mod:`.backup_set.kept`): the
        name is letters, digits, ``.``, ``_``, ``+`` and ``-``, and no other
        snapshot of the set may be kept under it. It needs the snapshot step.
        """
        return None

    @mutable_property
    def manifests_enabled(self):
        """
        :data:`True` to record every entry of each new snapshot in its manifest (see :mod:`.manifests.format`).

        Such a manifest lets ``--verify`` check the snapshot later and
        ``--diff`` compare it with content checksums. It is on by default;
        :data:`False` (``--no-manifest``) has the manifest only record the
        snapshot method. After a planned transfer the manifest costs what the
        transfer changed, not the size of the tree (see :mod:`.manifests.recording`).
        """
        return True

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
            raise DestinationContextUnavailable(explain_daemon_steps(self.destination))
        if self.destination.is_remote_shell:
            return create_remote_context(self.destination.ssh_alias, self.destination.username or None)
        return create_local_context()

    @mutable_property
    def daemon_exit_status(self):
        """
        The exit status of the rsync daemon's transfer that this run follows (an integer or :data:`None`).

        It defaults to ``$RSYNC_EXIT_STATUS``, which an rsync daemon sets for
        its ``post-xfer exec`` command (-1 when the transfer ended abnormally).
        See :func:`.check_daemon_transfer()` for what each value does.

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
    def list_changes(self):
        """
        :data:`True` to print rsync's list of what a dry run would change (one line each, on standard output).

        :data:`False` leaves only the counts, in :attr:`summary`; the command
        line lists the changes with ``-v``. A run that isn't a dry run lists nothing either way.
        """
        return True

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

    @mutable_property
    def source_snapshot(self):
        """
        Whether the transfer reads a read-only snapshot of the source: ``auto`` (the default) or ``never``.

        With ``auto``, a source that is the top of a btrfs subvolume is
        snapshotted first, rsync reads the snapshot, and it is kept as the
        parent of the next run; any other source is read live (see
        :mod:`.sources.snapshots`). The command line's ``--source-snapshot``.

        :raises: :exc:`.InvalidOptionError` (on assignment) for any other value.
        """
        return SNAPSHOT_AUTOMATICALLY

    @source_snapshot.setter
    def source_snapshot(self, value):
        """Check the mode on assignment."""
        set_property(self, 'source_snapshot', check_mode(value))

    @mutable_property
    def full_check(self):
        """
        :data:`True` to plan the transfer with rsync's dry run, also where the source's snapshots could plan it.

        A run that plans with rsync (by this, or at least once a week by
        itself) compares the whole source with ``latest``; see
        :mod:`.transfer.plan_choice`. The command line's ``--full-check``.
        """
        return False

    @lazy_property(writable=True)
    def source_context(self):
        """The execution context in which rsync runs (the local system)."""
        return create_local_context()

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
        :mod:`.snapshots.methods`).

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
        chooses it afresh once the backup disk is mounted (with the
        filesystem type that the checks of the mounted destination found
        out, see :meth:`~.BackupSteps.check_mounted_destination()`, taken once).
        """
        filesystem_type, self.destination_filesystem_type = self.destination_filesystem_type, None
        return choose_snapshot_method(self.snapshot_method, self.destination_context, self.destination.directory,
                                      sudo=self.sudo_enabled, ionice=self.ionice,
                                      daemon_transfer=self.daemon_exit_status is not None, dry_run=self.dry_run,
                                      transfer=self.backup_enabled, filesystem_type=filesystem_type)

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
        self.resolve_relative_paths()
        self.ensure_supported_platform()
        self.execute_helper()

    @property
    def all_steps_enabled(self):
        """:data:`True` when transfer, snapshot and rotation are all enabled (the default)."""
        return self.backup_enabled and self.snapshot_enabled and self.rotate_enabled

    def execute_helper(self):
        """
        Run the steps of :meth:`execute()` after the platform check.

        :raises: As :meth:`execute()`.
        """
        self.check_configuration()
        timer = Timer()
        self.summary = summary = BackupSummary(destination=self.destination.expression, dry_run=self.dry_run)
        started = False
        try:
            with CleanupStack() as stack:
                stack.enter_context(explain_failures())
                stack.enter_context(self.share_connection())
                self.check_destination_access()
                self.notify_starting()
                started = True
                stack.enter_context(self.unlock_device())
                stack.enter_context(self.mount_filesystem())
                self.check_mounted_destination()
                if self.backup_enabled and not self.destination.is_daemon:
                    self.ensure_backup_target()
                elif self.daemon_exit_status is not None and self.snapshot_enabled and not self.destination.is_daemon:
                    self.mark_daemon_set()
                stack.enter_context(self.lock_destination())
                kept_marks = self.claim_keep_name() if self.keep_as else None
                self.prepare_snapshot_method()
                builder = stack.enter_context(self.manifest_builder())
                pending_record = None
                if self.backup_enabled:
                    tunnel = stack.enter_context(self.open_tunnel())
                    origin = stack.enter_context(self.snapshot_source())
                    choice = self.choose_plan(origin)
                    wanted = builder is not None and builder.uses_changes
                    with summary.timed('transfer'), self.transfer_target(changes_wanted=wanted) as target:
                        summary.transfer_statistics = self.transfer_changes(tunnel, target, origin, choice)
                    if builder is not None:
                        # The manifest is described from here on, while the snapshot is made.
                        builder.give_changes(self.transferred_changes())
                    origin.keep(complete=not summary.transfer_statistics.incomplete)
                    if choice is not None:
                        if self.snapshot_enabled and self.snapshot_method_in_use.copies_reach_disk:
                            # The snapshot will put latest on the disk: the record then needs no flush of its own.
                            pending_record = choice
                        else:
                            choice.record()
                elif self.daemon_exit_status is not None and self.snapshot_enabled and not self.destination.is_daemon:
                    self.forget_source_snapshot()
                if self.destination.is_daemon and (self.snapshot_enabled or self.rotate_enabled):
                    # The transfer is done; the daemon itself must snapshot and rotate.
                    raise DestinationContextUnavailable(explain_daemon_steps(self.destination, transferred=True))
                if self.snapshot_enabled:
                    with summary.timed('snapshot'):
                        # The method was prepared under the lock, and listed the set then (a dry run prepares nothing).
                        listed = None if self.dry_run else self.snapshot_method_in_use.replacement.parent_names
                        summary.snapshot_pathname = self.create_snapshot(builder, listed)
                        if pending_record is not None:
                            pending_record.record(flush=False)
                        if self.keep_as:
                            self.keep_new_snapshot(summary.snapshot_pathname, kept_marks)
                            summary.kept_as = self.keep_as
                if self.after_snapshot is not None:
                    self.after_snapshot(self)
                if self.rotate_enabled:
                    with summary.timed('rotation'):
                        summary.rotation_plan = self.rotate_snapshots()
                # Measured before the backup disk is unmounted.
                summary.disk_space = self.measure_disk_space()
        except BaseException:
            if started:
                self.notify_failed(timer)
            raise
        summary.total_time = timer.elapsed_time
        self.notify_finished(timer)
