"""
Tests of :mod:`rsync_system_backup.backup_set.os_errors`: operating system errors on the destination get one line.

The read-only and full filesystems are real tmpfs mounts in a private mount
namespace (see :mod:`support.loop_filesystems`), where the command runs too.
"""

import errno
import os

import pytest

from rsync_system_backup.exceptions import DestinationAccessError
from rsync_system_backup.backup_set.os_errors import describe_os_error, explain_os_errors
from support.cli import assert_failed
from support.loop_filesystems import MountedFilesystem
from support.trees import snapshot_names, write_file


@pytest.fixture
def source(tmp_path):
    """A small source tree."""
    directory = tmp_path / 'source'
    write_file(directory / 'file', b'data')
    return directory


def test_read_only_destination(tmp_path, source):
    """A read-only filesystem gets one line naming it, for a new backup set (mkdir) and an existing one (the lock)."""
    with MountedFilesystem('tmpfs', tmp_path / 'disk') as disk:
        existing = disk.mount_point / 'existing' / 'latest'
        assert disk.run_cli(source, existing).returncode == 0
        disk.run('mount', '-o', 'remount,ro', disk.mount_point)
        result = disk.run_cli(source, existing)
        assert_failed(result, "Can't write %s/.rsync-system-backup.lock: the filesystem %s is mounted read-only"
                      % (existing.parent, disk.mount_point))
        assert len(snapshot_names(disk.view(existing.parent))) == 1
        result = disk.run_cli(source, disk.mount_point / 'new' / 'latest')
        assert_failed(result, "Can't write %s/new: the filesystem %s is mounted read-only"
                      % (disk.mount_point, disk.mount_point))


def test_full_destination(tmp_path, source):
    """A filesystem without a free inode gets one line saying it is full."""
    with MountedFilesystem('tmpfs', tmp_path / 'disk') as disk:
        full = disk.mount_point / 'full'
        disk.run('mkdir', full)
        # Room for the root directory and the backup directory, but not for the marker file in it.
        disk.run('mount', '-t', 'tmpfs', '-o', 'nr_inodes=2', 'tiny', full)
        result = disk.run_cli(source, full / 'backups' / 'latest')
        assert_failed(result, "Can't write %s/backups/.rsync-system-backup: the filesystem %s is full"
                      % (full, full))


@pytest.mark.parametrize('number, message', [
    (errno.EACCES, "Can't access /srv/x: permission denied: run the backup as root"),
    (errno.EIO, "Can't access /srv/x: an I/O error on the filesystem /: the disk may be failing"),
    (errno.ENAMETOOLONG, "Can't access /srv/x: File name too long."),
])
def test_other_errors(number, message):
    """Permission and I/O errors are explained too, and every other error is named."""
    error = OSError(number, os.strerror(number), '/srv/x')
    assert describe_os_error(error).startswith(message)
    with pytest.raises(DestinationAccessError) as raised:
        with explain_os_errors():
            raise error
    assert str(raised.value).startswith(message)
