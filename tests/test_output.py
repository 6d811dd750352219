"""Tests of reading rsync's output (``transfer/output.py``): progress lines and the statistics block."""

import os
import subprocess

import pytest

from rsync_system_backup.transfer.output import TransferStatistics, parse_progress_line


def test_parse_progress_line():
    """A progress2 line gives bytes, percentage, rate (powers of 1024), time left and file counts."""
    update = parse_progress_line('    123,456,789  45%   12.50MB/s    0:01:23  ')
    assert update.transferred_bytes == 123456789
    assert update.percentage == 45
    assert update.rate == 12.5 * 1024 ** 2
    assert (update.time_left, update.elapsed) == (83, None)
    assert update.transfers is None and not update.scanning


def test_parse_end_of_file_line():
    """At the end of each file rsync gives the time since the start, and the time left is estimated from it."""
    update = parse_progress_line('    123,456,789  40%   12.50MB/s    0:01:20 (xfr#12, to-chk=34/567)')
    assert (update.elapsed, update.time_left) == (80, 120)
    assert (update.transfers, update.files_to_check, update.files) == (12, 34, 567)
    assert not update.scanning
    assert parse_progress_line('  1,000   0%   1.00kB/s   0:00:05 (xfr#1, to-chk=9/10)').time_left is None
    assert parse_progress_line('  1,000 100%   1.00kB/s   0:00:05 (xfr#1, to-chk=0/10)').time_left is None


@pytest.mark.parametrize('line, transferred, rate, time_left', [
    ('         32,768   0%    0.00kB/s    0:00:00  ', 32768, 0.0, 0),
    ('      1.234.567  10%   64,12MB/s   12:00:05 (xfr#1, ir-chk=1000/2345)', 1234567, 6412 / 100.0 * 1024 ** 2,
     43205 * 9),
    ("      1'234'567  10%    1.00GB/s    ??:??:?? (xfr#1, to-chk=0/1)", 1234567, 1024 ** 3, None),
    ('          5,000 100%    4.77kB/s    0:00:00 (xfr#1, to-chk=0/2) ', 5000, 4.77 * 1024, None),
])
def test_parse_progress_variants(line, transferred, rate, time_left):
    """Thousands separators of any locale, unknown times and incremental recursion are understood."""
    update = parse_progress_line(line)
    assert update.transferred_bytes == transferred
    assert update.rate == pytest.approx(rate)
    assert update.time_left == time_left


@pytest.mark.parametrize('line', [
    'sending incremental file list',
    'etc/hostname',
    '  45% of something',
    'Number of files: 3',
    '',
])
def test_other_lines_are_not_progress(line):
    """File names and other output are not mistaken for progress."""
    assert parse_progress_line(line) is None


def test_statistics_of_real_rsync(tmp_path):
    """The statistics of a real rsync run are read, and every line of the block is recognised."""
    source = tmp_path / 'source'
    (source / 'directory').mkdir(parents=True)
    for name in ('a', 'b', 'directory/c'):
        (source / name).write_bytes(os.urandom(1000))
    target = tmp_path / 'target'
    (target / 'old').mkdir(parents=True)
    (target / 'old' / 'file').write_text('to be deleted')
    output = subprocess.check_output(['rsync', '-a', '--delete', '--stats', '%s/' % source, '%s/' % target])
    statistics = TransferStatistics()
    other = [line for line in output.decode().splitlines() if not statistics.parse_line(line) and line.strip()]
    assert other == []
    assert statistics.complete
    assert (statistics.files, statistics.regular_files, statistics.transferred_files) == (5, 3, 3)
    assert (statistics.created_files, statistics.deleted_files) == (4, 2)
    assert (statistics.total_size, statistics.transferred_size) == (3000, 3000)
    assert statistics.bytes_sent > 3000 and statistics.bytes_received > 0


def test_later_statistics_win():
    """A file name that looks like a statistic (in a dry run's list) is overridden by the real block."""
    statistics = TransferStatistics()
    statistics.parse_line('Number of files: 999')
    statistics.parse_line('Number of files: 1,234 (reg: 1,000, dir: 234)')
    assert (statistics.files, statistics.regular_files) == (1234, 1000)
    assert not statistics.parse_line('Number of things: 5')
    assert statistics.parse_line('total size is 1,234  speedup is 5.00 (DRY RUN)')


@pytest.mark.parametrize('line, regular_files', [
    ('Number of files: 52 (reg: 50, dir: 2)', 50),
    ('Number of files: 1 (dir: 1)', 0),
    ('Number of files: 52', None),
])
def test_regular_files(line, regular_files):
    """The regular files come from the breakdown; rsync leaves out zero counts, and old versions the breakdown."""
    statistics = TransferStatistics()
    assert statistics.parse_line(line)
    assert statistics.regular_files == regular_files
