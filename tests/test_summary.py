"""
Tests of what the command shows: progress and summary on a terminal, one line without one, and the system log.

The terminal is a real pseudo-terminal (the pty module); the system log is a
unix datagram socket bound in the test, named by
$RSYNC_SYSTEM_BACKUP_SYSLOG_SOCKET.
"""

import errno
import fcntl
import os
import pty
import re
import select
import socket
import struct
import subprocess
import sys
import termios
import time

import pytest

from support.trees import list_names

ANSI_ESCAPE = re.compile(r'\x1b\[[0-9;]*[A-Za-z]')
SNAPSHOT_NAME = re.compile(r'^\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}$')
OLD_SNAPSHOTS = ['2020-01-01_00-00-00', '2020-01-01_00-30-00']
"""Two old snapshots in one month: monthly=always keeps the first, so rotation removes the second."""


@pytest.fixture
def source(tmp_path):
    """A source directory with 20 files of 256 KiB."""
    directory = tmp_path / 'source'
    directory.mkdir()
    for i in range(20):
        (directory / ('file-%02i' % i)).write_bytes(os.urandom(256 * 1024))
    return directory


@pytest.fixture
def backups(tmp_path):
    """A backup directory holding two old snapshots (but no ``latest`` yet)."""
    directory = tmp_path / 'backups'
    for name in OLD_SNAPSHOTS:
        (directory / name).mkdir(parents=True)
    return directory


def command_environment(fake_bin, tmp_path, **overrides):
    """The environment of the command, as run_cli builds it (with $HOME out of the way)."""
    environment = dict(os.environ)
    environment.pop('RSYNC_MODULE_PATH', None)
    environment.pop('JOURNAL_STREAM', None)
    environment.update(COLOREDLOGS_SYSLOG='false', HOME=str(tmp_path), PATH='%s:%s' % (fake_bin, os.environ['PATH']))
    environment.update(overrides)
    return environment


def run_in_terminal(arguments, environment, columns=200, timeout=120):
    """
    Run the command with a pseudo-terminal as its standard input, output and error.

    :returns: The exit code and everything written to the terminal (with
              the terminal's CR LF line endings turned back into LF).
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack('HHHH', 50, columns, 0, 0))
    process = subprocess.Popen([sys.executable, '-m', 'rsync_system_backup'] + [str(a) for a in arguments],
                               stdin=slave, stdout=slave, stderr=slave, env=environment, start_new_session=True)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 1)[0]:
                continue
            try:
                data = os.read(master, 65536)
            except OSError as e:
                if e.errno != errno.EIO:
                    raise
                break
            if not data:
                break
            chunks.append(data)
        returncode = process.wait(timeout=max(1, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    return returncode, b''.join(chunks).decode('utf-8', 'replace').replace('\r\n', '\n')


def snapshots_in(directory):
    """The names of the snapshots in a directory, sorted."""
    return [name for name in list_names(directory) if SNAPSHOT_NAME.match(name)]


def new_snapshot(backups):
    """The name of the one snapshot that isn't an old one."""
    names = [name for name in snapshots_in(backups) if name not in OLD_SNAPSHOTS]
    assert len(names) == 1, names
    return names[0]


def test_terminal_shows_progress_and_summary(source, backups, fake_bin, tmp_path):
    """On a terminal: colours, live progress redrawn in place, then a summary block with every detail."""
    environment = command_environment(fake_bin, tmp_path)
    returncode, output = run_in_terminal(['--disable-notifications', source, backups / 'latest'], environment)
    assert returncode == 0, output
    assert ANSI_ESCAPE.search(output.split('Transferring: ')[0]), "log messages should be coloured"
    progress = re.findall(r'\r\x1b\[KTransferring: (\d+)%, ([^\r\n]*)', output)
    assert progress, output
    assert all(0 <= int(percentage) <= 100 and '/s' in rest for percentage, rest in progress)
    snapshot = new_snapshot(backups)
    summary = output[output.index('Summary of the backup:'):]
    lines = summary.splitlines()
    assert lines[1] == '  Destination: %s' % (backups / 'latest')
    assert lines[2] == '  Steps done:  transfer, snapshot and rotation'
    assert re.match(r'  Transfer:    20 of 20 files transferred, (0 deleted, )?5\.\d+ MB sent, in [\d.]+ seconds?$',
                    lines[3]), lines[3]
    assert re.match(r'  Snapshot:    %s, in [\d.]+ seconds?$' % snapshot, lines[4]), lines[4]
    assert re.match(r'  Rotation:    2 snapshots kept, 1 removed \(2020-01-01_00-30-00\), in [\d.]+ seconds?$',
                    lines[5]), lines[5]
    assert re.match(r'  Free space:  [\d.]+ [KMGT]?B \(\d+% of [\d.]+ [KMGT]?B\)$', lines[6]), lines[6]
    assert re.match(r'  Total time:  [\d.]+ seconds?$', lines[7]), lines[7]
    assert len(lines) == 8
    assert snapshots_in(backups) == ['2020-01-01_00-00-00', snapshot]


@pytest.mark.parametrize('method, deleted', [('hardlink', ' 1 deleted,'), ('link-dest', '')])
def test_terminal_summary_of_changes(source, backups, fake_bin, tmp_path, method, deleted):
    """
    A second run counts the changed and deleted files.

    With the link-dest method rsync builds a new tree and deletes nothing,
    so the summary doesn't claim a number of deleted files.
    """
    environment = command_environment(fake_bin, tmp_path)
    arguments = ['--snapshot-method=%s' % method, '--disable-notifications', source, backups / 'latest']
    assert run_in_terminal(arguments, environment)[0] == 0
    (source / 'file-00').unlink()
    (source / 'file-01').write_bytes(b'changed')
    returncode, output = run_in_terminal(arguments, environment)
    assert returncode == 0, output
    transfer = r'  Transfer:    1 of 19 files transferred,%s [\d.]+ (bytes|KB) sent, in ' % deleted
    assert re.search(transfer, output), output
    assert re.search(r'  Rotation:    3 snapshots kept, 0 removed, in ', output), output


def test_terminal_quiet(source, backups, fake_bin, tmp_path):
    """-q on a terminal shows neither progress nor summary (nor informational messages)."""
    environment = command_environment(fake_bin, tmp_path)
    returncode, output = run_in_terminal(['-q', '--disable-notifications', source, backups / 'latest'], environment)
    assert returncode == 0, output
    assert output == ''


def test_without_terminal_one_line(run_cli, source, backups, tmp_path):
    """Without a terminal: no progress, no colours, and the summary in one line at info level."""
    result = run_cli('--disable-notifications', source, backups / 'latest', env={'HOME': str(tmp_path)})
    assert result.returncode == 0, result
    assert result.stdout == ''
    assert '\x1b[' not in result.stderr
    assert 'Transferring:' not in result.stderr
    assert 'Summary' not in result.stderr
    snapshot = new_snapshot(backups)
    summaries = [line for line in result.stderr.splitlines() if 'Backup to' in line]
    assert len(summaries) == 1
    assert re.search(
        r' INFO Backup to %s done in [\d.]+ seconds?: 20 of 20 files transferred, (0 deleted, )?5\.\d+ MB sent; '
        r'snapshot %s; 2 snapshots kept, 1 removed; [\d.]+ [KMGT]?B free \(\d+%% of [\d.]+ [KMGT]?B\)\.$'
        % (re.escape(str(backups / 'latest')), snapshot), summaries[0]), summaries[0]


def test_without_terminal_quiet(run_cli, source, backups, tmp_path):
    """-q without a terminal leaves out the summary line too."""
    result = run_cli('-q', '--disable-notifications', source, backups / 'latest', env={'HOME': str(tmp_path)})
    assert result.returncode == 0, result
    assert result.output == ''


def test_dry_run_output(run_cli, source, backups, tmp_path):
    """A dry run passes rsync's file list through to standard output and says what it would do."""
    result = run_cli('--dry-run', '--disable-notifications', source, backups / 'latest', env={'HOME': str(tmp_path)})
    assert result.returncode == 0, result
    assert sorted(line for line in result.stdout.splitlines() if line.startswith('file-')) == \
        ['file-%02i' % i for i in range(20)]
    assert 'Number of files' not in result.stdout
    assert re.search(r'Dry run of the backup to \S+ done in [^:]+: would transfer 20 of 20 files and delete 0; '
                     r'snapshot \S+ \(would be made\); would keep 2 snapshots and remove 0; ', result.stderr), result
    assert snapshots_in(backups) == OLD_SNAPSHOTS
    assert not (backups / 'latest').exists()


def test_dry_run_summary_on_terminal(source, backups, fake_bin, tmp_path):
    """The summary block of a dry run says that nothing was changed."""
    environment = command_environment(fake_bin, tmp_path)
    returncode, output = run_in_terminal(['-n', '--disable-notifications', source, backups / 'latest'], environment)
    assert returncode == 0, output
    assert 'Summary of the dry run (nothing was changed):' in output
    assert re.search(r'  Transfer:    would transfer 20 of 20 files and delete 0, in ', output)
    assert re.search(r'  Rotation:    would keep 2 snapshots and remove 0, in ', output)


class SyslogReceiver(object):

    """A unix datagram socket that stands in for /dev/log."""

    def __init__(self, pathname):
        """Bind the socket."""
        self.pathname = str(pathname)
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(self.pathname)
        self.socket.setblocking(False)

    def messages(self):
        """Return the messages received so far, as (priority, text) tuples."""
        received = []
        while True:
            try:
                data = self.socket.recv(65536)
            except BlockingIOError:
                return received
            match = re.match(r'<(\d+)>(.*)', data.decode('utf-8').rstrip('\0\n'), re.DOTALL)
            received.append((int(match.group(1)), match.group(2)))

    def close(self):
        """Close and remove the socket."""
        self.socket.close()
        os.unlink(self.pathname)


@pytest.fixture
def syslog(tmp_path):
    """A :class:`SyslogReceiver` in the test's temporary directory."""
    receiver = SyslogReceiver(tmp_path / 'log.sock')
    yield receiver
    receiver.close()


def syslog_environment(syslog, tmp_path):
    """Environment overrides that point the command's system log at the test's socket."""
    return {'COLOREDLOGS_SYSLOG': 'true', 'RSYNC_SYSTEM_BACKUP_SYSLOG_SOCKET': syslog.pathname, 'HOME': str(tmp_path)}


def vanishing_files(fake_bin):
    """Make rsync exit with code 24 (files vanished) after a real transfer, which the run reports as a warning."""
    real_rsync = subprocess.check_output(['sh', '-c', 'command -v rsync']).decode().strip()
    (fake_bin / 'rsync').write_text('#!/bin/sh\n%s "$@" || exit\nexit 24\n' % real_rsync)
    (fake_bin / 'rsync').chmod(0o755)


WARNING_PATTERN = re.compile(r'rsync-system-backup\[\d+\]: WARNING .*\b24\b')
"""The syslog message of the warning about rsync's exit code 24."""


LOG_USER_WARNING, LOG_USER_INFO, LOG_USER_ERROR = 8 + 4, 8 + 6, 8 + 3


def test_syslog_without_terminal(run_cli, source, backups, fake_bin, tmp_path, syslog):
    """Without a terminal, warnings, errors and informational messages (the summary among them) reach syslog."""
    vanishing_files(fake_bin)
    result = run_cli('--disable-notifications', source, backups / 'latest', env=syslog_environment(syslog, tmp_path))
    assert result.returncode == 0, result
    messages = syslog.messages()
    assert any(priority == LOG_USER_WARNING and WARNING_PATTERN.match(text) for priority, text in messages), messages
    assert any(priority == LOG_USER_INFO and ' INFO Backup to %s done in ' % (backups / 'latest') in text
               for priority, text in messages), messages
    failed = run_cli('--disable-notifications', tmp_path / 'missing', backups / 'latest',
                     env=syslog_environment(syslog, tmp_path))
    assert failed.returncode == 1
    errors = [text for priority, text in syslog.messages() if priority == LOG_USER_ERROR]
    assert len(errors) == 1 and 'ERROR Aborting due to error: The source' in errors[0], errors


def test_syslog_on_terminal(source, backups, fake_bin, tmp_path, syslog):
    """On a terminal only warnings and errors go to syslog (the person sees the rest)."""
    vanishing_files(fake_bin)
    environment = command_environment(fake_bin, tmp_path, **syslog_environment(syslog, tmp_path))
    returncode, output = run_in_terminal(['--disable-notifications', source, backups / 'latest'], environment)
    assert returncode == 0, output
    messages = syslog.messages()
    assert [priority for priority, text in messages] == [LOG_USER_WARNING], messages
    assert WARNING_PATTERN.match(messages[0][1]), messages


def test_syslog_under_systemd(source, backups, fake_bin, tmp_path, syslog):
    """When standard error is the journal already ($JOURNAL_STREAM), only warnings and errors go to syslog."""
    vanishing_files(fake_bin)
    read_fd, write_fd = os.pipe()
    info = os.fstat(write_fd)
    environment = command_environment(fake_bin, tmp_path, JOURNAL_STREAM='%i:%i' % (info.st_dev, info.st_ino),
                                      **syslog_environment(syslog, tmp_path))
    with os.fdopen(read_fd, 'rb') as reader:
        with os.fdopen(write_fd, 'wb') as writer:
            process = subprocess.Popen(
                [sys.executable, '-m', 'rsync_system_backup', '--disable-notifications', str(source),
                 str(backups / 'latest')],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=writer, env=environment,
            )
        journal = reader.read().decode()
    assert process.wait(timeout=120) == 0, journal
    assert 'INFO Backup to' in journal
    assert [priority for priority, text in syslog.messages()] == [LOG_USER_WARNING]


def test_syslog_turned_off(run_cli, source, backups, fake_bin, tmp_path, syslog):
    """COLOREDLOGS_SYSLOG=false keeps everything out of syslog."""
    vanishing_files(fake_bin)
    environment = dict(syslog_environment(syslog, tmp_path), COLOREDLOGS_SYSLOG='false')
    result = run_cli('--disable-notifications', source, backups / 'latest', env=environment)
    assert result.returncode == 0, result
    assert syslog.messages() == []
