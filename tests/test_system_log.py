"""
Tests of the system log (:mod:`rsync_system_backup.reporting.system_log`): which messages reach it, and when.

The system log is a unix datagram socket bound in the test, named by
$RSYNC_SYSTEM_BACKUP_SYSLOG_SOCKET.
"""

import os
import re
import socket
import subprocess

import pytest

from support.cli import command_environment, command_line, run_in_terminal
from support.stand_ins import real_program, write_script


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
    write_script(fake_bin / 'rsync', '%s "$@" || exit\nexit 24\n' % real_program('rsync'))


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
    environment = command_environment(fake_bin, **syslog_environment(syslog, tmp_path))
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
    environment = command_environment(fake_bin, JOURNAL_STREAM='%i:%i' % (info.st_dev, info.st_ino),
                                      **syslog_environment(syslog, tmp_path))
    with os.fdopen(read_fd, 'rb') as reader:
        with os.fdopen(write_fd, 'wb') as writer:
            process = subprocess.Popen(
                command_line('--disable-notifications', source, backups / 'latest'),
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
