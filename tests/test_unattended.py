"""
Tests of :mod:`rsync_system_backup.reporting.unattended`: without a terminal a run writes one summary line.

Besides the summary only warnings and errors get through, also those of the
libraries the steps use (rotate-backups logs its scanning at INFO level).
"""

import logging
import re

import pytest

from rsync_system_backup.reporting.unattended import SPAM, VERBOSE, find_log_level
from support.stand_ins import real_program, write_script
from support.trees import make_snapshots, write_file

LOG_LINE = re.compile(r'^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+ (\S+)\[\d+\] ([A-Z]+) (.*)$')
"""A log line without a terminal: date, time, host, logger[pid], level, message."""


@pytest.fixture
def source(tmp_path):
    """A small source tree."""
    write_file(tmp_path / 'source' / 'file', b'data')
    return tmp_path / 'source'


def parse_lines(text):
    """Split the command's standard error into (logger, level, message) tuples (every line must be a log line)."""
    lines = [LOG_LINE.match(line) for line in text.splitlines()]
    assert all(lines), text
    return [match.groups() for match in lines]


def test_one_summary_line(run_cli, source, backups):
    """A run under cron that goes well writes exactly one line: the INFO summary (no rotate-backups lines)."""
    make_snapshots(backups, ['2020-01-01_00-00-00', '2020-01-01_00-30-00'])
    backups.chmod(0o700)
    result = run_cli(source, backups / 'latest')
    assert result.returncode == 0, result
    assert result.stdout == ''
    [(name, level, message)] = parse_lines(result.stderr)
    assert (name, level) == ('rsync_system_backup.reporting.summary', 'INFO')
    assert message.startswith('Backup to %s done in ' % (backups / 'latest'))
    assert '2 snapshots kept, 1 removed' in message


def test_warnings_get_through(run_cli, source, backups, fake_bin):
    """Warnings are shown next to the summary line."""
    write_script(fake_bin / 'rsync', '%s "$@" || exit\nexit 24\n' % real_program('rsync'))
    result = run_cli(source, backups / 'latest')
    assert result.returncode == 0, result
    levels = [level for name, level, message in parse_lines(result.stderr)]
    assert sorted(levels) == ['INFO', 'WARNING'], result


def test_verbose_shows_the_steps(run_cli, source, backups):
    """-v brings back the messages of the steps and of the libraries."""
    result = run_cli('-v', source, backups / 'latest')
    assert result.returncode == 0, result
    names = set(name for name, level, message in parse_lines(result.stderr))
    assert 'rotate_backups' in names and 'rsync_system_backup.transfer.execution' in names


@pytest.mark.parametrize('verbosity, level', [
    (-4, logging.CRITICAL), (-2, logging.ERROR), (-1, logging.WARNING), (0, logging.INFO), (1, VERBOSE),
    (2, logging.DEBUG), (3, SPAM), (5, SPAM),
])
def test_log_levels(verbosity, level):
    """One -v is VERBOSE, two DEBUG, three SPAM; each -q goes one level up from INFO."""
    assert find_log_level(verbosity) == level
    assert logging.getLevelName(VERBOSE) == 'VERBOSE'
