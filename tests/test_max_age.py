"""
Tests of ``--max-age``: the monitoring check that the newest snapshot is recent enough.

Snapshots are directories named after moments relative to now; the check
reads their age from the names, as it does for real snapshots.
"""

import datetime
import os

import pytest

from support.leaks import leak_check
from support.namespaces import run_cli_in_namespace
from support.trees import make_snapshots

SNAPSHOT_NAME_FORMAT = '%Y-%m-%d_%H-%M-%S'
"""How snapshots are named."""

MARKER = '.rsync-system-backup'
"""The marker file of a backup set."""

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason='needs root (a private mount namespace)')


def name_ago(**delta):
    """The name of a snapshot made some time ago (keyword arguments of :class:`datetime.timedelta`)."""
    return (datetime.datetime.now() - datetime.timedelta(**delta)).strftime(SNAPSHOT_NAME_FORMAT)


@pytest.fixture
def two_hours_old(backups):
    """A backup set whose newest complete snapshot is two hours old (a newer one is unfinished)."""
    make_snapshots(backups, [name_ago(days=3), name_ago(hours=2)])
    (backups / (name_ago(minutes=1) + '.incomplete')).mkdir()
    (backups / 'latest').mkdir()
    (backups / MARKER).write_text('This directory holds backups made by rsync-system-backup.\n')
    return backups


@pytest.mark.parametrize('limit', ['3h', '26h', '2d', '2 days', '1d12h', '2h 30m', '1.5d', '3 HOURS'])
def test_young_enough(run_cli, two_hours_old, limit):
    """Exit code 0 and one OK line when the newest snapshot is younger than the limit (units combine, issue 22)."""
    result = run_cli('--max-age=%s' % limit, two_hours_old / 'latest')
    assert result.returncode == 0, result
    assert result.stdout.startswith('OK: the newest snapshot ') and ' is 2 hours' in result.stdout, result
    assert len(result.stdout.splitlines()) == 1


@pytest.mark.parametrize('limit', ['90s', '1h', '119m', '1h59m', '1h 30m 59s'])
def test_too_old(run_cli, two_hours_old, limit):
    """Exit code 2 and one CRITICAL line saying how old it is (an unfinished snapshot doesn't count)."""
    result = run_cli('--max-age', limit, two_hours_old / 'latest')
    assert result.returncode == 2, result
    assert result.stdout.startswith('CRITICAL: the newest snapshot ') and ' is 2 hours' in result.stdout, result
    assert len(result.stdout.splitlines()) == 1


def test_no_snapshot(run_cli, backups):
    """Without any snapshot the check fails too."""
    (backups / 'latest').mkdir(parents=True)
    (backups / MARKER).write_text('')
    result = run_cli('--max-age=1d', backups / 'latest')
    assert result.returncode == 2, result
    assert result.stdout.startswith('CRITICAL: there is no complete snapshot in ')


@pytest.mark.parametrize('exists', [False, True])
def test_missing_or_unmarked_set_is_critical(run_cli, two_hours_old, exists):
    """Without the marker (or without the directory) young snapshots don't make the check say OK (issue 22)."""
    (two_hours_old / MARKER).unlink()
    destination = two_hours_old / 'latest' if exists else two_hours_old.parent / 'missing' / 'latest'
    result = run_cli('--max-age=1d', destination)
    assert result.returncode == 2, result
    assert result.stdout == ('CRITICAL: there is no backup set in %s (no %s file; is the backup disk mounted?) '
                             '(limit 1 day).\n' % (destination.parent, MARKER)), result


def test_set_of_version_1_1_counts_without_a_marker(run_cli, backups):
    """Version 1.1 made no marker: its snapshot names make the set known."""
    make_snapshots(backups, [(datetime.datetime.now() - datetime.timedelta(hours=2)).strftime('%Y-%m-%d %H:%M:%S')])
    (backups / 'latest').mkdir()
    result = run_cli('--max-age=1d', backups / 'latest')
    assert result.returncode == 0, result
    assert result.stdout.startswith('OK: the newest snapshot ')


@needs_root
@pytest.mark.usefixtures('unchanged_host')
@pytest.mark.parametrize('configured_by', ['fstab', 'mount-unit'])
def test_set_below_an_unmounted_mount_point_is_critical(tmp_path, two_hours_old, configured_by):
    """A fresh set on the filesystem below the backup disk's unmounted mount point doesn't fool the check (issue 22)."""
    assert two_hours_old.parent == tmp_path
    if configured_by == 'fstab':
        fstab, before = 'LABEL=rsb-backup-disk %s ext4 noauto 0 2\n' % tmp_path, None
        origin = '/etc/fstab'
    else:
        unit = '/etc/systemd/system/rsb-test.mount'
        fstab, origin = '', 'the systemd unit %s' % unit
        before = 'mkdir -p /etc/systemd/system && printf "[Mount]\\nWhat=LABEL=x\\nWhere=%s\\n" > %s' % (
            tmp_path, unit)
    with leak_check([], [tmp_path]):
        result = run_cli_in_namespace(['--max-age=1d', two_hours_old / 'latest'], fstab=fstab, before=before)
    assert result.returncode == 2, result
    assert result.stdout == ('CRITICAL: %s lies below %s, which %s names as a mount point, but nothing is mounted '
                             'there (limit 1 day).\n' % (two_hours_old, tmp_path, origin)), result


@pytest.mark.parametrize('value', ['soon', '0', '-5m', '', '0h', '1h30', '5 fortnights', 'h', '1d-12h'])
def test_invalid_duration(run_cli, backups, value):
    """A value that isn't a duration is a usage error that names the option."""
    result = run_cli('--max-age=%s' % value, backups / 'latest')
    assert result.returncode == 1, result
    assert result.stderr == ("Error: Invalid --max-age value %r: give a duration such as 90s, 26h, 2d or 1d12h.\n"
                             % value), result


@pytest.mark.parametrize('arguments', [['--max-age=26'], ['--max-age', '26'], ['--max-age= 26 ']])
def test_number_without_unit(run_cli, two_hours_old, arguments):
    """A bare number is refused with the fix (it would mean seconds to the program, hours to the user; issue 22)."""
    result = run_cli(*arguments + [two_hours_old / 'latest'])
    assert result.returncode == 1, result
    assert result.stdout == ''
    assert result.stderr == ("Error: --max-age=26 has no unit: give one, as in 26h (s, m, h, d or w; they combine, "
                             "as in 1d12h).\n"), result


def test_set_directory_stands_for_its_set(run_cli, two_hours_old):
    """Given the set's directory instead of its latest, the check looks at that set (issue 22)."""
    for destination in (two_hours_old, two_hours_old / 'latest'):
        result = run_cli('--max-age=1d', destination)
        assert result.returncode == 0, result
        assert result.stdout.startswith('OK: the newest snapshot %s/' % two_hours_old), result


def test_actions_refuse_other_work(run_cli, tmp_path, backups):
    """An action takes DESTINATION alone, and one action per run."""
    result = run_cli('--max-age=1d', tmp_path, backups / 'latest')
    assert result.returncode == 1 and 'takes DESTINATION alone' in result.stderr, result
    result = run_cli('--max-age=1d', '--list', backups / 'latest')
    assert result.returncode == 1 and "can't be combined" in result.stderr, result
    result = run_cli('--max-age=1d', '-b', backups / 'latest')
    assert result.returncode == 1 and "doesn't go with -b, -s or -r" in result.stderr, result
