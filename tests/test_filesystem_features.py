"""Tests of :mod:`rsync_system_backup.snapshots.filesystem_features`: ext4 is ext4; the mount table as findmnt."""

import os
import subprocess

from rsync_system_backup.disks import configured_mounts
from rsync_system_backup.snapshots.filesystem_features import find_link_limit, read_mount_table, supports_reflinks
from support.loop_filesystems import MountedFilesystem
from support.trees import write_file


def test_ext4_is_reported_as_ext4(tmp_path):
    """The run names the destination's filesystem ext4 (stat would say ext2/ext3) and knows its limits."""
    write_file(tmp_path / 'source' / 'file', b'x')
    with MountedFilesystem('ext4', tmp_path / 'ext4') as disk:
        result = disk.run_cli('--dry-run', tmp_path / 'source', disk.mount_point / 'backups' / 'latest')
        assert result.returncode == 0, result.output
        assert 'snapshot method (chosen for %s on ext4).' % (disk.mount_point / 'backups') in result.output
        assert 'ext2/ext3' not in result.output
    assert find_link_limit('ext4') == 65000
    assert not supports_reflinks(None, '/unused', 'ext4')


def test_mount_table_agrees_with_findmnt():
    """A local destination's filesystem type is read from the mount table as findmnt finds it, without a command."""
    for path in ('/', '/proc', '/dev/shm', '/dev/shm/no/such/directory', '/sys/fs/cgroup', '/usr/bin'):
        command = ['findmnt', '--noheadings', '--first-only', '--output=FSTYPE', '--target',
                   path if os.path.isdir(path) else '/dev/shm']
        expected = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
        assert read_mount_table(path) == expected, path


def test_mount_table_with_escaped_mount_points(tmp_path, monkeypatch):
    """Mount points with escaped spaces count with their real names; a longer name that merely starts alike doesn't."""
    for name in ('backup disk', 'backup', 'backupdisk'):
        (tmp_path / name).mkdir()
    base = os.fsencode(os.path.realpath(str(tmp_path)))
    table = tmp_path / 'mountinfo'
    table.write_bytes(b'1 0 8:1 / / rw - ext4 /dev/sda1 rw\n'
                      b'2 1 0:40 / ' + base + b'/backup\\040disk rw shared:5 - xfs /dev/sdb1 rw\n'
                      b'3 1 0:41 / ' + base + b'/backup rw - btrfs /dev/sdc1 rw\n')
    monkeypatch.setattr(configured_mounts, 'MOUNTINFO_FILE', str(table))
    assert read_mount_table(str(tmp_path / 'backup disk' / 'new')) == 'xfs'
    assert read_mount_table(str(tmp_path / 'backup')) == 'btrfs'
    assert read_mount_table(str(tmp_path / 'backupdisk')) == 'ext4'
    monkeypatch.setattr(configured_mounts, 'MOUNTINFO_FILE', str(tmp_path / 'missing'))
    assert read_mount_table('/') is None
