"""Tests of following a running rsync (``transfer/progress.py``): describing progress, reading lines, the monitor."""

import io
import os
import re
import threading
import tracemalloc

import pytest
from executor.contexts import LocalContext

from rsync_system_backup.transfer.progress import (
    DEFAULT_WIDTH,
    ProgressLine,
    TransferMonitor,
    describe_progress,
    read_lines,
)
from rsync_system_backup.transfer.output import parse_progress_line


def test_incremental_recursion_is_scanning():
    """ir-chk means rsync is still building its file list."""
    update = parse_progress_line('   1,000  1%  1.00MB/s  0:10:00 (xfr#3, ir-chk=1000/2345)')
    assert update.scanning
    assert describe_progress(update) == 'Transferring: 1%, 1 KB in 3 files, 1.05 MB/s, still listing files'


def test_describe_progress():
    """The progress line names the percentage, the size and files so far, the rate and the time left."""
    update = parse_progress_line('  1,234,567,890  45%   12.00MB/s    0:01:40 (xfr#1234, to-chk=10/5000)')
    assert describe_progress(update) == ('Transferring: 45%, 1.23 GB in 1,234 files, 12.58 MB/s, '
                                         '2 minutes and 2 seconds left')


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


def test_rsync_messages_start_on_a_line_of_their_own():
    """A message of rsync's (copied by ErrorOutputRecorder's thread) ends the progress line first."""
    from rsync_system_backup.transfer.errors import ErrorOutputRecorder
    terminal = FakeTerminal()
    line = ProgressLine(terminal, interval=0)
    line.show('Transferring: 5%')
    with ErrorOutputRecorder(write=line.write_above) as recorder:
        recorder.stream.write(b'rsync: [sender] send_files failed to open "/x": Permission denied (13)\n')
    assert terminal.getvalue() == ('\r\x1b[KTransferring: 5%\r\x1b[K'
                                   'rsync: [sender] send_files failed to open "/x": Permission denied (13)\n')
    assert not line.visible
    assert list(recorder.lines) == ['rsync: [sender] send_files failed to open "/x": Permission denied (13)']


def test_rsync_messages_on_a_real_terminal(tmp_path, fake_bin):
    """On a real terminal, a message that rsync writes while the progress line shows begins a line of its own."""
    from support.cli import command_environment, run_in_terminal
    from support.stand_ins import real_program, write_script
    (tmp_path / 'source').mkdir()
    (tmp_path / 'source' / 'file').write_bytes(os.urandom(1024 * 1024))
    # Real rsync, and then a message while its standard output (and so the progress line) is still open.
    write_script(fake_bin / 'rsync', '%s "$@"\nstatus=$?\necho "rsync: a message of rsync" >&2\nsleep 0.5\n'
                                     'exit $status\n' % real_program('rsync'))
    returncode, output = run_in_terminal(['--disable-notifications', tmp_path / 'source', tmp_path / 'b' / 'latest'],
                                         command_environment(fake_bin, HOME=str(tmp_path)))
    assert returncode == 0, output
    assert 'Transferring: ' in output
    before = output[:output.index('rsync: a message of rsync')]
    assert before.endswith('\r\x1b[K') or before.endswith('\n'), repr(output)


def test_terminal_without_width(monkeypatch):
    """A terminal that reports 0 columns (or whose size can't be asked) gets the default width, not one letter."""
    terminal = FakeTerminal()
    line = ProgressLine(terminal, interval=0)
    # FakeTerminal has no file descriptor: the size can't be asked.
    assert line.width == DEFAULT_WIDTH
    monkeypatch.setattr(terminal, 'fileno', lambda: 2, raising=False)
    sizes = {2: os.terminal_size((0, 24))}
    monkeypatch.setattr(os, 'get_terminal_size', lambda fd: sizes[fd])
    assert line.width == DEFAULT_WIDTH
    line.show('Transferring: ' + 'x' * 200)
    assert terminal.getvalue() == '\r\x1b[KTransferring: ' + 'x' * (DEFAULT_WIDTH - 1 - len('Transferring: '))
    sizes[2] = os.terminal_size((40, 24))
    assert line.width == 40


def test_progress_on_a_terminal_of_no_width(tmp_path, fake_bin):
    """On a pseudo-terminal that reports 0 columns, the progress line is the default width's, not one letter."""
    from support.cli import command_environment, run_in_terminal
    from support.stand_ins import real_program, write_script
    (tmp_path / 'source').mkdir()
    (tmp_path / 'source' / 'file').write_bytes(os.urandom(4 * 1024 * 1024))
    # A transfer slow enough for the progress line to show (rsync's --bwlimit is in KiB/s).
    write_script(fake_bin / 'rsync', 'exec %s --bwlimit=8192 "$@"\n' % real_program('rsync'))
    returncode, output = run_in_terminal(['--disable-notifications', tmp_path / 'source', tmp_path / 'b' / 'latest'],
                                         command_environment(fake_bin, HOME=str(tmp_path)), columns=0)
    assert returncode == 0, output
    # Each drawing of the line starts with a carriage return and an erase; one letter was all it showed.
    drawn = [text for text in re.findall('\r\x1b\\[K([^\r\n\x1b]*)', output) if text]
    assert drawn and all(text.startswith('Transferring: ') for text in drawn), repr(output)
    assert all(len(text) <= DEFAULT_WIDTH - 1 for text in drawn), repr(output)
