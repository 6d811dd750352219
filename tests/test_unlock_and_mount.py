"""
End-to-end tests of ``-m/--mount`` and ``-c/--crypto`` (``disks/unlock_and_mount.py``) on real ext4 images.

Every run happens in a private mount namespace (see :mod:`support.namespaces`) whose
``/etc/fstab`` and ``/etc/crypttab`` name an ext4 image in the test's
temporary directory: mounting, the backup and unmounting are real. Only
``cryptdisks_start`` and ``cryptdisks_stop`` are stand-ins (this kernel has
no device-mapper): they make and remove ``/dev/mapper/NAME`` as a symbolic
link to the image. ``mount``, ``umount`` and ``rsync`` are wrapped by scripts
that note each call in an event log before running the real program; the
``rsync`` wrapper also notes whether the disk was mounted, unlocked and
locked against other runs at that moment. Every test checks that no mount
and no loop device is left behind and that the host's ``/etc/fstab``,
``/etc/crypttab``, ``/dev/mapper`` and ``/dev/disk`` didn't change.
"""

import os
import shlex
import shutil
import signal
import subprocess
import sys

import pytest

from support.disk_images import list_image, make_ext4_image, read_image_file
from support.fake_cryptdisks import write_fake_cryptdisks
from support.leaks import leak_check
from support.namespaces import mapper_probe, mount_probe, namespace_command, namespace_commands, run_in_namespace
from support.processes import wait_for
from support.remote import ClientHome, wait_until_idle
from support.servers import SSHServer
from support.cli import assert_failed, command_environment
from support.stand_ins import write_script
from support.trees import SNAPSHOT_NAME

REQUIRED_PROGRAMS = ('unshare', 'mount', 'umount', 'mountpoint', 'losetup', 'mkfs.ext4', 'debugfs', 'flock',
                     'script', 'rsync')

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0 or not all(shutil.which(name) for name in REQUIRED_PROGRAMS),
                       reason='needs root and %s' % ', '.join(REQUIRED_PROGRAMS)),
    pytest.mark.usefixtures('unchanged_host'),
]

TARGET = 'backups'
"""The crypttab target name of the encrypted backup disk."""

MAPPER_DEVICE = '/dev/mapper/' + TARGET
"""Where the unlocked disk appears."""

CRON_PATH = '/usr/bin:/bin'
"""The ``PATH`` that cron gives a command: none of the directories of system programs."""

SYSTEM_PROGRAMS = '/usr/local/sbin'
"""A directory of system programs; a test namespace binds the stand-ins of cryptdisks over what it holds."""

OLD_SNAPSHOTS = ('2001-01-01_00-00-00', '2001-01-15_00-00-00')
"""Snapshots on the image before the full chain runs: rotation keeps the first (monthly) and removes the second."""


class Rig(object):

    """A source tree, an ext4 image, a mount point and stand-ins that log to one event log."""

    def __init__(self, tmp_path, fake_bin):
        """Create everything in the test's temporary directory."""
        self.directory = tmp_path
        self.fake_bin = fake_bin
        self.crypt_bin = tmp_path / 'crypt-bin'
        self.events_file = tmp_path / 'events.log'
        self.caller_file = tmp_path / 'rsync-caller.pid'
        self.source = tmp_path / 'source'
        (self.source / 'etc').mkdir(parents=True)
        (self.source / 'etc' / 'hostname').write_text('disk-test\n')
        (self.source / 'home' / 'alice').mkdir(parents=True)
        (self.source / 'home' / 'alice' / 'notes.txt').write_text('notes\n')
        self.mount_point = str(tmp_path / 'mnt')
        os.mkdir(self.mount_point)
        self.backups = os.path.join(self.mount_point, 'backups')
        self.destination = os.path.join(self.backups, 'latest')
        self.image = make_ext4_image(tmp_path / 'disk.img', size_mb=16)
        self.fstab = '# test fstab\n%s\t%s  ext4 loop,noauto 0 0\n' % (self.image, self.mount_point)
        self.crypto_fstab = '/dev/mapper/%s %s ext4 loop,noauto 0 2  # the unlocked disk\n' % (
            TARGET, self.mount_point)
        for name in ('mount', 'umount'):
            write_script(fake_bin / name, 'echo "%s $*" >> %s\nexec %s "$@"\n'
                         % (name, shlex.quote(str(self.events_file)), shlex.quote(shutil.which(name))))
        self.write_rsync()
        write_fake_cryptdisks(self.crypt_bin, self.events_file)

    def fill_image(self, contents):
        """Recreate the image with a tree of files on it."""
        make_ext4_image(self.image, size_mb=16, contents=contents)

    def write_rsync(self, fail=False, hang=False):
        """
        Wrap rsync: note the state of the disk, then run the real rsync.

        :param fail: :data:`True` to exit 12 instead.
        :param hang: :data:`True` to write the caller's process id to :attr:`caller_file`
                     and sleep instead.
        """
        rsync = shlex.quote(shutil.which('rsync'))
        if hang:
            finish = 'echo $PPID > %s && sleep 60' % shlex.quote(str(self.caller_file))
        else:
            finish = 'exit 12' if fail else 'exec %s "$@"' % rsync
        lock_file = shlex.quote(os.path.join(self.backups, '.rsync-system-backup.lock'))
        write_script(self.fake_bin / 'rsync', '\n'.join([
            '[ "$*" = --version ] && exec %s --version' % rsync,
            'state=rsync',
            'if mountpoint -q %s; then state="$state mounted"; else state="$state not-mounted"; fi'
            % shlex.quote(self.mount_point),
            'if [ -e %s ]; then state="$state unlocked"; else state="$state locked"; fi' % MAPPER_DEVICE,
            'if [ -e %s ] && ! flock -n %s true; then state="$state destination-locked"; fi' % (lock_file, lock_file),
            'echo "$state" >> %s' % shlex.quote(str(self.events_file)),
            finish,
        ]) + '\n')

    def fake_mount_without_mounting(self):
        """Replace the mount wrapper with one that says it mounted but doesn't."""
        write_script(self.fake_bin / 'mount', 'echo "mount $*" >> %s\nexit 0\n' % shlex.quote(str(self.events_file)))

    @property
    def events(self):
        """The calls noted in the event log (a list of strings)."""
        try:
            return self.events_file.read_text().replace(self.mount_point, 'MP').splitlines()
        except FileNotFoundError:
            return []

    def command(self, *arguments, before=None, environment=None):
        """
        The command line of the program (after shell code to prepare the namespace, if given).

        :param environment: The program's whole environment (a dict, see
                            :func:`cron_environment()`), or :data:`None`
                            for the one of :meth:`environment()`.
        """
        command = [sys.executable, '-m', 'rsync_system_backup'] + [str(a) for a in arguments]
        if environment is not None:
            command = ['env', '-i'] + ['%s=%s' % item for item in sorted(environment.items())] + command
        if before:
            command = ['sh', '-c', before + ' && exec "$@"', 'sh'] + command
        return command

    def namespace_argv(self, arguments, fstab=None, crypttab=None, before=None, survive_signals=False,
                       environment=None):
        """
        The command line that runs the program in a test namespace, then probes the state of the disk.

        :param survive_signals: See :func:`support.namespaces.namespace_commands()`.
        :param environment: See :meth:`command()`.
        """
        return namespace_commands([self.command(*arguments, before=before, environment=environment),
                                   mount_probe(self.mount_point),
                                   mapper_probe(TARGET)], fstab=fstab, crypttab=crypttab,
                                  path=[self.fake_bin, self.crypt_bin], survive_signals=survive_signals)

    def environment(self):
        """The environment of the program: no system log, no rsync daemon variables."""
        return command_environment()

    def start(self, *arguments, fstab=None, crypttab=None):
        """
        Start the program (see :meth:`namespace_argv()`) in a session of its own; returns a :class:`Popen`.

        The shell around it outlives the signals of a terminal (see
        :func:`support.namespaces.namespace_commands()`), so a test can
        send them to the whole process group, as a terminal does.
        """
        return subprocess.Popen(self.namespace_argv(arguments, fstab, crypttab, survive_signals=True),
                                stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.environment(), text=True,
                                start_new_session=True)

    def run(self, *arguments, fstab=None, crypttab=None, before=None, terminal=False, environment=None):
        """
        Run the program (see :meth:`namespace_argv()`) without a terminal, or with one.

        :param before: Shell code that prepares the namespace before the program runs.
        :param terminal: :data:`True` to run it under ``script``, which gives
                         it a pseudo-terminal on all three standard streams
                         (and merges them).
        :param environment: See :meth:`command()`.
        :returns: A :class:`RunResult`.
        """
        argv = self.namespace_argv(arguments, fstab, crypttab, before, environment=environment)
        if terminal:
            argv = ['script', '-qec', shlex.join(argv), '/dev/null']
        process = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                 env=self.environment(), timeout=120)
        if terminal:
            output = process.stdout.replace('\r\n', '\n')
            return RunResult(process.returncode, output, output, self.mount_point)
        return RunResult(process.returncode, process.stdout, process.stderr, self.mount_point)

    def read(self, pathname):
        """Read a file on the image (which must not be mounted)."""
        return read_image_file(self.image, pathname).decode()


class RunResult(object):

    """The exit code and output of a run, and what the probes found after it."""

    def __init__(self, returncode, stdout, stderr, mount_point):
        """Split the probes' two lines off standard output."""
        lines = stdout.splitlines()
        self.returncode = returncode
        self.stdout = '\n'.join(lines[:-2])
        self.stderr = stderr
        probes = lines[-2:]
        self.mounted = probes[:1] == ['MOUNTED %s' % mount_point]
        self.unlocked = probes[1:] == ['UNLOCKED %s' % TARGET]
        assert probes[0] in ('MOUNTED %s' % mount_point, 'NOT-MOUNTED %s' % mount_point), self
        assert probes[1] in ('UNLOCKED %s' % TARGET, 'LOCKED %s' % TARGET), self

    def __repr__(self):
        """Show everything, so a failing assertion explains itself."""
        return 'RunResult(returncode=%r, mounted=%r, unlocked=%r, stdout=%r, stderr=%r)' % (
            self.returncode, self.mounted, self.unlocked, self.stdout, self.stderr)


@pytest.fixture
def rig(tmp_path, fake_bin):
    """A :class:`Rig`; afterwards no mount of its image or below its directory and no loop device may be left."""
    rig = Rig(tmp_path, fake_bin)
    with leak_check([rig.image], [tmp_path]):
        yield rig


def snapshots_on(rig):
    """The snapshot names in the backup directory on the image."""
    return [name for name in list_image(rig.image, '/backups') if SNAPSHOT_NAME.match(name)]


class TestMount:

    """``-m/--mount``, with the image listed directly in the test fstab."""

    def test_mounted_during_the_run_and_unmounted_after(self, rig):
        result = rig.run('--disable-notifications', '--mount=%s' % rig.mount_point, rig.source, rig.destination,
                         fstab=rig.fstab)
        assert result.returncode == 0, result
        assert rig.events == ['mount -- MP', 'rsync mounted locked destination-locked', 'umount -- MP']
        assert not result.mounted
        assert rig.read('/backups/latest/etc/hostname') == 'disk-test\n'
        assert rig.read('/backups/latest/home/alice/notes.txt') == 'notes\n'
        assert len(snapshots_on(rig)) == 1
        # Nothing went to the directory under the mount point.
        assert os.listdir(rig.mount_point) == []

    def test_mount_point_with_trailing_slash(self, rig):
        result = rig.run('--disable-notifications', '--backup', '--mount=%s/' % rig.mount_point, rig.source,
                         rig.destination, fstab=rig.fstab)
        assert result.returncode == 0, result
        assert rig.events == ['mount -- MP/', 'rsync mounted locked destination-locked', 'umount -- MP/']
        assert rig.read('/backups/latest/etc/hostname') == 'disk-test\n'

    def test_already_mounted_filesystem_stays_mounted(self, rig):
        # -v: without a terminal, the informational message about the mount needs it.
        result = rig.run('-v', '--disable-notifications', '-m', rig.mount_point, rig.source, rig.destination,
                         fstab=rig.fstab, before='%s %s' % (shutil.which('mount'), shlex.quote(rig.mount_point)))
        assert result.returncode == 0, result
        assert rig.events == ['rsync mounted locked destination-locked']
        assert result.mounted
        assert 'is mounted already' in result.stderr
        assert rig.read('/backups/latest/etc/hostname') == 'disk-test\n'

    def test_unmounted_after_a_failing_rsync(self, rig):
        rig.write_rsync(fail=True)
        result = rig.run('--disable-notifications', '--mount=%s' % rig.mount_point, rig.source, rig.destination,
                         fstab=rig.fstab)
        assert_failed(result, 'rsync failed')
        assert rig.events == ['mount -- MP', 'rsync mounted locked destination-locked', 'umount -- MP']
        assert not result.mounted
        assert snapshots_on(rig) == []

    @pytest.mark.parametrize('where', ['elsewhere', 'mount-point-itself', 'beside', 'link-out-before-mounting'])
    def test_destination_outside_the_mount_point_is_refused(self, rig, where):
        elsewhere = rig.directory / 'elsewhere'
        elsewhere.mkdir()
        destination = {
            'elsewhere': str(elsewhere / 'latest'),
            'mount-point-itself': rig.mount_point,
            'beside': rig.mount_point + '-2/latest',
            'link-out-before-mounting': os.path.join(rig.mount_point, 'link', 'latest'),
        }[where]
        if where == 'link-out-before-mounting':
            # A symbolic link in the (unmounted) mount point that leads out of it.
            os.symlink(str(elsewhere), os.path.join(rig.mount_point, 'link'))
        result = rig.run('--disable-notifications', '--mount=%s' % rig.mount_point, rig.source, destination,
                         fstab=rig.fstab)
        assert_failed(result, 'The destination %s' % destination, 'mount point %s' % rig.mount_point)
        # Refused before anything happened.
        assert rig.events == []
        assert os.listdir(str(elsewhere)) == []
        assert list_image(rig.image) == ['lost+found']

    def test_symbolic_link_out_of_the_mounted_filesystem_is_refused(self, rig, tmp_path):
        elsewhere = tmp_path / 'elsewhere'
        elsewhere.mkdir()
        contents = tmp_path / 'contents'
        contents.mkdir()
        os.symlink(str(elsewhere), str(contents / 'backups'))
        rig.fill_image(contents)
        result = rig.run('--disable-notifications', '--mount=%s' % rig.mount_point, rig.source, rig.destination,
                         fstab=rig.fstab)
        assert_failed(result, 'The destination %s (%s/latest) is not inside the mount point %s'
                      % (rig.destination, elsewhere, rig.mount_point))
        assert rig.events == ['mount -- MP', 'umount -- MP']
        assert not result.mounted
        assert os.listdir(str(elsewhere)) == []

    def test_destination_through_a_symbolic_link_is_accepted(self, rig, tmp_path):
        link = tmp_path / 'disk-link'
        os.symlink(rig.mount_point, str(link))
        result = rig.run('--disable-notifications', '--backup', '--mount=%s' % rig.mount_point, rig.source,
                         link / 'backups' / 'latest', fstab=rig.fstab)
        assert result.returncode == 0, result
        assert rig.events == ['mount -- MP', 'rsync mounted locked destination-locked', 'umount -- MP']
        assert rig.read('/backups/latest/etc/hostname') == 'disk-test\n'

    def test_relative_mount_point_is_refused(self, rig):
        result = rig.run('--disable-notifications', '--mount=mnt', rig.source, rig.destination, fstab=rig.fstab)
        assert_failed(result, "The mount point 'mnt' is a relative path")
        assert rig.events == []

    def test_mount_that_reports_success_without_mounting(self, rig):
        rig.fake_mount_without_mounting()
        result = rig.run('--disable-notifications', '--mount=%s' % rig.mount_point, rig.source, rig.destination,
                         fstab=rig.fstab)
        assert_failed(result, 'Failed to mount %s (mount reported success' % rig.mount_point,
                      'device %s, type ext4, options loop,noauto' % rig.image)
        assert rig.events == ['mount -- MP']
        assert os.listdir(rig.mount_point) == []

    @pytest.mark.parametrize('device', ['missing.img', 'UUID=0e2d4b9a-rsb-missing'])
    def test_missing_disk_is_skipped_quietly_without_a_terminal(self, rig, notifications_log, device):
        """-m alone with the disk unplugged: skipped quietly under cron, as -c does (issue 22, item 5)."""
        path = str(rig.directory / device) if device.endswith('.img') else device
        fstab = '%s %s ext4 loop,noauto 0 0\n' % (path, rig.mount_point)
        result = rig.run('-m', rig.mount_point, rig.source, rig.destination, fstab=fstab)
        assert result.returncode == 0, result
        skipped = [line for line in result.stderr.splitlines() if 'Skipping backup' in line]
        assert len(skipped) == 1 and ' INFO ' in skipped[0], result
        device_path = path if device.endswith('.img') else '/dev/disk/by-uuid/0e2d4b9a-rsb-missing'
        assert skipped[0].endswith("Skipping backup: The backup disk %s (%s in /etc/fstab) isn't connected."
                                   % (device_path, rig.mount_point)), result
        assert 'ERROR' not in result.stderr and 'WARNING' not in result.stderr, result
        assert not notifications_log.exists()
        assert rig.events == []
        assert os.listdir(rig.mount_point) == []

    def test_label_that_udev_escapes_is_left_to_mount(self, rig):
        """A label with a space has an escaped /dev/disk/by-label link: mount decides, no quiet skip on a guess."""
        result = rig.run('--disable-notifications', '-m', rig.mount_point, rig.source, rig.destination,
                         fstab='LABEL=rsb\\040missing %s ext4 noauto 0 0\n' % rig.mount_point)
        assert_failed(result, 'Failed to mount %s' % rig.mount_point)
        assert 'Skipping' not in result.stderr
        assert rig.events == ['mount -- MP']
        assert os.listdir(rig.mount_point) == []

    def test_missing_disk_is_an_error_on_a_terminal(self, rig):
        """On a terminal the same run is an error that says the disk isn't connected."""
        missing = rig.directory / 'missing.img'
        result = rig.run('--disable-notifications', '-m', rig.mount_point, rig.source, rig.destination,
                         fstab='%s %s ext4 loop,noauto 0 0\n' % (missing, rig.mount_point), terminal=True)
        assert_failed(result, "The backup disk %s (%s in /etc/fstab) isn't connected." % (missing, rig.mount_point))
        assert 'Skipping' not in result.stderr
        assert rig.events == []
        assert os.listdir(rig.mount_point) == []

    def test_mount_point_without_fstab_entry(self, rig):
        result = rig.run('--disable-notifications', '--mount=%s' % rig.mount_point, rig.source, rig.destination,
                         fstab='# nothing here\n')
        assert_failed(result, 'Failed to mount %s (mount exited with code' % rig.mount_point,
                      '/etc/fstab has no entry for it')
        assert rig.events == ['mount -- MP']
        assert os.listdir(rig.mount_point) == []


class TestCrypto:

    """``-c/--crypto``: the test crypttab names the image, the fstab mounts ``/dev/mapper/backups``."""

    @pytest.mark.parametrize('source', ['missing.img', 'UUID=0e2d4b9a-rsb-missing'])
    def test_missing_disk_is_skipped_quietly_without_a_terminal(self, rig, notifications_log, source):
        crypttab = '%s %s none luks\n' % (TARGET, rig.directory / source if source.endswith('.img') else source)
        result = rig.run('-c', TARGET, '-m', rig.mount_point, rig.source, rig.destination,
                         fstab=rig.crypto_fstab, crypttab=crypttab)
        assert result.returncode == 0, result
        skipped = [line for line in result.stderr.splitlines() if 'Skipping backup' in line]
        assert len(skipped) == 1 and ' INFO ' in skipped[0], result
        assert "isn't connected" in skipped[0]
        if source.startswith('UUID='):
            assert '/dev/disk/by-uuid/0e2d4b9a-rsb-missing' in skipped[0]
        assert 'ERROR' not in result.stderr and 'WARNING' not in result.stderr, result
        assert not notifications_log.exists()
        assert rig.events == []

    def test_missing_disk_is_an_error_on_a_terminal(self, rig, notifications_log):
        crypttab = '%s %s none luks\n' % (TARGET, rig.directory / 'missing.img')
        result = rig.run('-c', TARGET, '-m', rig.mount_point, rig.source, rig.destination,
                         fstab=rig.crypto_fstab, crypttab=crypttab, terminal=True)
        assert_failed(result, "The backup disk %s (%s in /etc/crypttab) isn't connected"
                      % (rig.directory / 'missing.img', TARGET))
        assert 'Skipping' not in result.stderr
        assert rig.events == []

    @pytest.mark.parametrize('tag', [None, 'UUID', 'LABEL', 'PARTUUID'])
    def test_unlocks_mounts_unmounts_and_locks(self, rig, tag):
        if tag:
            # What udev would make for the disk.
            directory = '/dev/disk/by-%s' % tag.lower()
            before = 'mkdir %s && ln -s %s %s/rsb-test-disk' % (directory, rig.image, directory)
            source = '%s=rsb-test-disk' % tag
        else:
            before, source = None, rig.image
        crypttab = '# <target> <source> <key file> <options>\n%s\t%s  /root/backups.key  luks,noauto\n' % (
            TARGET, source)
        result = rig.run('--disable-notifications', '--backup', '--crypto=%s' % TARGET,
                         '--mount=%s' % rig.mount_point, rig.source, rig.destination,
                         fstab=rig.crypto_fstab, crypttab=crypttab, before=before)
        assert result.returncode == 0, result
        assert rig.events == ['start backups', 'mount -- MP', 'rsync mounted unlocked destination-locked',
                              'umount -- MP', 'stop backups']
        assert not result.mounted and not result.unlocked
        assert rig.read('/backups/latest/etc/hostname') == 'disk-test\n'

    def test_locked_again_after_a_failing_rsync(self, rig):
        rig.write_rsync(fail=True)
        result = rig.run('--disable-notifications', '-c', TARGET, '-m', rig.mount_point, rig.source,
                         rig.destination, fstab=rig.crypto_fstab, crypttab='%s %s\n' % (TARGET, rig.image))
        assert_failed(result, 'rsync failed')
        assert rig.events == ['start backups', 'mount -- MP', 'rsync mounted unlocked destination-locked',
                              'umount -- MP', 'stop backups']
        assert not result.mounted and not result.unlocked

    @pytest.mark.parametrize('signal_number', [signal.SIGTERM, signal.SIGINT])
    def test_unmounted_and_locked_again_when_interrupted(self, rig, signal_number):
        rig.write_rsync(hang=True)
        process = rig.start('--disable-notifications', '-c', TARGET, '-m', rig.mount_point, rig.source,
                            rig.destination, fstab=rig.crypto_fstab, crypttab='%s %s\n' % (TARGET, rig.image))
        try:
            wait_for(lambda: rig.caller_file.exists() and rig.caller_file.read_text().endswith('\n'),
                     message='the whole caller line', process=process)
            os.kill(int(rig.caller_file.read_text()), signal_number)
            stdout, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.communicate()
        result = RunResult(process.returncode, stdout, stderr, rig.mount_point)
        assert result.returncode == 128 + signal_number, result
        assert 'interrupted by %s' % signal.Signals(signal_number).name in result.stderr
        assert rig.events == ['start backups', 'mount -- MP', 'rsync mounted unlocked destination-locked',
                              'umount -- MP', 'stop backups']
        assert not result.mounted and not result.unlocked
        assert snapshots_on(rig) == []

    def test_locked_again_when_mounting_fails(self, rig):
        rig.fake_mount_without_mounting()
        result = rig.run('--disable-notifications', '-c', TARGET, '-m', rig.mount_point, rig.source,
                         rig.destination, fstab=rig.crypto_fstab, crypttab='%s %s\n' % (TARGET, rig.image))
        assert_failed(result, 'Failed to mount %s' % rig.mount_point)
        assert rig.events == ['start backups', 'mount -- MP', 'stop backups']
        assert not result.unlocked

    def test_still_locked_after_cryptdisks_start(self, rig):
        write_fake_cryptdisks(rig.crypt_bin, rig.events_file, unlock=False)
        result = rig.run('--disable-notifications', '-c', TARGET, '-m', rig.mount_point, rig.source,
                         rig.destination, fstab=rig.crypto_fstab, crypttab='%s %s\n' % (TARGET, rig.image))
        assert_failed(result, "cryptdisks_start %s (exit code 0) didn't unlock it: %s is still missing"
                      % (TARGET, MAPPER_DEVICE))
        assert rig.events == ['start backups']
        assert not result.mounted and not result.unlocked

    def test_already_unlocked_disk_stays_unlocked(self, rig):
        result = rig.run('--disable-notifications', '-b', '-c', TARGET, '-m', rig.mount_point, rig.source,
                         rig.destination, fstab=rig.crypto_fstab, crypttab='%s %s\n' % (TARGET, rig.image),
                         before='ln -s %s %s' % (rig.image, MAPPER_DEVICE))
        assert result.returncode == 0, result
        assert rig.events == ['mount -- MP', 'rsync mounted unlocked destination-locked', 'umount -- MP']
        assert result.unlocked and not result.mounted

    @pytest.mark.parametrize('crypttab', [None, '# backups /dev/sdb1\nother /dev/sdb2 none luks\n', 'backups UUID=\n'])
    def test_unusable_crypttab(self, rig, crypttab):
        result = rig.run('--disable-notifications', '-c', TARGET, rig.source, rig.destination, crypttab=crypttab)
        assert_failed(result, '/etc/crypttab')
        assert rig.events == []


def test_library_context_managers_clean_up_when_the_block_fails(rig):
    """UnlockedDevice and MountedFilesystem stacked by hand: both undo their work when the block raises."""
    script = '\n'.join([
        'import sys',
        'from executor.contexts import LocalContext',
        'from rsync_system_backup.disks.unlock_and_mount import MountedFilesystem, UnlockedDevice',
        'context = LocalContext()',
        'try:',
        '    with UnlockedDevice(context, sys.argv[1]), MountedFilesystem(context, sys.argv[2]):',
        '        open(sys.argv[2] + "/written-inside", "w").close()',
        '        raise KeyError("failure inside")',
        'except KeyError:',
        '    print("raised")',
    ])
    result = run_in_namespace([sys.executable, '-c', script, TARGET, rig.mount_point], fstab=rig.crypto_fstab,
                              crypttab='%s %s\n' % (TARGET, rig.image), path=[rig.fake_bin, rig.crypt_bin],
                              probes=[mount_probe(rig.mount_point), mapper_probe(TARGET)])
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ['raised', 'NOT-MOUNTED %s' % rig.mount_point, 'LOCKED %s' % TARGET]
    assert rig.events == ['start backups', 'mount -- MP', 'umount -- MP', 'stop backups']
    assert 'written-inside' in list_image(rig.image)


def test_full_chain(rig, tmp_path, notifications_log):
    """Unlock, mount, back up, snapshot, rotate, unmount and lock, with the destination locked meanwhile."""
    contents = tmp_path / 'contents'
    for name in OLD_SNAPSHOTS:
        (contents / 'backups' / name / 'etc').mkdir(parents=True)
        (contents / 'backups' / name / 'etc' / 'hostname').write_text('%s\n' % name)
    rig.fill_image(contents)
    result = rig.run('--crypto=%s' % TARGET, '--mount=%s' % rig.mount_point, rig.source, rig.destination,
                     fstab=rig.crypto_fstab, crypttab='%s UUID=rsb-chain none luks\n' % TARGET,
                     before='mkdir /dev/disk/by-uuid && ln -s %s /dev/disk/by-uuid/rsb-chain' % rig.image)
    assert result.returncode == 0, result
    assert rig.events == ['start backups', 'mount -- MP', 'rsync mounted unlocked destination-locked', 'umount -- MP',
                          'stop backups']
    assert not result.mounted and not result.unlocked
    new = sorted(set(snapshots_on(rig)) - set(OLD_SNAPSHOTS))
    assert len(new) == 1, snapshots_on(rig)
    # Rotation kept the oldest snapshot of January 2001 and removed the other one.
    assert snapshots_on(rig) == [OLD_SNAPSHOTS[0], new[0]]
    # The test made /backups with mode 0755: the run warned, and recorded the mode it warned about.
    assert 'lets other users in (mode 0755)' in result.stderr, result
    assert sorted(list_image(rig.image, '/backups')) == sorted(
        ['.rsync-system-backup', '.rsync-system-backup.access', '.rsync-system-backup.lock',
         '.rsync-system-backup.manifests', OLD_SNAPSHOTS[0], new[0], 'latest'])
    for directory in ('latest', new[0]):
        assert rig.read('/backups/%s/etc/hostname' % directory) == 'disk-test\n'
        assert rig.read('/backups/%s/home/alice/notes.txt' % directory) == 'notes\n'
    assert rig.read('/backups/%s/etc/hostname' % OLD_SNAPSHOTS[0]) == '%s\n' % OLD_SNAPSHOTS[0]
    notifications = notifications_log.read_text().splitlines()
    assert len(notifications) == 2, notifications
    assert 'Starting the backup to %s' % rig.destination in notifications[0]
    assert 'Finished the backup to %s' % rig.destination in notifications[1]


class TestCronPath:

    """
    Under cron's ``PATH=/usr/bin:/bin`` the programs in the system directories are found, or said to be missing.

    The program runs with ``env -i`` and cron's ``PATH`` (see
    :func:`cron_environment()`), so the stand-ins of ``mount``, ``umount`` and
    ``rsync`` in ``fake_bin`` are out of its reach: the real ones run.
    """

    @pytest.mark.skipif(not os.path.isdir(SYSTEM_PROGRAMS), reason='needs %s' % SYSTEM_PROGRAMS)
    def test_cryptdisks_in_a_system_directory(self, rig):
        """The cron line of docs/encrypted-disk.rst, with cryptdisks_start and _stop only in /usr/local/sbin."""
        result = rig.run('--ionice=idle', '-q', '--crypto=%s' % TARGET, '--mount=%s' % rig.mount_point, rig.source,
                         rig.destination, fstab=rig.crypto_fstab, crypttab='%s %s none luks\n' % (TARGET, rig.image),
                         before='%s --bind %s %s' % (shutil.which('mount'), shlex.quote(str(rig.crypt_bin)),
                                                     SYSTEM_PROGRAMS),
                         environment=cron_environment())
        assert result.returncode == 0, result
        assert rig.events == ['start backups', 'stop backups']
        assert not result.mounted and not result.unlocked
        assert rig.read('/backups/latest/etc/hostname') == 'disk-test\n'
        assert len(snapshots_on(rig)) == 1

    @pytest.mark.skipif(not os.path.isdir(SYSTEM_PROGRAMS) or any(
        os.path.exists(os.path.join(directory, 'cryptdisks_stop'))
        for directory in ('/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin', '/bin')),
        reason='needs %s, and cryptdisks_stop not installed' % SYSTEM_PROGRAMS)
    def test_cryptdisks_stop_missing(self, rig, tmp_path):
        """
        Without cryptdisks_stop, which would lock the disk again, nothing is
        unlocked: one line says so before cryptdisks_start runs.
        """
        only_start = tmp_path / 'only-start'
        only_start.mkdir()
        shutil.copy2(str(rig.crypt_bin / 'cryptdisks_start'), str(only_start / 'cryptdisks_start'))
        result = rig.run('-q', '--crypto=%s' % TARGET, '--mount=%s' % rig.mount_point, rig.source, rig.destination,
                         fstab=rig.crypto_fstab, crypttab='%s %s none luks\n' % (TARGET, rig.image),
                         before='%s --bind %s %s' % (shutil.which('mount'), shlex.quote(str(only_start)),
                                                     SYSTEM_PROGRAMS),
                         environment=cron_environment())
        assert_failed(result, "cryptdisks_stop not found (looked in /usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin): "
                              "install it, or add its directory to PATH.")
        assert rig.events == []
        assert not result.mounted and not result.unlocked
        assert list_image(rig.image) == ['lost+found']

    @pytest.mark.skipif(any(os.path.exists(os.path.join(directory, 'cryptdisks_start'))
                            for directory in ('/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin', '/bin')),
                        reason='cryptdisks_start is installed')
    def test_cryptdisks_missing_everywhere(self, rig):
        """Without cryptdisks_start anywhere, one line says so and where it was looked for; nothing else happens."""
        result = rig.run('--crypto=%s' % TARGET, '--mount=%s' % rig.mount_point, rig.source, rig.destination,
                         fstab=rig.crypto_fstab, crypttab='%s %s none luks\n' % (TARGET, rig.image),
                         environment=cron_environment())
        assert_failed(result, "cryptdisks_start not found (looked in /usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin): "
                              "install it, or add its directory to PATH.")
        assert 'exit code 127' not in result.stderr, result
        assert rig.events == []
        assert not result.mounted and not result.unlocked
        assert list_image(rig.image) == ['lost+found']


def cron_environment():
    """
    The whole environment of the program as cron starts it: ``PATH=/usr/bin:/bin`` (see :data:`CRON_PATH`).

    Only what makes the program this package's code (``$PYTHONPATH`` and
    coverage's variables, when they are set) and keeps it off the system
    log is added.
    """
    environment = {name: value for name, value in os.environ.items()
                   if name == 'PYTHONPATH' or name.startswith('COVERAGE_')}
    environment.update(PATH=CRON_PATH, COLOREDLOGS_SYSLOG='false')
    return environment


class NamespacedSSHServer(SSHServer):

    """
    An :class:`support.servers.SSHServer` in a test namespace, whose sessions find the rig's stand-ins first.

    With ``cron_path`` the sessions' ``PATH`` is the rig's ``fake_bin`` and
    :data:`CRON_PATH` alone, and the stand-ins of cryptdisks are in
    :data:`SYSTEM_PROGRAMS` (bound there in the namespace).
    """

    def __init__(self, directory, rig, cron_path=False, **options):
        """Remember the rig that provides fstab, crypttab and the stand-ins."""
        super(NamespacedSSHServer, self).__init__(directory, **options)
        self.rig = rig
        self.cron_path = cron_path

    def prepare(self):
        """Run sshd in a test namespace with the rig's fstab and crypttab."""
        command = super(NamespacedSSHServer, self).prepare()
        command = command[command.index('sh'):]
        if self.cron_path:
            path = [str(self.rig.fake_bin), CRON_PATH]
            command = ['sh', '-c', 'mount --bind "$1" "$2" && shift 2 && exec "$@"', 'bind', str(self.rig.crypt_bin),
                       SYSTEM_PROGRAMS] + command
        else:
            path = [str(self.rig.fake_bin), str(self.rig.crypt_bin), '/usr/local/sbin', '/usr/local/bin',
                    '/usr/sbin', '/usr/bin', '/sbin', '/bin']
        with open(self.server_config_file, 'a') as handle:
            handle.write('SetEnv PATH=%s\n' % ':'.join(path))
        return namespace_command(command, fstab=self.rig.crypto_fstab,
                                 crypttab='%s %s none luks\n' % (TARGET, self.rig.image))


@pytest.mark.slow
def test_unlock_and_mount_over_ssh(rig, tmp_path):
    """Unlocking and mounting happen on the SSH destination's system, which alone has the crypttab and fstab."""
    with NamespacedSSHServer(tmp_path / 'sshd', rig) as server:
        home = ClientHome(tmp_path / 'client-home')
        home.add_host('disk-server', server.port, home.install_key(server.identity_file))
        # The backup step alone: each SSH command takes a while, and snapshots over SSH are tested elsewhere.
        result = home.run('-b', '-c', TARGET, '-m', rig.mount_point, rig.source, 'disk-server:%s' % rig.destination)
        assert result.returncode == 0, result
        assert rig.events == ['start backups', 'mount -- MP', 'rsync mounted unlocked destination-locked',
                              'umount -- MP', 'stop backups']
        wait_until_idle(server)
    assert rig.read('/backups/latest/etc/hostname') == 'disk-test\n'


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(SYSTEM_PROGRAMS), reason='needs %s' % SYSTEM_PROGRAMS)
def test_system_directories_over_ssh(rig, tmp_path):
    """
    The SSH login's PATH is cron's (with fake_bin): cryptdisks_start and _stop are found in /usr/local/sbin there.

    Once they are gone from there too, one line says that cryptdisks_start isn't installed there.
    """
    with NamespacedSSHServer(tmp_path / 'sshd', rig, cron_path=True) as server:
        home = ClientHome(tmp_path / 'client-home')
        home.add_host('disk-server', server.port, home.install_key(server.identity_file))
        arguments = ('-b', '-c', TARGET, '-m', rig.mount_point, rig.source, 'disk-server:%s' % rig.destination)
        result = home.run(*arguments)
        assert result.returncode == 0, result
        assert rig.events == ['start backups', 'mount -- MP', 'rsync mounted unlocked destination-locked',
                              'umount -- MP', 'stop backups']
        assert rig.read('/backups/latest/etc/hostname') == 'disk-test\n'
        for program in rig.crypt_bin.iterdir():
            program.unlink()
        result = home.run(*arguments)
        assert_failed(result, "cryptdisks_start not found on disk-server (looked in the PATH of the login and "
                              "/usr/local/sbin:/usr/sbin:/sbin there): install it there.")
        assert rig.events[5:] == []
        wait_until_idle(server)


class TestCleanupFailures:

    """A disk that stays mounted or unlocked after a good backup is a failure, not a success."""

    def crypto_run(self, rig):
        """Back up (the transfer step alone) with the disk unlocked and mounted for the run."""
        return rig.run('--disable-notifications', '-b', '-c', TARGET, '-m', rig.mount_point, rig.source,
                       rig.destination, fstab=rig.crypto_fstab, crypttab='%s %s\n' % (TARGET, rig.image))

    def test_failing_umount(self, rig):
        write_script(rig.fake_bin / 'umount', 'echo "umount $*" >> %s\necho "umount: $1: target is busy." >&2\n'
                     'exit 32\n' % shlex.quote(str(rig.events_file)))
        result = self.crypto_run(rig)
        assert_failed(result, "Aborting due to error: The backup is done, but umount %s failed with exit code 32: "
                      "the disk is still mounted; see what keeps it busy with 'fuser -vm %s'"
                      % (rig.mount_point, rig.mount_point))
        assert rig.events == ['start backups', 'mount -- MP', 'rsync mounted unlocked destination-locked',
                              'umount -- MP', 'stop backups']
        assert result.mounted
        assert 'Traceback' not in result.stderr

    def test_failing_cryptdisks_stop(self, rig):
        write_fake_cryptdisks(rig.crypt_bin, rig.events_file, lock=False)
        result = self.crypto_run(rig)
        assert_failed(result, "Aborting due to error: The backup is done, but cryptdisks_stop %s (exit code 0) didn't "
                      "lock it: %s still exists, so the disk is still unlocked" % (TARGET, MAPPER_DEVICE))
        assert rig.events == ['start backups', 'mount -- MP', 'rsync mounted unlocked destination-locked',
                              'umount -- MP', 'stop backups']
        assert result.unlocked and not result.mounted
        assert rig.read('/backups/latest/etc/hostname') == 'disk-test\n'

    def test_failing_rsync_stays_the_reported_error(self, rig):
        """After a failed block the disk's cleanup failure is logged, and the block's own error is the one reported."""
        rig.write_rsync(fail=True)
        write_fake_cryptdisks(rig.crypt_bin, rig.events_file, lock=False)
        result = self.crypto_run(rig)
        assert_failed(result, 'rsync failed')
        assert "ERROR cryptdisks_stop %s (exit code 0) didn't lock it" % TARGET in result.stderr
        assert result.unlocked


class TestSignalsDuringCleanup:

    """
    Control-C and a closing terminal signal the whole job: cleanups started by the run must still finish.

    ``umount`` and ``cryptdisks_stop`` are slowed down (2 seconds each) and the
    signals go to the program's whole process group, as a terminal sends them.
    """

    def slow_cleanups(self, rig):
        """Make umount and cryptdisks_stop note that they started, wait 2 seconds, then do their work."""
        events = shlex.quote(str(rig.events_file))
        for name, real in (('umount', shutil.which('umount')),
                           ('cryptdisks_stop', str(rig.crypt_bin / 'cryptdisks_stop'))):
            marker = rig.directory / ('%s.started' % name)
            note = 'echo "umount $*" >> %s\n' % events if name == 'umount' else ''
            write_script(rig.fake_bin / name, '%stouch %s\nsleep 2\nexec %s "$@"\n'
                         % (note, shlex.quote(str(marker)), shlex.quote(real)))

    def wait_for_marker(self, rig, process, name):
        """Wait until a slowed-down cleanup command has started."""
        marker = rig.directory / ('%s.started' % name)
        wait_for(marker.exists, message=str(marker), process=process)

    def finish(self, rig, process):
        """Collect a started run's outcome (see :meth:`Rig.start`)."""
        try:
            stdout, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.communicate()
        return RunResult(process.returncode, stdout, stderr, rig.mount_point)

    def start(self, rig):
        """Start a run that unlocks and mounts the disk (the transfer step alone)."""
        return rig.start('--disable-notifications', '-b', '-c', TARGET, '-m', rig.mount_point, rig.source,
                         rig.destination, fstab=rig.crypto_fstab, crypttab='%s %s\n' % (TARGET, rig.image))

    def test_hang_up_during_the_unmount_after_a_good_backup(self, rig):
        """SIGHUP (the terminal closed) during umount: umount and cryptdisks_stop finish, then the run stops."""
        self.slow_cleanups(rig)
        process = self.start(rig)
        self.wait_for_marker(rig, process, 'umount')
        os.killpg(process.pid, signal.SIGHUP)
        result = self.finish(rig, process)
        assert result.returncode == 129, result
        assert 'interrupted by SIGHUP' in result.stderr
        assert rig.events == ['start backups', 'mount -- MP', 'rsync mounted unlocked destination-locked',
                              'umount -- MP', 'stop backups']
        assert not result.mounted and not result.unlocked
        assert rig.read('/backups/latest/etc/hostname') == 'disk-test\n'

    def test_second_control_c_during_the_cleanup(self, rig):
        """Control-C during rsync, then again during umount and cryptdisks_stop: the disk ends unmounted and locked."""
        self.slow_cleanups(rig)
        rig.write_rsync(hang=True)
        process = self.start(rig)
        wait_for(lambda: rig.caller_file.exists() and rig.caller_file.read_text().endswith('\n'),
                 message='the whole caller line', process=process)
        os.killpg(process.pid, signal.SIGINT)
        for name in ('umount', 'cryptdisks_stop'):
            self.wait_for_marker(rig, process, name)
            os.killpg(process.pid, signal.SIGINT)
        result = self.finish(rig, process)
        assert result.returncode == 130, result
        assert 'interrupted by SIGINT' in result.stderr
        assert rig.events == ['start backups', 'mount -- MP', 'rsync mounted unlocked destination-locked',
                              'umount -- MP', 'stop backups']
        assert not result.mounted and not result.unlocked
