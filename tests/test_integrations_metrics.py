"""Tests of integrations/metrics.py: the Prometheus textfile, read back with prometheus_client's parser."""

import fcntl
import logging
import os
import shutil
import stat
import threading
import time

import pytest

from rsync_system_backup.exceptions import InvalidOptionError
from rsync_system_backup.integrations.metrics import (
    JobMetrics, check_metrics_file, metrics_from_summary, write_job_metrics,
)
from support.prometheus import parse_metrics
from support.trees import make_snapshots, snapshot_names
from support.users import NOBODY, run_as_nobody, shared_directory


def full_metrics(job, base):
    """A JobMetrics of a successful run with every value, each from `base`."""
    return JobMetrics(job, last_run=base + 0.25, last_success=base + 0.25, exit_code=0, duration=base % 1000 + 0.5,
                      transferred_bytes=base + 1, snapshots=base % 100, free_bytes=base * 2)


def metric_warnings(caplog):
    """The warnings that the metrics module logged (a list of strings)."""
    return [record.getMessage() for record in caplog.records
            if record.name == 'rsync_system_backup.integrations.metrics' and record.levelno >= logging.WARNING]


def test_two_jobs_one_after_the_other(tmp_path, caplog):
    """Each job's run writes its seven series; the other job's stay."""
    pathname = tmp_path / 'rsync-system-backup.prom'
    assert write_job_metrics(str(pathname), full_metrics('system', 1700000000)) is True
    assert write_job_metrics(str(pathname), full_metrics('home', 1700003600)) is True
    values = parse_metrics(pathname)
    assert values == {
        'system': dict(last_run=1700000000.25, last_success=1700000000.25, exit_code=0, duration=0.5,
                       transferred_bytes=1700000001, snapshots=0, free_bytes=3400000000),
        'home': dict(last_run=1700003600.25, last_success=1700003600.25, exit_code=0, duration=600.5,
                     transferred_bytes=1700003601, snapshots=0, free_bytes=3400007200),
    }
    assert metric_warnings(caplog) == []
    text = pathname.read_text()
    assert '# TYPE rsync_system_backup_free_bytes gauge\n' in text
    assert 'rsync_system_backup_transferred_bytes{job="home"} 1700003601\n' in text
    # Written again, a job's samples are replaced, not added.
    write_job_metrics(str(pathname), full_metrics('system', 1700007200))
    values = parse_metrics(pathname)
    assert values['system']['last_run'] == 1700007200.25 and values['home']['last_run'] == 1700003600.25


def test_failing_run_keeps_last_success(tmp_path):
    """A failed run updates the run's time, exit code and duration; what it didn't measure keeps its value."""
    pathname = tmp_path / 'backups.prom'
    write_job_metrics(str(pathname), full_metrics('system', 1700000000))
    write_job_metrics(str(pathname), JobMetrics('system', last_run=1700086400, exit_code=1, duration=3))
    assert parse_metrics(pathname) == {'system': dict(
        last_run=1700086400, last_success=1700000000.25, exit_code=1, duration=3,
        transferred_bytes=1700000001, snapshots=0, free_bytes=3400000000)}


def test_job_that_never_succeeded(tmp_path):
    """A job whose runs all failed has last_success 0, and no samples for what was never measured."""
    pathname = tmp_path / 'backups.prom'
    write_job_metrics(str(pathname), JobMetrics('usb', last_run=1700000000, exit_code=1, duration=1, free_bytes=7))
    assert parse_metrics(pathname) == {'usb': dict(last_run=1700000000, last_success=0, exit_code=1, duration=1,
                                                   free_bytes=7)}


def test_label_escaping(tmp_path):
    """A job name with a backslash, double quotes and a line feed is escaped, and read back intact."""
    pathname = tmp_path / 'backups.prom'
    awkward = 'C:\\backup "weekly"\nsecond line } 1'
    write_job_metrics(str(pathname), full_metrics(awkward, 1700000000))
    assert 'rsync_system_backup_snapshots{job="C:\\\\backup \\"weekly\\"\\nsecond line } 1"} 0\n' \
        in pathname.read_text()
    write_job_metrics(str(pathname), full_metrics('plain', 1700003600))
    values = parse_metrics(pathname)
    assert sorted(values) == sorted([awkward, 'plain'])
    written = vars(full_metrics(awkward, 1700000000))
    del written['job']
    assert values[awkward] == written


def test_symlink_at_the_name_is_replaced(tmp_path):
    """A symbolic link that another user planted at the name is replaced; its target is neither read nor written."""
    target = tmp_path / 'precious'
    target.write_text('rsync_system_backup_exit_code{job="planted"} 9\n')
    with shared_directory() as directory:
        os.chown(directory, *NOBODY)
        pathname = os.path.join(directory, 'backups.prom')
        run_as_nobody('ln -s "$1" "$2"', target, pathname)
        assert os.path.islink(pathname)
        assert write_job_metrics(pathname, full_metrics('system', 1700000000)) is True
        assert not os.path.islink(pathname)
        info = os.lstat(pathname)
        assert stat.S_ISREG(info.st_mode) and info.st_uid == 0
        assert list(parse_metrics(pathname)) == ['system']
        assert sorted(os.listdir(directory)) == ['backups.prom']
    assert target.read_text() == 'rsync_system_backup_exit_code{job="planted"} 9\n'


def test_fifo_at_the_name_is_replaced(tmp_path):
    """A FIFO at the file's name neither blocks the writer nor is written to: it is replaced."""
    pathname = tmp_path / 'backups.prom'
    os.mkfifo(str(pathname))
    assert write_job_metrics(str(pathname), full_metrics('system', 1700000000)) is True
    assert list(parse_metrics(pathname)) == ['system']


def test_file_mode_and_no_leftovers(tmp_path):
    """The file is readable by node_exporter (0644) whatever the umask, and no temporary file stays."""
    pathname = tmp_path / 'backups.prom'
    old_umask = os.umask(0o077)
    try:
        write_job_metrics(str(pathname), full_metrics('system', 1700000000))
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(os.stat(str(pathname)).st_mode) == 0o644
    assert os.listdir(str(tmp_path)) == ['backups.prom']


def test_other_lines_are_dropped(tmp_path):
    """Lines that aren't the program's samples (foreign series, garbage, bad values) are not kept."""
    pathname = tmp_path / 'backups.prom'
    pathname.write_text('# a comment\nnode_foo 1\nrsync_system_backup_exit_code{job="old"} 2\n'
                        'rsync_system_backup_exit_code{job="bad"} NaN\nrsync_system_backup_unknown{job="x"} 1\n'
                        'rsync_system_backup_snapshots{job="bad value"} 1_000\n\x00\xff garbage {job="\n')
    write_job_metrics(str(pathname), full_metrics('system', 1700000000))
    values = parse_metrics(pathname)
    assert sorted(values) == ['old', 'system']
    assert values['old'] == dict(exit_code=2)
    assert 'node_foo' not in pathname.read_text()


@pytest.mark.parametrize('scene', ['missing directory', 'directory at the name', 'locked'])
def test_failure_is_one_warning(tmp_path, caplog, scene):
    """A file that can't be written is one warning naming it; nothing raises, and nothing is left behind."""
    directory = tmp_path / 'metrics'
    directory.mkdir()
    pathname = directory / 'backups.prom'
    write_job_metrics(str(pathname), full_metrics('system', 1700000000))
    before = pathname.read_text()
    locked = None
    if scene == 'missing directory':
        shutil.rmtree(str(directory))
    elif scene == 'directory at the name':
        pathname.unlink()
        pathname.mkdir()
    else:
        locked = os.open(str(directory), os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(locked, fcntl.LOCK_EX)
    started = time.monotonic()
    try:
        assert write_job_metrics(str(pathname), full_metrics('home', 1700003600), lock_timeout=0.3) is False
    finally:
        if locked is not None:
            os.close(locked)
    assert time.monotonic() - started < 5
    warnings = metric_warnings(caplog)
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("Couldn't update the metrics file %s: " % pathname), warnings[0]
    assert warnings[0].endswith(" (the backup doesn't depend on it).")
    if scene == 'locked':
        assert "another run held the lock of its directory for 0.3 seconds" in warnings[0]
        assert pathname.read_text() == before
    if scene == 'directory at the name':
        assert "Is a directory" in warnings[0]
        assert pathname.is_dir()
    if scene != 'missing directory':
        assert os.listdir(str(directory)) == ['backups.prom']


def test_concurrent_writers(tmp_path):
    """Two jobs writing at once take turns: no reader sees half a file, and no job's samples go back in time."""
    pathname = tmp_path / 'backups.prom'
    rounds = 100
    errors = []
    done = threading.Event()

    def write(job):
        for number in range(1, rounds + 1):
            if not write_job_metrics(str(pathname), JobMetrics(job, last_run=number, exit_code=number % 3)):
                errors.append("write %i of %s failed" % (number, job))

    def read():
        newest = {}
        while not done.is_set():
            if pathname.exists():
                try:
                    values = parse_metrics(pathname)
                except (AssertionError, ValueError) as e:
                    errors.append("torn file: %r" % e)
                    return
                for job, samples in values.items():
                    if not set(samples) >= {'last_run', 'last_success', 'exit_code'}:
                        errors.append("incomplete samples: %r" % values)
                    if samples['last_run'] < newest.get(job, 0):
                        errors.append("a write of %s was lost: %r after %r" % (job, samples, newest))
                    newest[job] = samples['last_run']

    writers = [threading.Thread(target=write, args=(job,)) for job in ('system', 'home')]
    reader = threading.Thread(target=read)
    for thread in writers + [reader]:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    reader.join()
    assert errors == []
    values = parse_metrics(pathname)
    assert values == {job: dict(last_run=rounds, last_success=0, exit_code=rounds % 3) for job in ('system', 'home')}


def test_metrics_of_a_real_backup(source, backups, tmp_path):
    """A real run's summary gives the bytes rsync sent, the snapshots left after rotation and the free space."""
    from rsync_system_backup import RsyncSystemBackup
    make_snapshots(backups, ['2020-01-01_00-00-00', '2020-01-01_00-30-00'])
    program = RsyncSystemBackup(source=str(source), destination=str(backups / 'latest'), notifications_enabled=False)
    started = time.time()
    program.execute()
    ended = time.time()
    metrics = metrics_from_summary('system', started, ended, 0, program.summary)
    assert (metrics.job, metrics.last_run, metrics.last_success, metrics.exit_code) == ('system', ended, ended, 0)
    assert metrics.duration == ended - started
    assert metrics.transferred_bytes == program.summary.transfer_statistics.bytes_sent > 0
    # The new snapshot and the oldest of the hour (the other of 2020-01-01 00:xx is rotated away).
    assert metrics.snapshots == len(snapshot_names(backups)) == 2
    assert metrics.free_bytes == program.summary.disk_space.free
    assert abs(metrics.free_bytes - shutil.disk_usage(str(backups)).free) < 100 * 1024 * 1024
    pathname = tmp_path / 'backups.prom'
    write_job_metrics(str(pathname), metrics)
    assert parse_metrics(pathname)['system']['snapshots'] == 2


def test_metrics_of_a_dry_run(source, backups):
    """A dry run measures no transfer and no rotation, and is no success; its free space is real."""
    from rsync_system_backup import RsyncSystemBackup
    make_snapshots(backups, ['2020-01-01_00-00-00'])
    program = RsyncSystemBackup(source=str(source), destination=str(backups / 'latest'), dry_run=True,
                                notifications_enabled=False)
    program.execute()
    assert 'transfer' in program.summary.durations and 'rotation' in program.summary.durations
    metrics = metrics_from_summary('system', 100, 160, 0, program.summary)
    assert (metrics.last_run, metrics.last_success, metrics.duration) == (160, None, 60)
    assert (metrics.transferred_bytes, metrics.snapshots) == (None, None)
    assert metrics.free_bytes == program.summary.disk_space.free > 0


def test_metrics_without_a_backup():
    """A run that ended before its summary, or that skipped its backup, is no success and measured nothing."""
    from rsync_system_backup.reporting.summary import BackupSummary
    metrics = metrics_from_summary('system', 100, 101.5, 1, None)
    assert vars(metrics) == dict(job='system', last_run=101.5, last_success=None, exit_code=1, duration=1.5,
                                 transferred_bytes=None, snapshots=None, free_bytes=None)
    # The disk isn't connected: exit code 0, but no step ran.
    skipped = metrics_from_summary('usb', 100, 100.5, 0, BackupSummary('/mnt/usb/latest'))
    assert (skipped.exit_code, skipped.last_success) == (0, None)


@pytest.mark.parametrize('pathname, message', [
    ('backups.prom', "The metrics file 'backups.prom' is a relative pathname: give an absolute one, such as "
                     "/var/lib/prometheus/node-exporter/rsync-system-backup.prom."),
    ('/var/lib/node-exporter/backups.txt', "The metrics file /var/lib/node-exporter/backups.txt doesn't end in "
                                           "NAME.prom, so node_exporter's textfile collector would never read it: "),
    ('/var/lib/node-exporter/', "doesn't end in NAME.prom"),
    ('/var/lib/node-exporter/.prom', "doesn't end in NAME.prom"),
    (['/a.prom'], "The metrics file must be a pathname (a string), not list: "),
])
def test_bad_metrics_file(pathname, message):
    """A metrics file that node_exporter wouldn't read, or that depends on the working directory, is refused."""
    with pytest.raises(InvalidOptionError) as raised:
        check_metrics_file(pathname)
    assert message in str(raised.value)
    assert '\n' not in str(raised.value)


def test_good_metrics_file():
    """An absolute pathname that ends in .prom passes."""
    check_metrics_file('/var/lib/prometheus/node-exporter/rsync-system-backup.prom')
