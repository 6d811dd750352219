"""
Tests of the rotation options: --minutely ... --yearly, --prefer-recent, --relaxed (see ``rotation/schemes.py``).

Each test runs the real command (rotation step only) on a directory of
pre-made snapshots and checks exactly which snapshots are left.
"""

import re

import pytest

from rsync_system_backup import DEFAULT_ROTATION_SCHEME, RsyncSystemBackup
from rsync_system_backup.command_line import parse_command_line
from rsync_system_backup.exceptions import InvalidOptionError
from rsync_system_backup.rotation.schemes import check_rotation_scheme, override_rotation_scheme, parse_retention
from support.trees import list_names, make_snapshots, snapshot_names

ONLY = ['--minutely=0', '--hourly=0', '--daily=0', '--weekly=0', '--monthly=0', '--yearly=0']
"""Options that empty the default scheme, so that a test can name the one frequency it is about."""


def only(option):
    """Rotation options that keep nothing but what `option` says."""
    name = option.split('=')[0]
    return [o for o in ONLY if not o.startswith(name + '=')] + [option]


# For each frequency: a snapshot outside the window of 2 periods, two in the
# period before the newest one's, and two in the newest one's period. Strict
# rotation with a count of 2 keeps the oldest of each of the last two periods,
# plus the newest snapshot.
FREQUENCY_CASES = [
    ('--minutely=2',
     ['2024-05-01_10-00-00', '2024-05-01_10-01-10', '2024-05-01_10-01-50', '2024-05-01_10-02-20',
      '2024-05-01_10-02-40'],
     ['2024-05-01_10-01-10', '2024-05-01_10-02-20', '2024-05-01_10-02-40']),
    ('--hourly=2',
     ['2024-05-01_07-00-00', '2024-05-01_08-10-00', '2024-05-01_08-50-00', '2024-05-01_09-20-00',
      '2024-05-01_09-40-00'],
     ['2024-05-01_08-10-00', '2024-05-01_09-20-00', '2024-05-01_09-40-00']),
    ('--daily=2',
     ['2024-05-01_12-00-00', '2024-05-02_06-00-00', '2024-05-02_18-00-00', '2024-05-03_08-00-00',
      '2024-05-03_20-00-00'],
     ['2024-05-02_06-00-00', '2024-05-03_08-00-00', '2024-05-03_20-00-00']),
    # ISO weeks 16, 17, 17, 18 and 18.
    ('--weekly=2',
     ['2024-04-16_12-00-00', '2024-04-23_12-00-00', '2024-04-25_12-00-00', '2024-04-30_12-00-00',
      '2024-05-02_12-00-00'],
     ['2024-04-23_12-00-00', '2024-04-30_12-00-00', '2024-05-02_12-00-00']),
    ('--monthly=2',
     ['2024-02-15_12-00-00', '2024-03-10_12-00-00', '2024-03-20_12-00-00', '2024-04-05_12-00-00',
      '2024-04-25_12-00-00'],
     ['2024-03-10_12-00-00', '2024-04-05_12-00-00', '2024-04-25_12-00-00']),
    ('--yearly=2',
     ['2021-06-01_12-00-00', '2022-03-01_12-00-00', '2022-09-01_12-00-00', '2023-02-01_12-00-00',
      '2023-08-01_12-00-00'],
     ['2022-03-01_12-00-00', '2023-02-01_12-00-00', '2023-08-01_12-00-00']),
]

HOURLY_SNAPSHOTS = ['2024-05-01_07-00-00', '2024-05-01_08-10-00', '2024-05-01_08-50-00', '2024-05-01_09-20-00',
                    '2024-05-01_09-40-00']
"""Two snapshots in each of the last two hours and one in the hour before."""


@pytest.fixture
def backups(tmp_path):
    """A backup directory with an empty ``latest`` (and no rotate-backups configuration in $HOME)."""
    directory = tmp_path / 'backups'
    (directory / 'latest').mkdir(parents=True)
    (tmp_path / 'home').mkdir()
    return directory


def rotate_cli(run_cli, backups, *options):
    """Run the rotation step of the real command with the given options; it must succeed."""
    result = run_cli('--rotate', '--disable-notifications', *(list(options) + [backups / 'latest']),
                     env={'HOME': str(backups.parent / 'home')})
    assert result.returncode == 0, result
    return result


@pytest.mark.parametrize('option, names, kept', FREQUENCY_CASES, ids=[case[0] for case in FREQUENCY_CASES])
def test_each_frequency(run_cli, backups, option, names, kept):
    """Each frequency option alone keeps the oldest snapshot of its last N periods, plus the newest."""
    make_snapshots(backups, names)
    rotate_cli(run_cli, backups, *only(option))
    assert snapshot_names(backups) == kept
    assert 'latest' in list_names(backups)


def test_always(run_cli, backups):
    """'always' keeps one snapshot of every period, however old."""
    make_snapshots(backups, HOURLY_SNAPSHOTS)
    rotate_cli(run_cli, backups, *only('--hourly=always'))
    assert snapshot_names(backups) == [
        '2024-05-01_07-00-00', '2024-05-01_08-10-00', '2024-05-01_09-20-00', '2024-05-01_09-40-00',
    ]


def test_always_in_any_case(run_cli, backups):
    """'ALWAYS' is read like 'always'."""
    make_snapshots(backups, HOURLY_SNAPSHOTS)
    rotate_cli(run_cli, backups, *only('--hourly=ALWAYS'))
    assert len(snapshot_names(backups)) == 4


def test_prefer_recent(run_cli, backups):
    """--prefer-recent keeps the newest snapshot of each period instead of the oldest."""
    make_snapshots(backups, HOURLY_SNAPSHOTS)
    rotate_cli(run_cli, backups, '--prefer-recent', *only('--hourly=2'))
    assert snapshot_names(backups) == ['2024-05-01_08-50-00', '2024-05-01_09-40-00']


def test_relaxed(run_cli, backups):
    """--relaxed counts the periods that have snapshots, however long ago; strict rotation counts back in time."""
    names = ['2024-05-01_05-00-00', '2024-05-01_06-00-00', '2024-05-01_09-00-00']
    make_snapshots(backups, names)
    rotate_cli(run_cli, backups, *only('--hourly=2'))
    assert snapshot_names(backups) == ['2024-05-01_09-00-00']
    make_snapshots(backups, names[:2])
    rotate_cli(run_cli, backups, '--relaxed', *only('--hourly=2'))
    assert snapshot_names(backups) == ['2024-05-01_06-00-00', '2024-05-01_09-00-00']


def test_other_frequencies_keep_their_defaults(run_cli, backups):
    """--daily=2 --hourly=0 leaves weekly=4 and monthly=always in force, which keep the first snapshot too."""
    make_snapshots(backups, FREQUENCY_CASES[2][1])
    rotate_cli(run_cli, backups, '--hourly=0', '--daily=2')
    assert snapshot_names(backups) == [
        '2024-05-01_12-00-00', '2024-05-02_06-00-00', '2024-05-03_08-00-00', '2024-05-03_20-00-00',
    ]


def test_dry_run_lists_kept_and_removed(run_cli, backups):
    """--dry-run with rotation names every snapshot it would keep (with the reasons) and remove, and removes none."""
    make_snapshots(backups, HOURLY_SNAPSHOTS)
    result = rotate_cli(run_cli, backups, '--dry-run', *only('--hourly=2'))
    assert snapshot_names(backups) == HOURLY_SNAPSHOTS
    kept = re.findall(r'Would keep \S+/(\S+) \(([^)]*)\)', result.output)
    removed = re.findall(r'Would remove \S+/(\S+)\.', result.output)
    assert kept == [('2024-05-01_08-10-00', 'hourly'), ('2024-05-01_09-20-00', 'hourly'),
                    ('2024-05-01_09-40-00', 'newest')]
    assert removed == ['2024-05-01_07-00-00', '2024-05-01_08-50-00']
    assert 'would keep 3 snapshots and remove 2' in result.output


@pytest.mark.parametrize('arguments, message', [
    (['--hourly=x'], "Invalid --hourly value 'x'"),
    (['--daily=-1'], "Invalid --daily value '-1'"),
    (['--weekly=1.5'], "Invalid --weekly value '1.5'"),
    (['--monthly='], "Invalid --monthly value ''"),
    (['--yearly=sometimes'], "Invalid --yearly value 'sometimes'"),
    (['--minutely=²'], "Invalid --minutely value '²'"),
    (['--hourly=1', '--hourly=2'], 'The option --hourly was given twice'),
    (['--hourly=0', '--daily=0', '--weekly=0', '--monthly=0'], 'The rotation scheme keeps no snapshots at all'),
    (['--prefer-recent', '--prefer-recent'], 'The option --prefer-recent was given twice'),
    (['--relaxed=yes'], "option --relaxed must not have an argument"),
])
def test_invalid_rotation_options(run_cli, tmp_path, arguments, message):
    """Bad rotation options are refused with one line and exit code 1, before anything is created."""
    result = run_cli(*(arguments + [tmp_path / 'source', tmp_path / 'backups' / 'latest']))
    assert result.returncode == 1, result
    assert result.stdout == ''
    assert result.stderr.startswith('Error: ')
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / 'backups').exists()


def test_options_become_keyword_arguments():
    """The rotation options land in rotation_scheme, prefer_recent and strict."""
    parsed = parse_command_line(['--hourly=0', '--yearly=always', '--daily=30', '--minutely=5',
                                 '--prefer-recent', '--relaxed', '/dst'], environment={})
    assert parsed.program_options == dict(
        rotation_scheme=dict(minutely=5, daily=30, weekly=4, monthly='always', yearly='always'),
        prefer_recent=True, strict=False, destination='/dst',
    )
    assert 'rotation_scheme' not in parse_command_line(['/dst'], environment={}).program_options


def test_scheme_helpers():
    """Counts are parsed and checked; 0 takes a frequency out; the default scheme is never changed."""
    assert parse_retention('hourly', ' 12 ') == 12
    assert parse_retention('hourly', 'Always') == 'always'
    assert override_rotation_scheme(DEFAULT_ROTATION_SCHEME, dict(weekly=0, yearly=3)) == dict(
        hourly=24, daily=7, monthly='always', yearly=3)
    assert DEFAULT_ROTATION_SCHEME == dict(hourly=24, daily=7, weekly=4, monthly='always')
    for scheme in [dict(fortnightly=2), dict(daily=-1), dict(daily=True), dict(daily='7'), dict(daily=0), {}]:
        with pytest.raises(InvalidOptionError):
            check_rotation_scheme(scheme)


def test_api_keyword_arguments(backups, monkeypatch):
    """prefer_recent, strict and a rotation_scheme with counts of 0 work from Python too."""
    monkeypatch.setenv('HOME', str(backups.parent / 'home'))
    make_snapshots(backups, HOURLY_SNAPSHOTS)
    program = RsyncSystemBackup(destination=str(backups / 'latest'), backup_enabled=False, snapshot_enabled=False,
                                notifications_enabled=False, prefer_recent=True, strict=False,
                                rotation_scheme=dict(hourly=1, daily=0, weekly=0, monthly=0))
    program.execute()
    assert snapshot_names(backups) == ['2024-05-01_09-40-00']
    assert program.summary.rotation_plan.removed == [str(backups / name) for name in HOURLY_SNAPSHOTS[:-1]]


def test_api_refuses_invalid_scheme_before_running(backups, monkeypatch):
    """An invalid rotation scheme given from Python is refused where it is set, before anything is removed."""
    monkeypatch.setenv('HOME', str(backups.parent / 'home'))
    make_snapshots(backups, HOURLY_SNAPSHOTS)
    with pytest.raises(InvalidOptionError):
        RsyncSystemBackup(destination=str(backups / 'latest'), backup_enabled=False, snapshot_enabled=False,
                          notifications_enabled=False, rotation_scheme=dict(hourly=0))
    assert snapshot_names(backups) == HOURLY_SNAPSHOTS
