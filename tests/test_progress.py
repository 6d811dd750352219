"""Tests of reading rsync's output: progress lines, statistics, and following a running command."""

import io
import os
import subprocess
import threading
import tracemalloc

import pytest
from executor.contexts import LocalContext

from rsync_system_backup.transfer.progress import ProgressLine, TransferMonitor, describe_progress, read_lines
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


def test_incremental_recursion_is_scanning():
    """ir-chk means rsync is still building its file list."""
    update = parse_progress_line('   1,000  1%  1.00MB/s  0:10:00 (xfr#3, ir-chk=1000/2345)')
    assert update.scanning
    assert describe_progress(update) == 'Transferring: 1%, 1 KB in 3 files, 1.05 MB/s, still listing files'


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


def test_describe_progress():
    """The progress line names the percentage, the size and files so far, the rate and the time left."""
    update = parse_progress_line('  1,234,567,890  45%   12.00MB/s    0:01:40 (xfr#1234, to-chk=10/5000)')
    assert describe_progress(update) == ('Transferring: 45%, 1.23 GB in 1,234 files, 12.58 MB/s, '
                                         '2 minutes and 2 seconds left')


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


def test_read_lines_splits_on_both_line_endings():
    """Carriage returns end lines too; empty lines are skipped; chunk borders don't matter."""
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b'one\rtwo\r\nthree\n\nfour')
    os.close(write_fd)
    try:
        assert list(read_lines(read_fd, chunk_size=3)) == [b'one', b'two', b'three', b'four']
    finally:
        os.close(read_fd)


def test_read_lines_splits_runaway_lines():
    """A line longer than the limit comes out in parts instead of growing in memory."""
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b'x' * 25 + b'\nend\n')
    os.close(write_fd)
    try:
        assert list(read_lines(read_fd, chunk_size=4, longest_line=10)) == [b'x' * 10, b'x' * 10, b'x' * 5, b'end']
    finally:
        os.close(read_fd)


class FakeTerminal(io.StringIO):

    """A text stream that says it is a terminal."""

    def isatty(self):
        """Claim to be a terminal."""
        return True


def test_progress_line_redraws_in_place():
    """The progress line starts with a carriage return and an erase, is throttled, and can be cleared."""
    now = [0.0]
    terminal = FakeTerminal()
    line = ProgressLine(terminal, interval=0.2, clock=lambda: now[0])
    assert line.due()
    line.show('first')
    now[0] = 0.1
    assert not line.due()
    line.clear()
    assert not line.due()
    line.clear()
    now[0] = 0.3
    assert line.due()
    line.show('second ' + 'x' * 200)
    assert terminal.getvalue() == '\r\x1b[Kfirst\r\x1b[K\r\x1b[Ksecond ' + 'x' * 72


def run_monitored(script, show_progress, terminal=None, output=None):
    """Run a shell script as if it were rsync and follow it with a TransferMonitor."""
    monitor = TransferMonitor(show_progress=show_progress, terminal=terminal, output=output)
    command = LocalContext().execute('sh', '-c', script, shell=False, check=False, **monitor.command_options)
    monitor.follow(command)
    return monitor, command


def test_monitor_passes_other_lines_through():
    """Progress goes to the terminal, statistics are collected and other lines reach the output."""
    terminal, output = FakeTerminal(), io.StringIO()
    script = r'''
        printf 'sending incremental file list\n'
        printf '      1,000  50%%    1.00kB/s    0:00:01 (xfr#1, to-chk=1/2)\r'
        printf 'etc/hostname\n'
        printf '      2,000 100%%    1.00kB/s    0:00:00 (xfr#2, to-chk=0/2)\r\n'
        printf '\nNumber of files: 2 (reg: 2)\nNumber of regular files transferred: 2\n'
        printf 'Total bytes sent: 2,100\n\nsent 2,100 bytes  received 35 bytes  4,270.00 bytes/sec\n'
        exit 23
    '''
    monitor, command = run_monitored(script, True, terminal, output)
    assert command.returncode == 23
    assert output.getvalue() == 'sending incremental file list\netc/hostname\n'
    assert 'Transferring: 50%, 1 KB in 1 file, 1.02 KB/s, 1 second left' in terminal.getvalue()
    assert terminal.getvalue().endswith('\r\x1b[K')
    assert (monitor.statistics.files, monitor.statistics.transferred_files, monitor.statistics.bytes_sent) == \
        (2, 2, 2100)


def test_monitor_without_progress():
    """Without a terminal, rsync isn't asked for progress and nothing is drawn."""
    monitor = TransferMonitor(show_progress=False, output=io.StringIO())
    assert monitor.rsync_options == ('--stats',)
    assert TransferMonitor(show_progress=True).rsync_options == ('--stats', '--info=progress2')


def test_monitor_terminates_on_interrupt():
    """When following is interrupted, the command is terminated before the exception goes on."""
    monitor = TransferMonitor(show_progress=False, output=io.StringIO())
    command = LocalContext().execute('sh', '-c', 'echo started; exec sleep 60', shell=False, check=False,
                                     **monitor.command_options)

    def interrupt(line):
        raise KeyboardInterrupt

    monitor.handle_line = interrupt
    with pytest.raises(KeyboardInterrupt):
        monitor.follow(command)
    assert not command.is_running
    assert command.returncode != 0


def test_memory_stays_flat():
    """Following 40,000 lines of output (2.5 MB) holds only a little of it in memory at a time."""
    script = '''awk 'BEGIN { for (i = 0; i < 20000; i++) {
        printf "      %d,000  50%%    1.00kB/s    0:00:01 (xfr#1, to-chk=1/2)\\r", i
        print "some/file/name/" i } }' '''
    with open(os.devnull, 'w') as null:
        tracemalloc.start()
        try:
            monitor, command = run_monitored(script, True, terminal=null, output=null)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert command.returncode == 0
    assert peak < 512 * 1024


def test_monitor_without_pipe():
    """A command that couldn't be started (rsync missing) has no pipe; following it just waits."""
    monitor = TransferMonitor(output=io.StringIO())
    command = LocalContext().execute('/nonexistent/rsync', shell=False, check=False, **monitor.command_options)
    monitor.follow(command)
    assert command.returncode == 127


def test_monitor_with_stderr_file():
    """rsync's standard error can go to a pipe read by another thread (as rsync_errors does) meanwhile."""
    read_fd, write_fd = os.pipe()
    errors = []

    def read_errors():
        with os.fdopen(read_fd, 'rb') as handle:
            errors.extend(handle.read().splitlines())

    reader = threading.Thread(target=read_errors)
    reader.start()
    monitor = TransferMonitor(output=io.StringIO())
    with os.fdopen(write_fd, 'wb') as stream:
        command = LocalContext().execute('sh', '-c', 'echo out; echo err >&2', shell=False, check=False,
                                         stderr_file=stream, **monitor.command_options)
        monitor.follow(command)
    reader.join(5)
    assert monitor.output.getvalue() == 'out\n'
    assert errors == [b'err']
