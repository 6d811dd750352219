"""
Tests of :mod:`rsync_system_backup.snapshots.replacement`: an interrupted first backup keeps its progress.

rsync is the real one, slowed down with ``--bwlimit`` by a stand-in on
``$PATH``, so that the run can be interrupted halfway through.
"""

import os
import re
import signal

import pytest

from support.cli import finish
from support.processes import wait_for
from support.stand_ins import real_program, write_script
from support.trees import list_names, make_bulky_source, snapshot_names

FILES = 10
"""The number of files in the source (1 MiB each: 5 seconds at the stand-in's 2 MB/s)."""


@pytest.fixture
def source(tmp_path):
    """A source of :data:`FILES` files of 1 MiB."""
    return make_bulky_source(tmp_path / 'source', files=FILES, size=1024 * 1024)


def files_written(backups):
    """
    Count the complete files that a first backup wrote so far, wherever the method writes them.

    Only a file under its own name counts: rsync writes each file as a
    temporary ``.file-NNN.XXXXXX`` first, which it deletes when interrupted,
    even once all its bytes are written (a busy machine, where the rename
    comes late, showed that).
    """
    count = 0
    for name in ('latest', '.rsync-system-backup.new'):
        directory = backups / name
        if directory.is_dir():
            count += sum(1 for entry in os.scandir(str(directory))
                         if entry.name.startswith('file-') and entry.is_file() and entry.stat().st_size == 1024 * 1024)
    return count


@pytest.mark.parametrize('method', ['link-dest', 'hardlink', 'auto'])
def test_interrupted_first_backup_resumes(tmp_path, source, backups, fake_bin, start_cli, run_cli, method):
    """After SIGINT halfway through a first backup, the next run transfers only what is still missing."""
    slow_rsync = write_script(fake_bin / 'rsync', 'exec %s --bwlimit=2000 "$@"\n' % real_program('rsync'))
    option = '--snapshot-method=%s' % method
    process = start_cli(option, source, backups / 'latest')
    wait_for(lambda: files_written(backups) >= 2, timeout=30, message="no file was transferred")
    os.killpg(process.pid, signal.SIGINT)
    returncode, output = finish(process)
    assert returncode == 130, output
    kept = files_written(backups)
    assert 2 <= kept < FILES, output
    assert snapshot_names(backups) == []
    slow_rsync.unlink()
    result = run_cli('--disable-notifications', option, source, backups / 'latest')
    assert result.returncode == 0, result
    transferred = int(re.search(r'(\d+) of %i files transferred' % FILES, result.stderr).group(1))
    assert transferred <= FILES - kept, result
    for name in os.listdir(str(source)):
        assert (backups / 'latest' / name).read_bytes() == (source / name).read_bytes()
    assert [name for name in list_names(backups) if name.startswith('.rsync-system-backup.')] == []
    assert len(snapshot_names(backups)) == 1
