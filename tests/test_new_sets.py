"""
Tests of :mod:`rsync_system_backup.checks.new_sets`: no new backup set on the filesystem below an unmounted disk.

Issue 22, item 2: with the backup disk unmounted, a first backup into its
mount point created a new set on the root filesystem, exit 0. Every run here
happens in a private mount namespace (see :mod:`support.namespaces`) whose
``/etc/fstab`` (or systemd mount unit, in its private ``/etc``) names a
directory of the test as a mount point; ``/media`` gets a directory of the
test bind-mounted over it, in the namespace only. What a refused run leaves
is looked at on the host: nothing.
"""

import os
import shlex
import shutil

import pytest
from executor.contexts import LocalContext

from rsync_system_backup.checks import new_sets
from rsync_system_backup.checks.new_sets import find_mount_area, is_unmounted_mount_point
from support.cli import assert_failed
from support.leaks import leak_check
from support.namespaces import namespace_command, run_cli_in_namespace
from support.remote import ClientHome, wait_until_idle
from support.servers import SSHServer
from support.trees import snapshot_names, write_file

MARKER = '.rsync-system-backup'
"""The marker file of a backup set."""

UNIT = '/etc/systemd/system/rsb-test.mount'
"""The systemd mount unit that the tests write in the namespace's private ``/etc``."""

namespaces = pytest.mark.skipif(os.geteuid() != 0 or not all(shutil.which(name) for name in ('unshare', 'mount')),
                                reason='needs root, unshare and mount')


@pytest.fixture
def source(tmp_path):
    """A source directory with one file."""
    directory = tmp_path / 'source'
    write_file(directory / 'file', b'data')
    return directory


@pytest.fixture
def disk(tmp_path, unchanged_host):
    """The backup disk's mount point (an empty directory); no mount may be left below the test's directory after."""
    directory = tmp_path / 'disk'
    directory.mkdir()
    with leak_check([], [tmp_path]):
        yield directory


def configuration(disk, configured_by, device='LABEL=rsb-backup-disk', fs_type='ext4'):
    """
    The namespace's fstab, and the shell code that writes a mount unit, that name `disk` as a mount point.

    :returns: A tuple of the fstab's text, the shell code (or :data:`None`) and the file that names `disk`.
    """
    if configured_by == 'fstab':
        return '%s %s %s noauto 0 2\n' % (device, disk, fs_type), None, '/etc/fstab'
    unit = '[Unit]\nDescription=The backup disk\n\n[Mount]\nWhat=%s\nWhere=%s\nType=%s\n' % (device, disk, fs_type)
    write = 'mkdir -p /etc/systemd/system && printf %%s %s > %s' % (shlex.quote(unit), UNIT)
    return '', write, 'the systemd unit %s' % UNIT


@namespaces
@pytest.mark.parametrize('configured_by', ['fstab', 'mount-unit'])
@pytest.mark.parametrize('options', [[], ['--dry-run']])
@pytest.mark.parametrize('below', ['', 'backups'])
def test_new_set_below_an_unmounted_mount_point_is_refused(disk, source, configured_by, options, below):
    """The disk named in fstab (or a mount unit) isn't mounted: refused, naming the check and the overrides."""
    fstab, before, origin = configuration(disk, configured_by)
    backup_set = disk / below if below else disk
    result = run_cli_in_namespace(['--disable-notifications'] + options + [source, backup_set / 'latest'],
                                  fstab=fstab, before=before)
    assert_failed(result, 'Refusing to create the new backup set %s: it lies below %s, which %s names as a mount '
                  'point, but nothing is mounted there, so the backup would go to the filesystem mounted on '
                  % (backup_set, disk, origin),
                  '. Mount the backup disk first, or give -m %s to mount it for the run; --create-set creates the '
                  'set there anyway.' % disk)
    assert os.listdir(disk) == []


@namespaces
def test_create_set_overrides(disk, source):
    """--create-set creates the set below the unmounted mount point, as asked."""
    fstab, _, _ = configuration(disk, 'fstab')
    result = run_cli_in_namespace(['--disable-notifications', '--create-set', source, disk / 'backups' / 'latest'],
                                  fstab=fstab)
    assert result.returncode == 0, result
    assert (disk / 'backups' / MARKER).exists() and (disk / 'backups' / 'latest' / 'file').read_bytes() == b'data'
    assert len(snapshot_names(disk / 'backups')) == 1


@namespaces
@pytest.mark.parametrize('how', ['mounted-before', 'mount-option'])
def test_mounted_disk_takes_the_new_set(disk, source, how):
    """Mounted (before the run, or with -m), the disk takes the new set: nothing lands on the directory below it."""
    fstab, _, _ = configuration(disk, 'fstab', device='tmpfs', fs_type='tmpfs')
    arguments = ['--disable-notifications', source, disk / 'backups' / 'latest']
    if how == 'mount-option':
        arguments[1:1] = ['-m', disk]
    before = 'mount %s' % shlex.quote(str(disk)) if how == 'mounted-before' else None
    result = run_cli_in_namespace(arguments, fstab=fstab, before=before)
    assert result.returncode == 0, result
    # The tmpfs went away with the namespace; the directory below it stayed empty.
    assert os.listdir(disk) == []


@pytest.fixture
def media(tmp_path, unchanged_host):
    """
    A directory of the test to bind-mount over ``/media`` in the namespace, with an empty ``rsb-disk`` in it.

    It lies on the filesystem of the test's directory, as ``/media`` lies on the root filesystem.
    """
    if not os.path.isdir('/media'):
        pytest.skip('this system has no /media')
    directory = tmp_path / 'media'
    (directory / 'rsb-disk').mkdir(parents=True)
    with leak_check([], [tmp_path]):
        yield directory


def bind_media(media, *more):
    """Shell code that bind-mounts `media` over ``/media`` (in the namespace), then runs `more`."""
    return ' && '.join(['mount --bind %s /media' % shlex.quote(str(media))] + list(more))


@namespaces
def test_new_set_in_an_empty_mount_directory_is_refused(media, source):
    """/media/rsb-disk is empty and nothing is mounted there: the disk isn't, so no set is made."""
    result = run_cli_in_namespace(['--disable-notifications', source, '/media/rsb-disk/backups/latest'],
                                  before=bind_media(media))
    assert_failed(result, 'Refusing to create the new backup set /media/rsb-disk/backups: /media/rsb-disk is an empty '
                  'directory that looks like a mount point, but nothing is mounted there, so the backup would go to '
                  'the filesystem mounted on /media. Mount the backup disk first, or give -m MOUNT_POINT to mount it '
                  'for the run; --create-set creates the set there anyway.')
    assert os.listdir(media / 'rsb-disk') == []


@namespaces
@pytest.mark.parametrize('inside', [False, True])
def test_new_set_on_a_disk_mounted_in_the_mount_directory(media, source, inside):
    """An empty disk mounted on /media/rsb-disk takes the set, also in an empty directory of its own."""
    mount = 'mount -t tmpfs rsb-disk /media/rsb-disk'
    before = bind_media(media, mount, 'mkdir /media/rsb-disk/backups') if inside else bind_media(media, mount)
    result = run_cli_in_namespace(['--disable-notifications', source, '/media/rsb-disk/backups/latest'], before=before)
    assert result.returncode == 0, result
    assert os.listdir(media / 'rsb-disk') == []


@namespaces
def test_create_set_overrides_the_empty_mount_directory(media, source):
    """--create-set makes the set in /media/rsb-disk all the same."""
    result = run_cli_in_namespace(['--disable-notifications', '--create-set', source, '/media/rsb-disk/backups/latest'],
                                  before=bind_media(media))
    assert result.returncode == 0, result
    assert (media / 'rsb-disk' / 'backups' / 'latest' / 'file').read_bytes() == b'data'


@pytest.mark.parametrize('directory, mount, refused', [
    ('/mnt/usb', '/', True),
    ('/mnt', '/', True),
    ('/media/alice/disk', '/', True),
    ('/run/media/alice', '/run', True),
    ('/backup', '/', True),
    ('/mnt/usb', '/mnt/usb', False),
    ('/mnt/usb/backups', '/mnt/usb', False),
    ('/mnt', '/mnt', False),
    ('/srv', '/', False),
    ('/srv/backups', '/', False),
    ('/home/me/backups', '/home', False),
    ('/', '/', False),
])
def test_what_looks_like_an_unmounted_mount_point(directory, mount, refused):
    """The conventions: /mnt, /media, /run/media and other directories of their own directly below /."""
    assert is_unmounted_mount_point(directory, mount) is refused
    conventional = directory.startswith(('/mnt', '/media', '/run/media')) or directory == '/backup'
    assert (find_mount_area(directory) is not None) is conventional


@pytest.mark.parametrize('path', ['disk\n/set\n/latest', '-disk/set', 'full\n/new/latest', 'empty\n\n/x'])
def test_hostile_names_are_surveyed_alike_by_the_shell(tmp_path, monkeypatch, path):
    """The shell code that other systems run finds what this process finds, with newlines and dashes in names."""
    for name in ('disk\n', '-disk', 'empty\n\n'):
        (tmp_path / name).mkdir()
    # A name of newlines only: "ls" prints it as an empty line, which looks like an empty directory.
    write_file(tmp_path / 'full\n' / '\n', b'')
    directory = '%s/%s' % (tmp_path, path)
    here = new_sets.survey_set_directory(LocalContext(), directory)
    monkeypatch.setattr(new_sets, 'runs_in_process', lambda context, sudo: False)
    assert new_sets.survey_set_directory(LocalContext(), directory) == here
    assert here[2] is path.startswith(('disk', '-disk', 'empty'))


class FstabSSHServer(SSHServer):

    """An :class:`support.servers.SSHServer` in a test namespace whose fstab names the backup disk's mount point."""

    def __init__(self, directory, fstab):
        """Remember the fstab's text."""
        super(FstabSSHServer, self).__init__(directory)
        self.fstab = fstab

    def prepare(self):
        """Run sshd in a test namespace with the fstab."""
        command = super(FstabSSHServer, self).prepare()
        return namespace_command(command[command.index('sh'):], fstab=self.fstab)


@namespaces
@pytest.mark.slow
def test_unmounted_disk_over_ssh(tmp_path, disk, source):
    """The SSH destination's fstab counts (read with one command there): refused, then made with --create-set."""
    fstab, _, _ = configuration(disk, 'fstab')
    with FstabSSHServer(tmp_path / 'sshd', fstab) as server:
        home = ClientHome(tmp_path / 'client-home')
        home.add_host('disk-server', server.port, home.install_key(server.identity_file))
        destination = 'disk-server:%s' % (disk / 'backups' / 'latest')
        result = home.run('-b', source, destination)
        assert_failed(result, 'Refusing to create the new backup set %s: it lies below %s, which /etc/fstab names'
                      % (disk / 'backups', disk))
        assert os.listdir(disk) == []
        result = home.run('-b', '--create-set', source, destination)
        assert result.returncode == 0, result
        wait_until_idle(server)
    assert (disk / 'backups' / 'latest' / 'file').read_bytes() == b'data'
