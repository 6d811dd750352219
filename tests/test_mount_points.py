"""
Tests of :mod:`rsync_system_backup.checks.mount_points`: a destination that is a mount point is refused.

The filesystem is a real tmpfs, mounted in a private mount namespace (see
:mod:`support.loop_filesystems`), where the command runs too.
"""

import os

from support.cli import assert_failed
from support.loop_filesystems import MountedFilesystem, NamespaceSSHServer
from support.remote import SERVER_ALIAS, ClientHome, wait_until_idle
from support.trees import snapshot_names, write_file


def test_mount_point_destination_is_refused(tmp_path):
    """`rsync-system-backup SOURCE /mnt/usb` writes nothing on either filesystem and names the directory to give."""
    source = tmp_path / 'source'
    write_file(source / 'file', b'data')
    with MountedFilesystem('tmpfs', tmp_path / 'usb') as usb:
        result = usb.run_cli(source, usb.mount_point)
        assert_failed(result, 'The destination %s is a mount point' % usb.mount_point,
                      'such as %s/backups/latest' % usb.mount_point)
        # Nothing on the mounted filesystem, and nothing beside the mount point (on the filesystem below it).
        assert os.listdir(usb.view(usb.mount_point)) == []
        assert os.listdir(usb.view(usb.mount_point.parent)) == ['mnt']
        # What the message suggests works.
        latest = usb.mount_point / 'backups' / 'latest'
        result = usb.run_cli(source, latest)
        assert result.returncode == 0, result.output
        assert len(snapshot_names(usb.view(latest.parent))) == 1
        with open(usb.view(latest / 'file'), 'rb') as handle:
            assert handle.read() == b'data'


def test_mount_point_with_a_space_is_refused(tmp_path):
    """A mount point whose name has a space (``\\040`` in ``/proc/self/mountinfo``) is recognized too."""
    source = tmp_path / 'source'
    write_file(source / 'file', b'data')
    with MountedFilesystem('tmpfs', tmp_path / 'usb disk') as usb:
        result = usb.run_cli(source, usb.mount_point)
        assert_failed(result, 'The destination %s is a mount point' % usb.mount_point)
        assert os.listdir(usb.view(usb.mount_point)) == []
        assert os.listdir(usb.view(usb.mount_point.parent)) == ['mnt']


def test_destination_on_another_filesystem_is_refused(tmp_path):
    """A destination that a symbolic link puts on another filesystem than its parent is refused too."""
    source = tmp_path / 'source'
    write_file(source / 'file', b'data')
    backups = tmp_path / 'backups'
    backups.mkdir()
    with MountedFilesystem('tmpfs', tmp_path / 'usb') as usb:
        os.symlink(str(usb.mount_point), str(backups / 'latest'))
        result = usb.run_cli(source, backups / 'latest')
        assert_failed(result, 'is on another filesystem than %s' % backups)
        assert os.listdir(usb.view(usb.mount_point)) == []
        assert sorted(os.listdir(str(backups))) == ['latest']


def test_mount_point_over_ssh(tmp_path):
    """Over SSH the same destination is refused too, by a check that runs on the remote system."""
    source = tmp_path / 'source'
    write_file(source / 'file', b'data')
    with MountedFilesystem('tmpfs', tmp_path / 'usb') as usb:
        with NamespaceSSHServer(tmp_path / 'sshd', usb) as server:
            client = ClientHome(tmp_path / 'client-home')
            client.add_host(SERVER_ALIAS, server.port, client.install_key(server.identity_file))
            result = client.run(source, '%s:%s' % (SERVER_ALIAS, usb.mount_point))
            assert_failed(result, 'The destination %s is a mount point' % usb.mount_point)
            assert os.listdir(usb.view(usb.mount_point)) == []
            assert os.listdir(usb.view(usb.mount_point.parent)) == ['mnt']
            wait_until_idle(server)
