"""
Tests of snapshot rotation (:mod:`rsync_system_backup.rotation.plan`) on real directories.

rotate-backups plans which snapshots go, this package removes them.
"""

import datetime
import os
import re

import pytest

from rsync_system_backup import DEFAULT_ROTATION_SCHEME, RsyncSystemBackup
from support.stand_ins import write_script
from support.trees import list_names, make_snapshots, snapshot_names

pytestmark = pytest.mark.usefixtures('latest')


def rotate(directory, **options):
    """Rotate the snapshots next to ``directory/latest`` through the Python API."""
    options.setdefault('notifications_enabled', False)
    RsyncSystemBackup(destination=str(directory / 'latest'), backup_enabled=False, snapshot_enabled=False,
                      rotate_enabled=True, **options).execute()


def test_default_scheme():
    """The default scheme is 24 hourly, 7 daily, 4 weekly and all monthly snapshots."""
    assert DEFAULT_ROTATION_SCHEME == dict(hourly=24, daily=7, weekly=4, monthly='always')
    assert RsyncSystemBackup(destination='/b/latest').rotation_scheme == DEFAULT_ROTATION_SCHEME


def test_daily_scheme_keeps_oldest_per_day_and_newest(backups):
    """Each kept day keeps its oldest snapshot; the newest snapshot is kept although it is not the oldest."""
    names = ['2024-05-%02d_%s' % (day, time) for day in range(10, 16) for time in ('08-00-00', '20-00-00')]
    make_snapshots(backups, names)
    rotate(backups, rotation_scheme=dict(daily=3))
    assert list_names(backups) == [
        '2024-05-13_08-00-00', '2024-05-14_08-00-00', '2024-05-15_08-00-00', '2024-05-15_20-00-00', 'latest',
    ]


def test_prefer_recent_is_not_the_default(backups):
    """As in version 1.1, the oldest snapshot of a time slot is the one that stays."""
    make_snapshots(backups, ['2024-05-01_10-00-00', '2024-05-01_10-20-00', '2024-05-01_10-40-00'])
    rotate(backups, rotation_scheme=dict(hourly=24))
    assert list_names(backups) == ['2024-05-01_10-00-00', '2024-05-01_10-40-00', 'latest']


def test_default_scheme_on_many_snapshots(backups):
    """Hourly snapshots over 70 days, rotated with the default scheme, keep exactly what the scheme says."""
    newest = datetime.datetime(2024, 3, 31, 23, 0, 0)
    moments = [newest - datetime.timedelta(hours=hours) for hours in range(70 * 24)]
    make_snapshots(backups, [m.strftime('%Y-%m-%d_%H-%M-%S') for m in moments])
    rotate(backups)
    kept = set(list_names(backups)) - {'latest'}
    expected = set()
    # hourly=24: the 24 hours up to the newest.
    expected.update(m for m in moments if newest - m < datetime.timedelta(hours=24))
    # daily=7 (strict): each day's oldest snapshot (00:00), if not older than 7 days before the newest.
    expected.update(datetime.datetime(2024, 3, day) for day in range(25, 32))
    # weekly=4 (strict): each ISO week's oldest snapshot, if not older than 4 weeks before the newest.
    weeks = {}
    for m in sorted(moments):
        weeks.setdefault(m.isocalendar()[:2], m)
    expected.update(sorted(m for m in weeks.values() if m >= newest - datetime.timedelta(weeks=4))[-4:])
    # monthly=always: the oldest snapshot of every month.
    months = {}
    for m in sorted(moments):
        months.setdefault((m.year, m.month), m)
    expected.update(months.values())
    assert kept == set(m.strftime('%Y-%m-%d_%H-%M-%S') for m in expected)
    assert newest.strftime('%Y-%m-%d_%H-%M-%S') in kept


def test_legacy_names_are_rotated(backups):
    """Snapshots named by version 1.1 ('YYYY-MM-DD HH:MM:SS') are rotated along with new ones."""
    make_snapshots(backups, ['2024-05-01 10:00:00', '2024-05-01 10:30:00', '2024-05-01_10-45-00'])
    rotate(backups, rotation_scheme=dict(hourly=24))
    assert list_names(backups) == ['2024-05-01 10:00:00', '2024-05-01_10-45-00', 'latest']


def test_only_snapshot_names_are_touched(backups):
    """Folders with other names (even with timestamps in them) and temporary snapshots survive rotation."""
    others = ['2023-01-01 report', 'notes-2023-01-01', '2023-01-01', '2023-01-01_00-00-00.old',
              '2023-01-01_00-00', '2023-01-01 00-00-00', '2023-01-01_00:00:00']
    make_snapshots(backups, others)
    make_snapshots(backups, ['2024-05-01_10-00-00', '2024-05-01_10-30-00', '2024-05-01_11-00-00'])
    rotate(backups, rotation_scheme=dict(daily=1))
    assert list_names(backups) == sorted(others + ['2024-05-01_10-00-00', '2024-05-01_11-00-00', 'latest'])


def test_leftovers_of_interrupted_runs_are_removed(backups):
    """Snapshots left half-copied or half-removed by an interrupted run are removed by the next rotation."""
    make_snapshots(backups, ['2024-05-01_10-00-00.incomplete', '2024-05-01_09-00-00.removing', '2024-05-01_11-00-00'])
    rotate(backups)
    assert list_names(backups) == ['2024-05-01_11-00-00', 'latest']


def test_failed_removal_leaves_no_partial_snapshot(backups, fake_bin, monkeypatch):
    """A removal that fails halfway leaves the doomed snapshots under .removing names only."""
    write_script(fake_bin / 'rm', 'exit 1\n')
    monkeypatch.setenv('PATH', '%s:%s' % (fake_bin, os.environ['PATH']))
    make_snapshots(backups, ['2024-05-01_10-00-00', '2024-05-01_10-30-00', '2024-05-01_11-00-00'])
    with pytest.raises(Exception):
        rotate(backups, rotation_scheme=dict(daily=1))
    assert list_names(backups) == ['2024-05-01_10-00-00', '2024-05-01_10-30-00.removing', '2024-05-01_11-00-00',
                                   'latest']


def test_dry_run_removes_nothing(backups):
    """A dry run plans the rotation but removes nothing."""
    names = ['2024-05-01_10-00-00', '2024-05-01_10-30-00', '2024-05-01_11-00-00']
    make_snapshots(backups, names)
    rotate(backups, rotation_scheme=dict(daily=1), dry_run=True)
    assert list_names(backups) == names + ['latest']


def test_plan_reports_kept_and_removed(backups):
    """rotate_snapshots() returns what it kept (with reasons) and what it removed."""
    make_snapshots(backups, ['2024-05-01_10-00-00', '2024-05-01_10-30-00', '2024-05-02_10-00-00'])
    program = RsyncSystemBackup(destination=str(backups / 'latest'), rotation_scheme=dict(daily=7))
    plan = program.rotate_snapshots()
    assert [os.path.basename(p) for p in plan.removed] == ['2024-05-01_10-30-00']
    assert [(os.path.basename(p), reasons) for p, reasons in plan.kept] == [
        ('2024-05-01_10-00-00', ['daily']), ('2024-05-02_10-00-00', ['daily', 'newest']),
    ]


def test_configuration_file_overrides_scheme(backups, tmp_path, monkeypatch):
    """A section for the snapshot directory in ~/.rotate-backups.ini replaces the scheme (as in 1.1)."""
    home = tmp_path / 'home'
    home.mkdir()
    (home / '.rotate-backups.ini').write_text('[%s]\nhourly = 1\n' % backups)
    monkeypatch.setenv('HOME', str(home))
    make_snapshots(backups, ['2024-05-01_09-00-00', '2024-05-01_10-00-00', '2024-05-01_11-00-00'])
    rotate(backups, rotation_scheme=dict(daily=7))
    assert list_names(backups) == ['2024-05-01_11-00-00', 'latest']


def test_empty_directory(backups):
    """Rotating a directory without snapshots does nothing."""
    rotate(backups)
    assert list_names(backups) == ['latest']


def test_dry_run_predicts_the_real_run(run_cli, tmp_path, backups):
    """-n counts in the snapshot the run would add, so it removes what the real run right after removes."""
    (tmp_path / 'source').mkdir()
    (tmp_path / 'source' / 'file').write_text('x')
    make_snapshots(backups, ['2020-01-01_00-00-00', '2020-01-01_00-30-00'])
    arguments = ('--disable-notifications', '--hourly=0', '--daily=0', '--weekly=0', '--monthly=1',
                 tmp_path / 'source', backups / 'latest')
    dry = run_cli('-n', *arguments)
    assert dry.returncode == 0, dry
    assert 'would keep 1 snapshot and remove 2' in dry.stderr
    predicted = sorted(re.findall(r'Would remove \S+/(\S+)\.', dry.stderr))
    assert predicted == ['2020-01-01_00-00-00', '2020-01-01_00-30-00']
    real = run_cli(*arguments)
    assert real.returncode == 0, real
    assert '1 snapshot kept, 2 removed' in real.stderr
    [new] = snapshot_names(backups)
    assert new > '2020' and (backups / 'latest' / 'file').exists()


def test_impossible_date_is_skipped_with_a_warning(backups, run_cli):
    """A directory named like a snapshot of a day that doesn't exist: rotation works around it and warns."""
    make_snapshots(backups, ['2024-02-28_10-00-00', '2024-02-28_10-30-00', '2024-02-28_11-00-00',
                             '2024-02-30_00-00-00'])
    (backups / '2024-02-30_00-00-00' / 'keep-me').write_text('untouched\n')
    result = run_cli('--disable-notifications', '-r', '--hourly=0', backups / 'latest')
    assert result.returncode == 0, result
    assert list_names(backups) == ['2024-02-28_10-00-00', '2024-02-28_11-00-00', '2024-02-30_00-00-00', 'latest']
    assert (backups / '2024-02-30_00-00-00' / 'keep-me').read_text() == 'untouched\n'
    warnings = [line for line in result.stderr.splitlines() if ' WARNING ' in line and '2024-02-30' in line]
    assert len(warnings) == 1, result
    assert "Leaving %s alone: its name is not a possible date and time, so rotation can't place it; rename or " \
           "remove it by hand." % (backups / '2024-02-30_00-00-00') in warnings[0]
