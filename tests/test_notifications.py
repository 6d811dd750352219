"""
Tests of :mod:`rsync_system_backup.reporting.notifications`: no notify-send without a session bus, and never its noise.

``notify-send`` is a stand-in that records its calls and complains the way
the real one does without a desktop session.
"""

import pytest

from support.stand_ins import write_script
from support.trees import write_file

COMPLAINT = 'Cannot autolaunch D-Bus without X11 $DISPLAY'
"""What the real notify-send prints without a desktop session."""


@pytest.fixture
def noisy_notify_send(tmp_path, fake_bin):
    """A notify-send that records each call in a file and complains on standard output and error."""
    log = tmp_path / 'calls.log'
    write_script(fake_bin / 'notify-send', 'echo "$*" >> %s\necho "%s"\necho "%s" >&2\nexit 1\n'
                 % (log, COMPLAINT, COMPLAINT))
    return log


@pytest.mark.parametrize('options', [[], ['-q']])
def test_headless_run_calls_no_notify_send(tmp_path, run_cli, noisy_notify_send, monkeypatch, options):
    """Without a session bus (cron), notify-send isn't run, and nothing of it shows, with or without -q."""
    for name in ('DBUS_SESSION_BUS_ADDRESS', 'DISPLAY', 'WAYLAND_DISPLAY'):
        monkeypatch.delenv(name, raising=False)
    write_file(tmp_path / 'source' / 'file', b'x')
    result = run_cli(*(options + [tmp_path / 'source', tmp_path / 'backups' / 'latest']))
    assert result.returncode == 0, result
    assert not noisy_notify_send.exists()
    assert 'D-Bus' not in result.output


def test_notify_send_output_never_shows(tmp_path, run_cli, noisy_notify_send, monkeypatch):
    """With a session bus notify-send runs (start and end), but what it prints never gets through."""
    monkeypatch.setenv('DBUS_SESSION_BUS_ADDRESS', 'unix:path=%s' % (tmp_path / 'bus'))
    write_file(tmp_path / 'source' / 'file', b'x')
    result = run_cli('-q', tmp_path / 'source', tmp_path / 'backups' / 'latest')
    assert result.returncode == 0, result
    assert result.output == ''
    calls = noisy_notify_send.read_text().splitlines()
    assert len(calls) == 2 and 'Starting the backup' in calls[0] and 'Finished the backup' in calls[1]
