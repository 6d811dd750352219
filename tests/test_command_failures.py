"""Tests of :mod:`rsync_system_backup.processes.command_failures`: a failing command of this system gets one line."""

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
