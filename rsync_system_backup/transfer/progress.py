"""
Following a running rsync: live progress on a terminal, statistics for the summary.

:class:`TransferMonitor` reads rsync's standard output through a pipe as it
comes, in fixed-size chunks, so memory use stays flat however many files
rsync names. Progress updates go to a :class:`ProgressLine` (when a person is
watching), the ``--stats`` block goes into a
:class:`~rsync_system_backup.transfer.output.TransferStatistics` object, and
every other line (the file list of a dry run, say) is passed through to our
standard output.
"""

import os
import re
import sys
import threading
import time

from humanfriendly import format_size, format_timespan
from humanfriendly.terminal import ANSI_ERASE_LINE

from rsync_system_backup.processes.waiting import wait_for_exit
from rsync_system_backup.reporting.summary import format_count
from rsync_system_backup.transfer.output import TransferStatistics, parse_progress_line

CHUNK_SIZE = 64 * 1024
"""How many bytes of rsync's output are read at a time."""

LONGEST_LINE = 64 * 1024
"""Longer lines are split, so a runaway line can't fill memory."""

LINE_ENDING = re.compile(b'[\r\n]')
"""rsync ends progress updates with a carriage return and other lines with a newline."""

REDRAW_INTERVAL = 0.2
"""The minimum number of seconds between two redraws of the progress line."""

DEFAULT_WIDTH = 80
"""The width assumed for a terminal whose size can't be found out, or that reports 0 columns."""


class ProgressLine(object):

    """A line at the bottom of a terminal that is redrawn in place."""

    def __init__(self, stream, interval=REDRAW_INTERVAL, clock=time.monotonic):
        """
        Prepare to draw on a terminal.

        :param stream: The terminal's text stream (usually :data:`sys.stderr`).
        :param interval: The minimum number of seconds between redraws.
        :param clock: A function that returns the current time in seconds.
        """
        self.stream = stream
        self.interval = interval
        self.clock = clock
        self.drawn_at = None
        self.visible = False
        # rsync's error messages are copied to the terminal by another thread (see ErrorOutputRecorder).
        self.lock = threading.Lock()

    def due(self):
        """
        Check whether it is time to redraw the line.

        :returns: :data:`True` when the line wasn't drawn yet or was drawn at
                  least :attr:`interval` seconds ago.
        """
        return self.drawn_at is None or self.clock() - self.drawn_at >= self.interval

    def show(self, text):
        """
        Replace the line's text.

        :param text: The new text (a string without line breaks); it is cut
                     to the terminal's width so that it never wraps.
        """
        with self.lock:
            self.drawn_at = self.clock()
            self.stream.write('\r' + ANSI_ERASE_LINE + text[:max(1, self.width - 1)])
            self.stream.flush()
            self.visible = True

    @property
    def width(self):
        """
        The terminal's current width in columns (it can change while rsync runs).

        A terminal that reports no width (0 columns: ``stty cols 0``, some
        serial consoles and container terminals) or can't be asked gets
        :data:`DEFAULT_WIDTH`, so the line isn't cut to a single letter.
        """
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, OSError, ValueError):
            return DEFAULT_WIDTH
        return columns or DEFAULT_WIDTH

    def write_above(self, text):
        """
        Show a message (one of rsync's) on a line of its own, ending the progress line first.

        :param text: The message, with its line ending (a string).

        The progress line is erased and the message takes its place; the
        next update draws the progress line again, below the message.
        """
        with self.lock:
            if self.visible:
                self.stream.write('\r' + ANSI_ERASE_LINE)
                self.visible = False
            self.stream.write(text)
            self.stream.flush()

    def clear(self):
        """
        Erase the line (if it is visible), leaving the cursor at its start.

        :meth:`due()` still counts from the last redraw, so output that
        keeps clearing the line can't make it redraw more often.
        """
        with self.lock:
            if self.visible:
                self.stream.write('\r' + ANSI_ERASE_LINE)
                self.stream.flush()
                self.visible = False


def describe_progress(update):
    """
    Describe a progress update in one short line.

    :param update: A :class:`~rsync_system_backup.transfer.output.ProgressUpdate`.
    :returns: For example ``Transferring: 45%, 1.2 GB in 1,234 files,
              12.3 MB/s, 2 minutes left`` (a string).
    """
    parts = ['%i%%' % update.percentage]
    files = ' in %s' % format_count(update.transfers, 'file') if update.transfers else ''
    parts.append(format_size(update.transferred_bytes) + files)
    parts.append('%s/s' % format_size(int(update.rate)))
    if update.scanning:
        parts.append('still listing files')
    elif update.time_left and update.percentage < 100:
        parts.append('%s left' % format_timespan(round(update.time_left)))
    return 'Transferring: ' + ', '.join(parts)


class TransferMonitor(object):

    """
    Follow a running rsync through its standard output.

    Start rsync with :attr:`rsync_options` on its command line and
    :attr:`command_options` as options of the :mod:`executor` command, then
    call :meth:`follow()`::

        monitor = TransferMonitor(show_progress=True)
        rsync = context.execute(*command_line, *monitor.rsync_options, **monitor.command_options)
        monitor.follow(rsync)
        print(monitor.statistics.bytes_sent)
    """

    command_options = dict(asynchronous=True, capture=True, buffered=False)
    """:mod:`executor` options that start rsync in the background with its standard output on a pipe."""

    def __init__(self, show_progress=False, terminal=None, output=None):
        """
        Prepare to follow a transfer.

        :param show_progress: :data:`True` to show rsync's overall progress on `terminal`.
        :param terminal: The text stream to draw progress on (defaults to :data:`sys.stderr`).
        :param output: The text stream that gets rsync's other output (defaults to :data:`sys.stdout`).
        """
        self.show_progress = show_progress
        self.progress_line = ProgressLine(terminal or sys.stderr) if show_progress else None
        self.output = output or sys.stdout
        self.statistics = TransferStatistics()

    @property
    def rsync_options(self):
        """The rsync options that make it report what :meth:`follow()` reads (a tuple of strings)."""
        return ('--stats', '--info=progress2') if self.show_progress else ('--stats',)

    def follow(self, command):
        """
        Read rsync's output until it ends, then wait for rsync to exit.

        :param command: The running :class:`~executor.ExternalCommand`,
                        started with :attr:`command_options`.

        When reading is interrupted (by a signal handler raising an exception,
        say), rsync is terminated before the exception goes on.
        """
        pipe = command.stdout
        try:
            # There's no pipe when rsync couldn't be started at all.
            if pipe is not None:
                with pipe:
                    for line in read_lines(pipe.fileno()):
                        self.handle_line(line.decode('utf-8', 'replace'))
        except BaseException:
            if command.is_running:
                command.terminate(use_spinner=False)
            raise
        finally:
            if self.progress_line:
                self.progress_line.clear()
            wait_for_exit(command)

    def handle_line(self, line):
        """
        Handle one line of rsync's output.

        :param line: The line, without its line ending (a string).
        """
        update = parse_progress_line(line)
        if update:
            # Updates come much faster than anyone can read them.
            if self.progress_line and self.progress_line.due():
                self.progress_line.show(describe_progress(update))
        elif not self.statistics.parse_line(line) and line.strip():
            if self.progress_line:
                self.progress_line.clear()
            self.output.write(line + '\n')
            self.output.flush()


def read_lines(fd, chunk_size=CHUNK_SIZE, longest_line=LONGEST_LINE):
    """
    Read lines from a file descriptor as they come.

    :param fd: A readable file descriptor (an integer).
    :param chunk_size: How many bytes to read at a time.
    :param longest_line: Lines longer than this are handed out in parts.
    :returns: A generator of byte strings without line endings; lines ending
              in a carriage return count as lines, and empty lines are skipped.
    """
    pending = b''
    while True:
        chunk = os.read(fd, chunk_size)
        if not chunk:
            break
        lines = LINE_ENDING.split(pending + chunk)
        pending = lines.pop()
        for line in lines:
            if line:
                yield line
        while len(pending) > longest_line:
            yield pending[:longest_line]
            pending = pending[longest_line:]
    if pending:
        yield pending
