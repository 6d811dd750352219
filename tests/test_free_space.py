"""Tests of ``backup_set/free_space.py``: the destination's free space (statvfs here, df over SSH, none for daemons)."""

import os
import re

import pytest
from executor.contexts import LocalContext

from rsync_system_backup import RsyncSystemBackup
from rsync_system_backup.backup_set.free_space import DiskSpace, measure_disk_space, parse_df_output
from support.remote import SERVER_ALIAS
from support.trees import make_source


@pytest.mark.parametrize('output, free, total', [
    ('Filesystem     1024-blocks     Used Available Capacity Mounted on\n'
     '/dev/sda1        264212084 24037088  82353824      23% /\n', 82353824 * 1024, 264212084 * 1024),
    ('Filesystem 1024-blocks Used Available Capacity Mounted on\n'
     'My Disk 1000 400 600 40% /mnt/my backups\n', 600 * 1024, 1000 * 1024),
])
def test_parse_df_output(output, free, total):
    """df -P -k output is read whatever the names of the filesystem and the mount point look like."""
    space = parse_df_output(output)
    assert (space.free, space.total) == (free, total)


@pytest.mark.parametrize('output', ['', 'df: /missing: No such file or directory\n', 'Filesystem\nnonsense\n'])
def test_unparsable_df_output(output):
    """Output without the numbers gives no measurement (and no error)."""
    assert parse_df_output(output) is None


def test_local_measurement(tmp_path):
    """A local directory is measured with statvfs; a missing one isn't measured at all."""
    space = measure_disk_space(LocalContext(), str(tmp_path))
    info = os.statvfs(str(tmp_path))
    assert space.total == info.f_blocks * info.f_frsize
    assert abs(space.free - info.f_bavail * info.f_frsize) < 64 * 1024 * 1024
    assert measure_disk_space(LocalContext(), str(tmp_path / 'missing')) is None


def test_free_percentage():
    """The percentage is relative to the size, and 0 for an empty filesystem."""
    assert DiskSpace(free=25, total=100).free_percentage == 25.0
    assert DiskSpace(free=0, total=0).free_percentage == 0.0


def test_no_measurement_for_rsync_daemons():
    """An rsync daemon runs no commands for us, so its free space stays unknown."""
    assert RsyncSystemBackup(destination='server::module/latest').measure_disk_space() is None


def test_free_space_over_ssh(tmp_path, client_home):
    """The summary of a backup over SSH gives the free space that df reports on the server."""
    source = tmp_path / 'source'
    make_source(source)
    backups = tmp_path / 'backups'
    result = client_home.run(source, '%s:%s' % (SERVER_ALIAS, backups / 'latest'))
    assert result.returncode == 0, result
    match = re.search(r' INFO Backup to \S+ done in .*; ([\d.]+ [KMGT]?B) free \((\d+)% of ([\d.]+ [KMGT]?B)\)\.$',
                      result.stderr, re.MULTILINE)
    assert match, result
    info = os.statvfs(str(backups))
    assert abs(int(match.group(2)) - round(100.0 * info.f_bavail / info.f_blocks)) <= 1
