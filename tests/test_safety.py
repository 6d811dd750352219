"""
Tests of the safety guarantees: atomic snapshots, locking, interrupts, wrong-way-round protection.

These tests start the real command, kill it at chosen moments with real
signals and then check every snapshot on disk against a manifest of the
source taken before the run.
"""

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from support.trees import describe_tree, list_names

SNAPSHOT_NAME = re.compile(r'^\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}$')

REAL_RSYNC = subprocess.check_output(['sh', '-c', 'command -v rsync']).decode().strip()
REAL_CP = subprocess.check_output(['sh', '-c', 'command -v cp']).decode().strip()
REAL_RM = subprocess.check_output(['sh', '-c', 'command -v rm']).decode().strip()


def write_script(directory, name, body):
    """Write an executable shell script (a stand-in for a system program)."""
    path = directory / name
    path.write_text('#!/bin/sh\n' + body)
    path.chmod(0o755)
    return path


def make_source(root, files=40, size=64 * 1024):
    """Create a source tree with some bulk, so that a slowed rsync takes a while."""
    (root / 'etc').mkdir(parents=True)
    (root / 'etc' / 'hostname').write_text('safety-test\n')
    for i in range(files):
        (root / ('file-%03i' % i)).write_bytes(os.urandom(size))
    return root


def wait_for(condition, timeout=30, message="condition"):
    """Poll until a condition holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("Timed out waiting for %s" % message)
        time.sleep(0.02)


def snapshots_in(directory):
    """The names of the complete snapshots in a directory."""
    return [name for name in list_names(directory) if SNAPSHOT_NAME.match(name)]


def assert_snapshots_complete(backups, manifests):
    """Every directory with a snapshot name must equal one of the manifests (complete copies only)."""
    for name in snapshots_in(backups):
        assert describe_tree(backups / name) in manifests, "snapshot %s is incomplete" % name


@pytest.fixture
def start_cli(fake_bin):
    """Start the command as a background process in its own session; returns (start, processes)."""
    processes = []

    def start(*arguments, env=None):
        environment = dict(os.environ)
        environment.pop('RSYNC_MODULE_PATH', None)
        environment['COLOREDLOGS_SYSLOG'] = 'false'
        environment['PATH'] = '%s:%s' % (fake_bin, environment['PATH'])
        environment.update(env or {})
        process = subprocess.Popen([sys.executable, '-m', 'rsync_system_backup', '--disable-notifications']
                                   + [str(a) for a in arguments],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   env=environment, start_new_session=True)
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        process.stdout.close()


def finish(process, timeout=60):
    """Wait for a started command and return (exit code, output)."""
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output.decode('utf-8', 'replace')


def session_processes(process):
    """The processes still alive in a started command's session (zombies excluded)."""
    alive = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open('/proc/%s/stat' % entry) as handle:
                    fields = handle.read().rsplit(')', 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == process.pid and fields[0] != 'Z':
                alive.append(int(entry))
    return alive


@pytest.fixture
def setup(tmp_path, run_cli):
    """A source, a backup with one complete snapshot, and the manifests of source and snapshot."""
    source = make_source(tmp_path / 'source')
    backups = tmp_path / 'backups'
    assert run_cli('--disable-notifications', source, backups / 'latest').returncode == 0
    first = describe_tree(source)
    (source / 'etc' / 'hostname').write_text('changed\n')
    (source / 'new-file').write_bytes(os.urandom(2 * 1024 * 1024))
    return source, backups, [first, describe_tree(source)]


@pytest.mark.parametrize('how', ['SIGKILL', 'SIGTERM'])
@pytest.mark.parametrize('phase', ['rsync', 'snapshot', 'rotation'])
def test_kill_leaves_only_complete_snapshots(setup, start_cli, fake_bin, run_cli, tmp_path, phase, how):
    """Killed during rsync, cp or rotation: no partial snapshot, no leftovers after the next run, which succeeds."""
    source, backups, manifests = setup
    started = tmp_path / 'started'
    if phase == 'rsync':
        write_script(fake_bin, 'rsync', 'touch %s\nexec %s --bwlimit=256 "$@"\n' % (started, REAL_RSYNC))
    elif phase == 'snapshot':
        # A copy that gets halfway: part of the tree, then a long pause.
        write_script(fake_bin, 'cp', 'mkdir -p "$3/etc"; touch "$3/etc/partial" %s; sleep 60\n' % started)
    else:
        # Old snapshots to rotate away, and a removal that gets halfway.
        for name in ('2001-01-01_00-00-00', '2001-01-01_00-30-00'):
            subprocess.check_call([REAL_CP, '-al', str(backups / 'latest'), str(backups / name)])
        write_script(fake_bin, 'rm', 'for p do case "$p" in -*) ;; *) %s -rf "$p/etc";; esac; done\n'
                                     'touch %s; sleep 60\n' % (REAL_RM, started))
        manifests.append(describe_tree(backups / '2001-01-01_00-00-00'))
    process = start_cli(source, backups / 'latest')
    wait_for(started.exists, message="the %s phase" % phase)
    time.sleep(0.3)
    if how == 'SIGKILL':
        # A crash: the whole process tree dies at once.
        os.killpg(process.pid, signal.SIGKILL)
        code, output = finish(process)
        assert code == -signal.SIGKILL
    else:
        process.send_signal(signal.SIGTERM)
        code, output = finish(process)
        assert code == 143, output
        assert 'interrupted by SIGTERM' in output
        assert session_processes(process) == [], "a child process outlived the run"
        assert not [n for n in os.listdir(str(backups)) if n.endswith('.incomplete')], "temporary snapshot left"
    assert_snapshots_complete(backups, manifests)
    for name in ('rsync', 'cp', 'rm'):
        if (fake_bin / name).exists():
            (fake_bin / name).unlink()
    result = run_cli('--disable-notifications', source, backups / 'latest')
    assert result.returncode == 0, result
    assert [n for n in os.listdir(str(backups)) if n.endswith(('.incomplete', '.removing'))] == []
    assert_snapshots_complete(backups, manifests)
    assert describe_tree(backups / snapshots_in(backups)[-1]) == manifests[1]


@pytest.mark.parametrize('signal_number, exit_code', [
    (signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129),
])
def test_signals_exit_codes(setup, start_cli, fake_bin, tmp_path, signal_number, exit_code):
    """SIGINT, SIGTERM and SIGHUP stop rsync, leave no process behind and exit with 128 + the signal."""
    source, backups, manifests = setup
    started = tmp_path / 'started'
    write_script(fake_bin, 'rsync', 'touch %s\nexec %s --bwlimit=128 "$@"\n' % (started, REAL_RSYNC))
    process = start_cli(source, backups / 'latest')
    wait_for(started.exists, message="rsync")
    time.sleep(0.3)
    process.send_signal(signal_number)
    code, output = finish(process)
    assert code == exit_code, output
    assert 'earlier snapshots are intact' in output
    assert session_processes(process) == []
    assert len(snapshots_in(backups)) == 1
    assert_snapshots_complete(backups, manifests)


def test_one_run_at_a_time(tmp_path, start_cli, fake_bin):
    """Two runs started together: exactly one runs rsync; the other exits 75 naming the running one's pid."""
    source = make_source(tmp_path / 'source', files=10)
    backups = tmp_path / 'backups'
    rsync_log = tmp_path / 'rsync.log'
    write_script(fake_bin, 'rsync', 'echo $$ >> %s\nsleep 1\nexec %s "$@"\n' % (rsync_log, REAL_RSYNC))
    first = start_cli(source, backups / 'latest')
    second = start_cli(source, backups / 'latest')
    (code1, out1), (code2, out2) = finish(first), finish(second)
    assert sorted([code1, code2]) == [0, 75], (out1, out2)
    loser_output, winner = (out2, first) if code2 == 75 else (out1, second)
    assert 'holds the lock (pid %i on ' % winner.pid in loser_output
    assert len(rsync_log.read_text().split()) == 1
    assert len(snapshots_in(backups)) == 1


def test_wait_for_lock(tmp_path, start_cli, fake_bin):
    """With --wait the second run waits for the first and then runs."""
    source = make_source(tmp_path / 'source', files=5)
    backups = tmp_path / 'backups'
    started = tmp_path / 'started'
    write_script(fake_bin, 'rsync', 'touch %s\nsleep 1\nexec %s "$@"\n' % (started, REAL_RSYNC))
    first = start_cli(source, backups / 'latest')
    wait_for(started.exists, message="the first rsync")
    second = start_cli('--wait', source, backups / 'latest')
    code1, out1 = finish(first)
    code2, out2 = finish(second)
    assert (code1, code2) == (0, 0), (out1, out2)
    assert 'Waiting for the other backup run' in out2
    assert len(snapshots_in(backups)) == 2


def test_lock_released_by_crash(tmp_path, start_cli, fake_bin, run_cli):
    """A run killed with SIGKILL leaves no stale lock: the next run goes ahead at once."""
    source = make_source(tmp_path / 'source', files=5)
    backups = tmp_path / 'backups'
    started = tmp_path / 'started'
    write_script(fake_bin, 'rsync', 'touch %s\nsleep 60\n' % started)
    process = start_cli(source, backups / 'latest')
    wait_for(started.exists, message="rsync")
    os.killpg(process.pid, signal.SIGKILL)
    finish(process)
    (fake_bin / 'rsync').unlink()
    result = run_cli('--disable-notifications', source, backups / 'latest')
    assert result.returncode == 0, result


def test_swapped_arguments_are_refused(tmp_path, run_cli):
    """A first backup into a directory full of the user's files is refused and nothing is touched."""
    documents = tmp_path / 'home' / 'documents'
    documents.mkdir(parents=True)
    (documents / 'thesis.txt').write_text('years of work')
    empty_source = tmp_path / 'backups' / 'latest'
    empty_source.mkdir(parents=True)
    before = describe_tree(tmp_path / 'home')
    result = run_cli('--disable-notifications', empty_source, documents)
    assert result.returncode == 1, result
    assert 'already holds files but was never a backup target' in result.output
    assert '--accept-existing' in result.output
    assert describe_tree(tmp_path / 'home') == before
    assert sorted(os.listdir(str(tmp_path / 'home'))) == ['documents']


def test_accept_existing(tmp_path, run_cli):
    """--accept-existing lets the first backup replace an existing directory, which is then marked."""
    source = make_source(tmp_path / 'source', files=2)
    latest = tmp_path / 'backups' / 'latest'
    latest.mkdir(parents=True)
    (latest / 'old-file').write_text('x')
    result = run_cli('--disable-notifications', '--accept-existing', source, latest)
    assert result.returncode == 0, result
    assert describe_tree(latest) == describe_tree(source)
    assert (tmp_path / 'backups' / '.rsync-system-backup').exists()
    (latest / 'old-file').write_text('x')
    again = run_cli('--disable-notifications', source, latest)
    assert again.returncode == 0, again


def test_legacy_backup_set_is_adopted(tmp_path, run_cli):
    """A backup set made by version 1.1 (latest plus 'YYYY-MM-DD HH:MM:SS' snapshots) is accepted as a target."""
    source = make_source(tmp_path / 'source', files=2)
    backups = tmp_path / 'backups'
    (backups / 'latest').mkdir(parents=True)
    (backups / 'latest' / 'old-file').write_text('x')
    (backups / '2020-01-01 00:00:00').mkdir()
    result = run_cli('--disable-notifications', source, backups / 'latest')
    assert result.returncode == 0, result
    assert 'holds snapshots of rsync-system-backup 1.1' in result.output
    assert '2020-01-01 00:00:00' in list_names(backups)


@pytest.mark.parametrize('extra', [[], ['--multi-fs']])
def test_destination_inside_source_is_excluded(tmp_path, run_cli, extra):
    """A backup stored inside its own source never copies itself."""
    source = make_source(tmp_path / 'source', files=2)
    backups = source / 'var' / 'backups'
    for _ in range(2):
        result = run_cli('--disable-notifications', *(extra + [source, backups / 'latest']))
        assert result.returncode == 0, result
    assert not (backups / 'latest' / 'var' / 'backups').exists()
    assert (backups / 'latest' / 'etc' / 'hostname').exists()
    for name in snapshots_in(backups):
        assert not (backups / name / 'var' / 'backups').exists()


def test_destination_next_to_source_contents(tmp_path, run_cli):
    """latest and its snapshots directly inside the source are left out of the transfer too."""
    source = make_source(tmp_path / 'source', files=2)
    for _ in range(2):
        result = run_cli('--disable-notifications', source, source / 'latest')
        assert result.returncode == 0, result
    assert sorted(os.listdir(str(source / 'latest'))) == sorted(
        n for n in os.listdir(str(source)) if n != 'latest' and not SNAPSHOT_NAME.match(n)
        and not n.startswith('.rsync-system-backup'))


@pytest.mark.parametrize('make_arguments, message', [
    (lambda t: ['relative/source', t / 'b' / 'latest'], "The source 'relative/source' is a relative path"),
    (lambda t: [t / 'source', 'relative/latest'], "The destination 'relative/latest' is a relative path"),
    (lambda t: [t / 'source', t / 'source'], 'is the source itself'),
    (lambda t: [t / 'source', '/'], 'The destination is the root directory'),
    (lambda t: [t / 'source' / 'sub', t / 'source'], 'is inside the destination'),
    (lambda t: [t / 'source' / 'file-000', t / 'b' / 'latest'], 'is not a directory'),
])
def test_bad_paths(tmp_path, run_cli, make_arguments, message):
    """Bad SOURCE/DESTINATION combinations get a one-line error before anything is written."""
    make_source(tmp_path / 'source', files=1)
    (tmp_path / 'source' / 'sub').mkdir()
    before = describe_tree(tmp_path)
    result = run_cli('--disable-notifications', *make_arguments(tmp_path))
    assert result.returncode == 1, result
    assert message in result.output
    assert 'Traceback' not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert describe_tree(tmp_path) == before


def test_full_destination(tmp_path):
    """A destination that fills up mid-transfer: 'destination full' with the free space, no new snapshot."""
    source = make_source(tmp_path / 'source', files=4, size=16 * 1024)
    backups = tmp_path / 'backups'
    backups.mkdir()
    result = tmp_path / 'result'
    script = '''
        mount -t tmpfs -o size=2m tmpfs "$2" || exit 90
        "$4" -m rsync_system_backup --disable-notifications "$1" "$2/latest" > "$3/first.log" 2>&1
        echo $? > "$3/first.rc"
        head -c 3145728 /dev/urandom > "$1/big-file"
        "$4" -m rsync_system_backup --disable-notifications "$1" "$2/latest" > "$3/second.log" 2>&1
        echo $? > "$3/second.rc"
        cp -a "$2" "$3/backups"
    '''
    result.mkdir()
    manifest = describe_tree(source)
    environment = dict(os.environ, COLOREDLOGS_SYSLOG='false')
    subprocess.check_call(['unshare', '--mount', '--propagation', 'private', 'sh', '-c', script, 'full-disk',
                           str(source), str(backups), str(result), sys.executable], env=environment)
    assert (result / 'first.rc').read_text().strip() == '0', (result / 'first.log').read_text()
    assert (result / 'second.rc').read_text().strip() == '1'
    output = (result / 'second.log').read_text()
    assert 'The destination is full (' in output, output
    assert re.search(r'\d+(\.\d+)? (bytes|KB|MB) free', output), output
    assert 'no snapshot was made and the earlier snapshots are intact' in output
    snapshots = snapshots_in(result / 'backups')
    assert len(snapshots) == 1
    assert describe_tree(result / 'backups' / snapshots[0]) == manifest
    assert list_names(backups) == [], "the tmpfs must have been private to the namespace"
