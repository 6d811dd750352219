"""Tests of :mod:`rsync_system_backup.snapshots.filesystem_features`: ext4 is called ext4, on a real ext4 filesystem."""

from rsync_system_backup.snapshots.filesystem_features import find_link_limit, supports_reflinks
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
