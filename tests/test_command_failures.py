"""Tests of :mod:`rsync_system_backup.processes.command_failures`: a failing command of this system gets one line."""

import pytest

from rsync_system_backup.exceptions import CommandFailedError, ProgramNotFoundError
from rsync_system_backup.processes.command_failures import explain_failures
from rsync_system_backup.processes.sessions import create_local_context
from support.cli import assert_failed
from support.stand_ins import write_script
from support.trees import list_names, make_snapshots


def test_failing_local_command_is_one_line(tmp_path, run_cli, fake_bin):
    """rm failing during rotation: one line naming the command and its exit code, no "please report" traceback."""
    write_script(fake_bin / 'rm', 'echo "rm: cannot remove $4: Device or resource busy" >&2\nexit 1\n')
    backups = tmp_path / 'backups'
    make_snapshots(backups, ['2024-05-01_10-00-00', '2024-05-02_10-00-00'])
    (backups / 'latest').mkdir()
    result = run_cli('--disable-notifications', '-r', '--hourly=0', '--daily=1', '--weekly=0', '--monthly=0',
                     backups / 'latest')
    assert_failed(result, "Aborting due to error: 'rm -rf -- %s' failed with exit code 1 (see its message above); "
                  "the earlier snapshots are intact." % (backups / '2024-05-01_10-00-00.removing'))
    assert 'please report' not in result.stderr
    assert 'rm: cannot remove' in result.stderr
    assert list_names(backups) == ['2024-05-01_10-00-00.removing', '2024-05-02_10-00-00', 'latest']


def test_shell_code_is_not_shown():
    """A failing command that runs shell code is named by its name and arguments: the code itself is left out."""
    with pytest.raises(CommandFailedError) as raised:
        with explain_failures():
            create_local_context().execute('sh', '-c', 'echo internal-code >&2; exit 3', 'probe', 'an argument',
                                           shell=False, tty=False)
    assert str(raised.value) == ("'sh -c … probe 'an argument'' failed with exit code 3 (see its message above); "
                                 "the earlier snapshots are intact.")


def test_missing_program_is_named(monkeypatch):
    """A program that isn't installed is named with where it was looked for, before anything runs."""
    monkeypatch.setenv('PATH', '/usr/bin:/bin')
    with pytest.raises(ProgramNotFoundError) as raised:
        with explain_failures():
            create_local_context().execute('rsb-no-such-program', shell=False, tty=False)
    assert str(raised.value) == ("rsb-no-such-program not found (looked in /usr/bin:/bin:/usr/local/sbin:/usr/sbin:"
                                 "/sbin): install it, or add its directory to PATH.")
