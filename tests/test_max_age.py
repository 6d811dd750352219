"""
Tests of ``--max-age``: the monitoring check that the newest snapshot is recent enough.

Snapshots are directories named after moments relative to now; the check
reads their age from the names, as it does for real snapshots.
"""

import datetime

import pytest

from support.trees import make_snapshots

SNAPSHOT_NAME_FORMAT = '%Y-%m-%d_%H-%M-%S'
"""How snapshots are named."""


def name_ago(**delta):
    """The name of a snapshot made some time ago (keyword arguments of :class:`datetime.timedelta`)."""
    return (datetime.datetime.now() - datetime.timedelta(**delta)).strftime(SNAPSHOT_NAME_FORMAT)


@pytest.fixture
def two_hours_old(backups):
    """A backup set whose newest complete snapshot is two hours old (a newer one is unfinished)."""
    make_snapshots(backups, [name_ago(days=3), name_ago(hours=2)])
    (backups / (name_ago(minutes=1) + '.incomplete')).mkdir()
    (backups / 'latest').mkdir()
    return backups


@pytest.mark.parametrize('limit', ['3h', '26h', '2d', '10800'])
def test_young_enough(run_cli, two_hours_old, limit):
    """Exit code 0 and one OK line when the newest snapshot is younger than the limit."""
    result = run_cli('--max-age=%s' % limit, two_hours_old / 'latest')
    assert result.returncode == 0, result
    assert result.stdout.startswith('OK: the newest snapshot ') and ' is 2 hours' in result.stdout, result
    assert len(result.stdout.splitlines()) == 1


@pytest.mark.parametrize('limit', ['90s', '1h', '119m'])
def test_too_old(run_cli, two_hours_old, limit):
    """Exit code 2 and one CRITICAL line saying how old it is (an unfinished snapshot doesn't count)."""
    result = run_cli('--max-age', limit, two_hours_old / 'latest')
    assert result.returncode == 2, result
    assert result.stdout.startswith('CRITICAL: the newest snapshot ') and ' is 2 hours' in result.stdout, result
    assert len(result.stdout.splitlines()) == 1


def test_no_snapshot(run_cli, backups):
    """Without any snapshot the check fails too."""
    (backups / 'latest').mkdir(parents=True)
    result = run_cli('--max-age=1d', backups / 'latest')
    assert result.returncode == 2, result
    assert result.stdout.startswith('CRITICAL: there is no complete snapshot in ')


@pytest.mark.parametrize('value', ['soon', '0', '-5m', ''])
def test_invalid_duration(run_cli, backups, value):
    """A value that isn't a duration is a usage error that names the option."""
    result = run_cli('--max-age=%s' % value, backups / 'latest')
    assert result.returncode == 1, result
    assert result.stderr.startswith('Error: ') and '--max-age' in result.stderr


def test_actions_refuse_other_work(run_cli, tmp_path, backups):
    """An action takes DESTINATION alone, and one action per run."""
    result = run_cli('--max-age=1d', tmp_path, backups / 'latest')
    assert result.returncode == 1 and 'takes DESTINATION alone' in result.stderr, result
    result = run_cli('--max-age=1d', '--list', backups / 'latest')
    assert result.returncode == 1 and "can't be combined" in result.stderr, result
    result = run_cli('--max-age=1d', '-b', backups / 'latest')
    assert result.returncode == 1 and "doesn't go with -b, -s or -r" in result.stderr, result
