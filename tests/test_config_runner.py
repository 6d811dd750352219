"""
Tests of running the jobs of a configuration file (``config/runner.py`` with ``config/hooks.py``; issue 24).

Real runs of the command with ``--config``: jobs to a local directory and
over SSH (the sshd fixture of ``conftest.py``), hooks that record the
environment they saw and the backup set as it was when they ran, a hook
that hangs, a failing job among good ones, read-only actions per job, a
dry run and a signal.
"""

import os
import signal
import time

from support.cli import finish
from support.http_recorder import RecordingServer
from support.prometheus import parse_metrics
from support.config_files import read_listing, read_record, recording_hook, toml_string, write_config, write_one_job
from support.processes import wait_for
from support.remote import SERVER_ALIAS
from support.trees import list_names, make_snapshots, read_tree, snapshot_names, write_tree

OLD_SNAPSHOTS = ['2024-05-01_10-00-00', '2024-05-01_10-30-00']
"""Two snapshots of one month: the default rotation keeps the older and removes ``2024-05-01_10-30-00``."""


def summary_lines(result):
    """The one-line summaries in a run's output (a list of strings)."""
    return [line for line in result.stderr.splitlines() if ' done in ' in line and 'Backup to ' in line]


def make_job_source(tmp_path, name='source'):
    """A small source tree (its contents, a dict, and its path)."""
    directory = tmp_path / name
    return write_tree(directory, {'etc/hostname': 'laptop\n', 'home/me/notes': name}), directory


def test_two_jobs_local_and_over_ssh(tmp_path, client_home):
    """Both jobs back up, in the file's order: one to a local directory, one over SSH; one summary line each."""
    home, home_source = make_job_source(tmp_path, 'home')
    system, system_source = make_job_source(tmp_path, 'system')
    config = write_config(tmp_path / 'config.toml', """
        [defaults]
        exclude = ["*.iso"]

        [jobs.local]
        source = {home}
        destination = {local}

        [jobs.remote]
        source = {system}
        destination = {remote}
    """.format(home=toml_string(home_source), local=toml_string(tmp_path / 'disk' / 'latest'),
               system=toml_string(system_source),
               remote=toml_string('%s:%s' % (SERVER_ALIAS, tmp_path / 'server' / 'latest'))))
    (system_source / 'image.iso').write_text('left out')
    result = client_home.run('--config=%s' % config)
    assert result.returncode == 0, result
    assert read_tree(tmp_path / 'disk' / 'latest') == home
    assert read_tree(tmp_path / 'server' / 'latest') == system
    for backups, contents in ((tmp_path / 'disk', home), (tmp_path / 'server', system)):
        [snapshot] = snapshot_names(backups)
        assert read_tree(backups / snapshot) == contents
    lines = summary_lines(result)
    assert len(lines) == 2, result
    assert 'Backup to %s done' % (tmp_path / 'disk' / 'latest') in lines[0]
    assert 'Backup to %s:%s done' % (SERVER_ALIAS, tmp_path / 'server' / 'latest') in lines[1]


def test_failing_before_hook_skips_its_job(run_cli, tmp_path):
    """A failing before hook skips the job and runs on-error; the next job runs; the exit code is the worst."""
    contents, source = make_job_source(tmp_path)
    records = tmp_path / 'records'
    records.mkdir()
    config = write_config(tmp_path / 'config.toml', """
        [defaults]
        source = {source}
        on-error = {on_error}

        [jobs.database]
        destination = {first}
        before = ["sh", "-c", "echo dumping; echo 'pg_dump: connection refused' >&2; exit 4"]

        [jobs.home]
        destination = {second}
        before = {before}
    """.format(source=toml_string(source), first=toml_string(tmp_path / 'first' / 'latest'),
               second=toml_string(tmp_path / 'second' / 'latest'),
               on_error=recording_hook(records / 'on-error'), before=recording_hook(records / 'before')))
    result = run_cli('--config=%s' % config, '--disable-notifications')
    assert result.returncode == 1, result
    assert not (tmp_path / 'first').exists()
    assert read_tree(tmp_path / 'second' / 'latest') == contents
    message = ("Aborting due to error: The before hook of job database failed with exit code 4: pg_dump: connection "
               "refused")
    assert read_record(records / 'on-error') == dict(
        RSB_JOB='database', RSB_SOURCE=str(source), RSB_DESTINATION=str(tmp_path / 'first' / 'latest'),
        RSB_SNAPSHOT='', RSB_EXIT_CODE='1', RSB_SUMMARY=message)
    assert read_record(records / 'before') == dict(
        RSB_JOB='home', RSB_SOURCE=str(source), RSB_DESTINATION=str(tmp_path / 'second' / 'latest'),
        RSB_SNAPSHOT='', RSB_EXIT_CODE='', RSB_SUMMARY='')
    assert message in result.stderr
    assert "WARNING Output of the before hook of job database: pg_dump: connection refused" in result.stderr
    assert "WARNING Job database ended with exit code 1." in result.stderr
    assert len(summary_lines(result)) == 1


def test_after_hook_runs_between_snapshot_and_rotation(run_cli, tmp_path):
    """The after hook sees the new snapshot and the snapshot that rotation removes afterwards."""
    _, source = make_job_source(tmp_path)
    backups = tmp_path / 'backups'
    make_snapshots(backups, OLD_SNAPSHOTS)
    record = tmp_path / 'after'
    config = write_one_job(tmp_path / 'config.toml', source, backups / 'latest',
                           after=recording_hook(record, listing=backups))
    result = run_cli('--config=%s' % config, '--disable-notifications')
    assert result.returncode == 0, result
    [new] = [name for name in snapshot_names(backups) if name not in OLD_SNAPSHOTS]
    assert read_listing(record) == sorted(OLD_SNAPSHOTS + [new, 'latest'])
    assert list_names(backups) == [OLD_SNAPSHOTS[0], new, 'latest']
    seen = read_record(record)
    assert seen['RSB_SNAPSHOT'] == str(backups / new) and seen['RSB_EXIT_CODE'] == '0'
    assert seen['RSB_SUMMARY'].startswith('Backup to %s done: ' % (backups / 'latest'))
    assert 'snapshot %s' % new in seen['RSB_SUMMARY']


def test_failing_after_hook_fails_the_job(run_cli, tmp_path):
    """A failing after hook: the snapshot stays, rotation doesn't run, on-error runs, exit code 1."""
    contents, source = make_job_source(tmp_path)
    backups = tmp_path / 'backups'
    make_snapshots(backups, OLD_SNAPSHOTS)
    record = tmp_path / 'on-error'
    config = write_one_job(tmp_path / 'config.toml', source, backups / 'latest',
                           after=toml_string("echo 'rsync to the off-site copy failed'; exit 1"),
                           on_error=recording_hook(record))
    result = run_cli('--config=%s' % config, '--disable-notifications')
    assert result.returncode == 1, result
    [new] = [name for name in snapshot_names(backups) if name not in OLD_SNAPSHOTS]
    assert read_tree(backups / new) == contents
    assert list_names(backups) == sorted(OLD_SNAPSHOTS + [new, 'latest'])
    seen = read_record(record)
    assert seen['RSB_SNAPSHOT'] == str(backups / new) and seen['RSB_EXIT_CODE'] == '1'
    assert seen['RSB_SUMMARY'] == ("Aborting due to error: The after hook of job home failed with exit code 1: rsync "
                                   "to the off-site copy failed")


def test_hanging_hook_is_stopped_after_its_timeout(run_cli, tmp_path):
    """A before hook that hangs is stopped after hook-timeout; the job counts as failed and on-error runs."""
    _, source = make_job_source(tmp_path)
    record = tmp_path / 'on-error'
    config = write_one_job(tmp_path / 'config.toml', source, tmp_path / 'backups' / 'latest',
                           before=toml_string('echo $$ > %s; sleep 600' % (tmp_path / 'pid')), hook_timeout='1.5',
                           on_error=recording_hook(record))
    started = time.monotonic()
    result = run_cli('--config=%s' % config, '--disable-notifications', timeout=60)
    assert time.monotonic() - started < 30
    assert result.returncode == 1, result
    assert ("Aborting due to error: The before hook of job home ran longer than its hook-timeout of 1.5 seconds and "
            "was stopped.") in result.stderr
    assert not os.path.exists('/proc/%s' % (tmp_path / 'pid').read_text().strip())
    assert read_record(record)['RSB_EXIT_CODE'] == '1'
    assert not (tmp_path / 'backups').exists()


def test_dry_run_runs_no_hook(run_cli, tmp_path):
    """--dry-run with --config changes nothing: the hooks only appear in the log."""
    _, source = make_job_source(tmp_path)
    config = write_one_job(tmp_path / 'config.toml', source, tmp_path / 'backups' / 'latest',
                           before=recording_hook(tmp_path / 'hook'), after=recording_hook(tmp_path / 'hook'))
    result = run_cli('--config=%s' % config, '--dry-run')
    assert result.returncode == 0, result
    assert "Would run the before hook of job home: sh -c" in result.stderr
    assert "Would run the after hook of job home: sh -c" in result.stderr
    assert 'Dry run of the backup to %s' % (tmp_path / 'backups' / 'latest') in result.stderr
    assert list_names(tmp_path) == ['config.toml', 'fake-bin', 'source']


def test_read_only_actions_per_job(run_cli, tmp_path):
    """--list and --max-age run for each job's backup set, with the job's table as a title; the worst code wins."""
    _, source = make_job_source(tmp_path)
    config = write_config(tmp_path / 'config.toml', """
        [jobs.fresh]
        source = {source}
        destination = {first}
        rotate = false

        [jobs.stale]
        source = {source}
        destination = {second}
    """.format(source=toml_string(source), first=toml_string(tmp_path / 'first' / 'latest'),
               second=toml_string(tmp_path / 'second' / 'latest')))
    result = run_cli('--config=%s' % config, '--disable-notifications', '--job=fresh')
    assert result.returncode == 0, result
    assert not (tmp_path / 'second').exists()
    listing = run_cli('--config=%s' % config, '--list')
    assert listing.returncode == 1, listing
    assert listing.stdout.startswith('[jobs.fresh]\n')
    assert snapshot_names(tmp_path / 'first')[0] in listing.stdout
    assert listing.stdout.rstrip('\n').endswith('[jobs.stale]')
    assert "Aborting due to error: " in listing.stderr and str(tmp_path / 'second') in listing.stderr
    assert not (tmp_path / 'second').exists()
    one = run_cli('--config=%s' % config, '--list', '--json', '--job=fresh')
    assert one.returncode == 0, one
    assert one.stdout.startswith('{') or one.stdout.startswith('[')
    age = run_cli('--config=%s' % config, '--max-age=1h', '--job=fresh')
    assert age.returncode == 0, age
    assert age.stdout.startswith('[jobs.fresh]\n')


def test_signal_stops_every_job(start_cli, tmp_path):
    """SIGTERM during a job's before hook stops the hook and the run at once: exit code 143, no later job."""
    _, source = make_job_source(tmp_path)
    record = tmp_path / 'on-error'
    config = write_config(tmp_path / 'config.toml', """
        [jobs.first]
        source = {source}
        destination = {first}
        before = "echo $$ > {pid}; sleep 600"
        on-error = {on_error}

        [jobs.second]
        source = {source}
        destination = {second}
    """.format(source=toml_string(source), first=toml_string(tmp_path / 'first' / 'latest'),
               second=toml_string(tmp_path / 'second' / 'latest'), pid=tmp_path / 'pid',
               on_error=recording_hook(record)))
    process = start_cli('--config=%s' % config)
    wait_for(lambda: (tmp_path / 'pid').exists() and (tmp_path / 'pid').read_text().strip(), 30,
             "the before hook to start", process=process)
    hook = (tmp_path / 'pid').read_text().strip()
    os.kill(process.pid, signal.SIGTERM)
    returncode, output = finish(process)
    assert returncode == 128 + signal.SIGTERM, output
    assert 'Aborting: interrupted by SIGTERM.' in output
    assert not os.path.exists('/proc/%s' % hook)
    assert not record.exists() and not (tmp_path / 'first').exists() and not (tmp_path / 'second').exists()


def test_worst_exit_code_wins():
    """The order of exit codes: an error (1) over a busy set (75) over a backup with errors (2) over success (0)."""
    from rsync_system_backup.config.outcomes import worst_exit_code
    assert worst_exit_code([]) == 0
    assert worst_exit_code([0, 2, 0]) == 2
    assert worst_exit_code([2, 75, 0]) == 75
    assert worst_exit_code([75, 1, 2]) == 1
    assert worst_exit_code([1, 143, 75]) == 143


def test_pings_and_metrics_file_of_each_job(run_cli, tmp_path):
    """
    A good job pings /start then success, a failing one /start then /fail with its line; both land in the metrics file.

    A dry run afterwards pings nothing and leaves the metrics file as it was.
    """
    contents, source = make_job_source(tmp_path)
    metrics = tmp_path / 'metrics' / 'rsync-system-backup.prom'
    metrics.parent.mkdir()
    with RecordingServer() as server:
        config = write_config(tmp_path / 'config.toml', """
            [defaults]
            source = {source}
            metrics-file = {metrics}

            [jobs.good]
            destination = {good}
            ping-url = {good_url}

            [jobs.bad]
            destination = {bad}
            ping-url = {bad_url}
            before = ["sh", "-c", "echo 'no database' >&2; exit 3"]
        """.format(source=toml_string(source), metrics=toml_string(metrics),
                   good=toml_string(tmp_path / 'good' / 'latest'), good_url=toml_string(server.url('/ping/good')),
                   bad=toml_string(tmp_path / 'bad' / 'latest'), bad_url=toml_string(server.url('/ping/bad'))))
        started = time.time()
        result = run_cli('--config=%s' % config, '--disable-notifications')
        assert result.returncode == 1, result
        assert read_tree(tmp_path / 'good' / 'latest') == contents
        requests = [(request.method, request.path) for request in server.requests]
        assert requests == [('GET', '/ping/good/start'), ('POST', '/ping/good'),
                            ('GET', '/ping/bad/start'), ('POST', '/ping/bad/fail')]
        [line] = summary_lines(result)
        assert server.requests[1].body.decode() in line
        assert server.requests[3].body.decode() == ("Aborting due to error: The before hook of job bad failed with "
                                                    "exit code 3: no database")
        values = parse_metrics(metrics)
        assert sorted(values) == ['bad', 'good']
        good, bad = values['good'], values['bad']
        assert good['exit_code'] == 0 and started <= good['last_success'] == good['last_run'] <= time.time()
        assert good['snapshots'] == 1 and good['transferred_bytes'] > 0 and good['free_bytes'] > 0
        assert bad['exit_code'] == 1 and bad['last_success'] == 0 and bad['last_run'] >= good['last_run']
        before = metrics.read_text()
        dry = run_cli('--config=%s' % config, '--disable-notifications', '--dry-run', '--job=good')
        assert dry.returncode == 0, dry
        assert len(server.requests) == 4 and metrics.read_text() == before
