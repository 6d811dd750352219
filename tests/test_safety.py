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

from support.cli import command_environment, finish
from support.processes import session_processes, wait_for
from support.stand_ins import real_program, write_script
from support.trees import SNAPSHOT_NAME, list_names, make_bulky_source, snapshot_names, take_manifest

REAL_RSYNC = real_program('rsync')
REAL_CP = real_program('cp')
REAL_RM = real_program('rm')


def make_safety_source(root, files=40, size=64 * 1024):
    """Create a source tree with some bulk (:func:`support.trees.make_bulky_source()`) and an ``etc/hostname``."""
    return make_bulky_source(root, files, size, hostname='safety-test\n')


def assert_snapshots_complete(backups, manifests):
    """Every directory with a snapshot name must equal one of the manifests (complete copies only)."""
    for name in snapshot_names(backups):
        assert take_manifest(backups / name, times='seconds') in manifests, "snapshot %s is incomplete" % name


@pytest.fixture
def setup(tmp_path, run_cli):
    """A source, a backup with one complete snapshot, and the manifests of source and snapshot."""
    source = make_safety_source(tmp_path / 'source')
    backups = tmp_path / 'backups'
    assert run_cli('--disable-notifications', source, backups / 'latest').returncode == 0
    first = take_manifest(source, times='seconds')
    (source / 'etc' / 'hostname').write_text('changed\n')
    (source / 'new-file').write_bytes(os.urandom(2 * 1024 * 1024))
    return source, backups, [first, take_manifest(source, times='seconds')]


@pytest.mark.parametrize('how', ['SIGKILL', 'SIGTERM'])
@pytest.mark.parametrize('phase', ['rsync', 'snapshot', 'rotation'])
def test_kill_leaves_only_complete_snapshots(setup, start_cli, fake_bin, run_cli, tmp_path, phase, how):
    """Killed during rsync, cp or rotation: no partial snapshot, no leftovers after the next run, which succeeds."""
    source, backups, manifests = setup
    started = tmp_path / 'started'
    if phase == 'rsync':
        write_script(fake_bin / 'rsync', 'touch %s\nexec %s --bwlimit=256 "$@"\n' % (started, REAL_RSYNC))
    elif phase == 'snapshot':
        # A copy that gets halfway: part of the tree, then a long pause (cp runs with --target-directory=
        # during the transfer, making the snapshot's copy beside the dry run, see snapshots/early_copy.py).
        write_script(fake_bin / 'cp', 'for a do case "$a" in --target-directory=*) t=${a#*=};; esac; done\n'
                                      'mkdir -p "$t/etc"; touch "$t/etc/partial" %s; sleep 60\n' % started)
    else:
        # Old snapshots to rotate away, and a removal that gets halfway.
        for name in ('2001-01-01_00-00-00', '2001-01-01_00-30-00'):
            subprocess.check_call([REAL_CP, '-al', str(backups / 'latest'), str(backups / name)])
        write_script(fake_bin / 'rm', 'for p do case "$p" in -*) ;; *) %s -rf "$p/etc";; esac; done\n'
                                      'touch %s; sleep 60\n' % (REAL_RM, started))
        manifests.append(take_manifest(backups / '2001-01-01_00-00-00', times='seconds'))
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
        assert session_processes(process.pid) == [], "a child process outlived the run"
        assert not [n for n in os.listdir(str(backups)) if n.endswith('.incomplete')], "temporary snapshot left"
    assert_snapshots_complete(backups, manifests)
    for name in ('rsync', 'cp', 'rm'):
        if (fake_bin / name).exists():
            (fake_bin / name).unlink()
    result = run_cli('--disable-notifications', source, backups / 'latest')
    assert result.returncode == 0, result
    assert [n for n in os.listdir(str(backups)) if n.endswith(('.incomplete', '.removing'))] == []
    assert_snapshots_complete(backups, manifests)
    assert take_manifest(backups / snapshot_names(backups)[-1], times='seconds') == manifests[1]


@pytest.mark.parametrize('signal_number, exit_code', [
    (signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129),
])
def test_signals_exit_codes(setup, start_cli, fake_bin, tmp_path, signal_number, exit_code):
    """SIGINT, SIGTERM and SIGHUP stop rsync, leave no process behind and exit with 128 + the signal."""
    source, backups, manifests = setup
    started = tmp_path / 'started'
    write_script(fake_bin / 'rsync', 'touch %s\nexec %s --bwlimit=128 "$@"\n' % (started, REAL_RSYNC))
    process = start_cli(source, backups / 'latest')
    wait_for(started.exists, message="rsync")
    time.sleep(0.3)
    process.send_signal(signal_number)
    code, output = finish(process)
    assert code == exit_code, output
    assert 'earlier snapshots are intact' in output
    assert session_processes(process.pid) == []
    assert len(snapshot_names(backups)) == 1
    assert_snapshots_complete(backups, manifests)


def test_one_run_at_a_time(tmp_path, start_cli, fake_bin):
    """Two runs started together: exactly one runs rsync; the other exits 75 naming the running one's pid."""
    source = make_safety_source(tmp_path / 'source', files=10)
    backups = tmp_path / 'backups'
    rsync_log = tmp_path / 'rsync.log'
    write_script(fake_bin / 'rsync', 'echo $$ >> %s\nsleep 1\nexec %s "$@"\n' % (rsync_log, REAL_RSYNC))
    first = start_cli(source, backups / 'latest')
    second = start_cli(source, backups / 'latest')
    (code1, out1), (code2, out2) = finish(first), finish(second)
    assert sorted([code1, code2]) == [0, 75], (out1, out2)
    loser_output, winner = (out2, first) if code2 == 75 else (out1, second)
    assert 'holds the lock (pid %i on ' % winner.pid in loser_output
    assert len(rsync_log.read_text().split()) == 1
    assert len(snapshot_names(backups)) == 1


def test_wait_for_lock(tmp_path, start_cli, fake_bin):
    """With --wait the second run waits for the first and then runs."""
    source = make_safety_source(tmp_path / 'source', files=5)
    backups = tmp_path / 'backups'
    started = tmp_path / 'started'
    write_script(fake_bin / 'rsync', 'touch %s\nsleep 1\nexec %s "$@"\n' % (started, REAL_RSYNC))
    first = start_cli(source, backups / 'latest')
    wait_for(started.exists, message="the first rsync")
    # -v: without a terminal, informational messages such as the waiting need it.
    second = start_cli('-v', '--wait', source, backups / 'latest')
    code1, out1 = finish(first)
    code2, out2 = finish(second)
    assert (code1, code2) == (0, 0), (out1, out2)
    assert 'Waiting for the other backup run' in out2
    assert len(snapshot_names(backups)) == 2


def test_lock_released_by_crash(tmp_path, start_cli, fake_bin, run_cli):
    """A run killed with SIGKILL leaves no stale lock: the next run goes ahead at once."""
    source = make_safety_source(tmp_path / 'source', files=5)
    backups = tmp_path / 'backups'
    started = tmp_path / 'started'
    write_script(fake_bin / 'rsync', 'touch %s\nsleep 60\n' % started)
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
    before = take_manifest(tmp_path / 'home', times='seconds')
    result = run_cli('--disable-notifications', empty_source, documents)
    assert result.returncode == 1, result
    assert 'already holds files but was never a backup target' in result.output
    assert '--accept-existing' in result.output
    assert take_manifest(tmp_path / 'home', times='seconds') == before
    assert sorted(os.listdir(str(tmp_path / 'home'))) == ['documents']


def test_accept_existing(tmp_path, run_cli):
    """--accept-existing lets the first backup replace an existing directory, which is then marked."""
    source = make_safety_source(tmp_path / 'source', files=2)
    latest = tmp_path / 'backups' / 'latest'
    latest.mkdir(parents=True)
    (latest / 'old-file').write_text('x')
    result = run_cli('--disable-notifications', '--accept-existing', source, latest)
    assert result.returncode == 0, result
    assert take_manifest(latest, times='seconds') == take_manifest(source, times='seconds')
    assert (tmp_path / 'backups' / '.rsync-system-backup').exists()
    (latest / 'old-file').write_text('x')
    again = run_cli('--disable-notifications', source, latest)
    assert again.returncode == 0, again


def test_legacy_backup_set_is_adopted(tmp_path, run_cli):
    """A backup set made by version 1.1 (latest plus 'YYYY-MM-DD HH:MM:SS' snapshots) is accepted as a target."""
    source = make_safety_source(tmp_path / 'source', files=2)
    backups = tmp_path / 'backups'
    (backups / 'latest').mkdir(parents=True)
    (backups / 'latest' / 'old-file').write_text('x')
    (backups / '2020-01-01 00:00:00').mkdir()
    result = run_cli('-v', '--disable-notifications', source, backups / 'latest')
    assert result.returncode == 0, result
    assert 'holds snapshots of rsync-system-backup 1.1' in result.output
    assert '2020-01-01 00:00:00' in list_names(backups)


@pytest.mark.parametrize('extra', [[], ['--multi-fs']])
def test_destination_inside_source_is_excluded(tmp_path, run_cli, extra):
    """A backup stored inside its own source never copies itself."""
    source = make_safety_source(tmp_path / 'source', files=2)
    backups = source / 'var' / 'backups'
    for _ in range(2):
        result = run_cli('--disable-notifications', *(extra + [source, backups / 'latest']))
        assert result.returncode == 0, result
    assert not (backups / 'latest' / 'var' / 'backups').exists()
    assert (backups / 'latest' / 'etc' / 'hostname').exists()
    for name in snapshot_names(backups):
        assert not (backups / name / 'var' / 'backups').exists()


def test_destination_next_to_source_contents(tmp_path, run_cli):
    """latest and its snapshots directly inside the source are left out of the transfer too."""
    source = make_safety_source(tmp_path / 'source', files=2)
    for _ in range(2):
        result = run_cli('--disable-notifications', source, source / 'latest')
        assert result.returncode == 0, result
    assert sorted(os.listdir(str(source / 'latest'))) == sorted(
        n for n in os.listdir(str(source)) if n != 'latest' and not SNAPSHOT_NAME.match(n)
        and not n.startswith('.rsync-system-backup'))


@pytest.mark.parametrize('make_arguments, message', [
    (lambda t: [t / 'source', t / 'source'], 'is the source itself'),
    (lambda t: [t / 'source', '/'], 'The destination is the root directory'),
    (lambda t: [t / 'source' / 'sub', t / 'source'], 'is inside the destination'),
    (lambda t: [t / 'source' / 'file-000', t / 'b' / 'latest'], 'is not a directory'),
])
def test_bad_paths(tmp_path, run_cli, make_arguments, message):
    """Bad SOURCE/DESTINATION combinations get a one-line error before anything is written."""
    make_safety_source(tmp_path / 'source', files=1)
    (tmp_path / 'source' / 'sub').mkdir()
    before = take_manifest(tmp_path, times='seconds')
    result = run_cli('--disable-notifications', *make_arguments(tmp_path))
    assert result.returncode == 1, result
    assert message in result.output
    assert 'Traceback' not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert take_manifest(tmp_path, times='seconds') == before


def test_full_destination(tmp_path):
    """A destination that fills up mid-transfer: 'destination full' with the free space, no new snapshot."""
    source = make_safety_source(tmp_path / 'source', files=4, size=16 * 1024)
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
    manifest = take_manifest(source, times='seconds')
    environment = command_environment()
    subprocess.check_call(['unshare', '--mount', '--propagation', 'private', 'sh', '-c', script, 'full-disk',
                           str(source), str(backups), str(result), sys.executable], env=environment)
    assert (result / 'first.rc').read_text().strip() == '0', (result / 'first.log').read_text()
    assert (result / 'second.rc').read_text().strip() == '1'
    output = (result / 'second.log').read_text()
    assert 'The destination is full (' in output, output
    assert re.search(r'\d+(\.\d+)? (bytes|KB|MB) free', output), output
    assert 'no snapshot was made and the earlier snapshots are intact' in output
    snapshots = snapshot_names(result / 'backups')
    assert len(snapshots) == 1
    assert take_manifest(result / 'backups' / snapshots[0], times='seconds') == manifest
    assert list_names(backups) == [], "the tmpfs must have been private to the namespace"
