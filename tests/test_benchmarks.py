"""
Tests of the benchmarks in ``benchmarks/``: the tree generator, and the whole script at a tiny size.

The script is run end to end (one round of 200 files, with ``--compare``
pointing at this build's own command and, when this runs as root with sshd
installed, over SSH too), so a change in the program or the test servers
that breaks it shows up here rather than when someone next measures.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""The top directory of the project."""

BENCHMARKS_DIRECTORY = os.path.join(REPOSITORY, 'benchmarks')
"""The directory holding the benchmarks."""

sys.path.insert(0, BENCHMARKS_DIRECTORY)

from tree import TreePlan  # noqa: E402

from support.trees import take_manifest  # noqa: E402

LOCAL_CASES = ('full', 'incremental', 'incremental-manifests', 'snapshot', 'rotation', 'help')
"""The cases that are always measured."""

SSH_CASES = ('ssh-full', 'ssh-incremental', 'ssh-incremental-manifests', 'ssh-snapshot', 'ssh-rotation')
"""The cases measured over SSH."""


def can_run_sshd():
    """:data:`True` when the SSH cases can run here (as root, with sshd and unshare)."""
    search_path = os.pathsep.join([os.environ.get('PATH', os.defpath), '/usr/sbin', '/sbin'])
    return os.geteuid() == 0 and all(shutil.which(name, path=search_path) for name in ('sshd', 'unshare'))


def test_tree_is_deterministic(tmp_path):
    """The same size and seed give the same tree, with hard links, symbolic links and awkward names."""
    plan = TreePlan(300, seed=7)
    plan.create(str(tmp_path / 'a'))
    TreePlan(300, seed=7).create(str(tmp_path / 'b'))
    assert take_manifest(tmp_path / 'a', times=None) == take_manifest(tmp_path / 'b', times=None)
    statistics = plan.statistics
    assert statistics.files + statistics.hard_links + statistics.symbolic_links == 300
    assert statistics.hard_links > 0 and statistics.symbolic_links > 0 and statistics.odd_names > 0
    assert any(b'\n' in path for path in take_manifest(tmp_path / 'a', times=None))


def test_mutation_changes_about_one_percent(tmp_path):
    """Each round of mutation changes about 1% of the entries, and the same rounds give the same tree."""
    for name in ('a', 'b'):
        plan = TreePlan(1000, seed=3)
        plan.create(str(tmp_path / name))
    before = take_manifest(tmp_path / 'a', times=None)
    for round_number in (1, 2):
        changed = plan.mutate(str(tmp_path / 'a'), round_number)
        assert 5 <= changed <= 20
    after = take_manifest(tmp_path / 'a', times=None)
    differences = [path for path in set(before) | set(after) if before.get(path) != after.get(path)]
    assert 10 <= len(differences) <= 40
    for round_number in (1, 2):
        TreePlan(1000, seed=3).mutate(str(tmp_path / 'b'), round_number)
    assert take_manifest(tmp_path / 'b', times=None) == after


@pytest.mark.slow
def test_benchmark_script(tmp_path):
    """The benchmark runs at a tiny size, exits 0, prints its table and writes JSON with every case."""
    program = shutil.which('rsync-system-backup', path=os.path.dirname(sys.executable))
    assert program, "rsync-system-backup is not installed next to %s" % sys.executable
    report = tmp_path / 'results.json'
    command = [sys.executable, os.path.join(BENCHMARKS_DIRECTORY, 'run.py'), '--files', '200', '--rounds', '1',
               '--work-dir', str(tmp_path), '--compare', program, '--json', str(report)]
    with_ssh = can_run_sshd()
    if not with_ssh:
        command.append('--skip-ssh')
    process = subprocess.run(command, cwd=REPOSITORY, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, timeout=600)
    assert process.returncode == 0, process.stderr.decode('utf-8', 'replace')
    assert 'x floor' in process.stdout.decode()
    results = json.loads(report.read_text())
    assert set(results) == {'settings', 'tree', 'programs', 'cases', 'peak_rss_kib'}
    assert results['settings']['files'] == 200 and results['settings']['rounds'] == 1
    assert set(results['programs']) == {'this', 'compare'}
    expected_cases = LOCAL_CASES + (SSH_CASES if with_ssh else ())
    assert set(results['cases']) == set(expected_cases)
    for name in expected_cases:
        outcome = results['cases'][name]['results']
        assert set(outcome) == {'floor', 'this', 'compare'}
        assert outcome['floor']['median_seconds'] > 0
        assert outcome['this']['median_ratio'] > 0
        assert len(outcome['this']['seconds']) == 1
        if name.startswith('ssh-'):
            assert outcome['this']['ssh_connections'][0] >= 1
    assert results['peak_rss_kib']['this'] > 0
    assert os.listdir(str(tmp_path)) == ['results.json'], "the work directory was left behind"


def test_timeline(tmp_path):
    """The timeline runs a backup and lists its commands (rsync among them) with their times, then the total."""
    source = tmp_path / 'source'
    TreePlan(files=50, seed=3).create(str(source))
    full = tmp_path / 'commands.txt'
    process = subprocess.run([sys.executable, os.path.join(BENCHMARKS_DIRECTORY, 'timeline.py'), '--full', str(full),
                              '--disable-notifications', str(source), str(tmp_path / 'backups' / 'latest')],
                             cwd=REPOSITORY, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             timeout=120)
    assert process.returncode == 0, process.stderr.decode('utf-8', 'replace')
    table = process.stderr.decode().splitlines()
    rows = [line.split(None, 3) for line in table[table.index('   start      end       ms  command') + 1:-1]]
    assert any(row[3].startswith('rsync ') for row in rows), table
    assert all(float(start) <= float(end) for start, end, _, _ in rows)
    assert table[-1].startswith('total ')
    assert len(full.read_text().splitlines()) == len(rows)
    assert os.listdir(str(tmp_path / 'backups' / 'latest')) == os.listdir(str(source))


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which('unshare'), reason="needs root and unshare (loop mounts)")
def test_source_snapshots_benchmark(tmp_path):
    """The benchmark of btrfs and ext4 sources runs at a tiny size: its table and JSON, every loop device gone."""
    report = tmp_path / 'results.json'
    process = subprocess.run([sys.executable, os.path.join(BENCHMARKS_DIRECTORY, 'source_snapshots.py'),
                              '--files', '300', '--rounds', '2', '--work-dir', str(tmp_path), '--json', str(report)],
                             cwd=REPOSITORY, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             timeout=600)
    assert process.returncode == 0, process.stderr.decode('utf-8', 'replace')
    table = process.stdout.decode()
    pairs = ['btrfs -> btrfs', 'btrfs -> ext4', 'ext4 -> btrfs', 'ext4 -> ext4']
    assert all(pair in table for pair in pairs), table
    results = json.loads(report.read_text())['results']
    assert all(len(times['tool']) == 2 and times['floor'][0] > 0 and times['rss'][0] > 0
               for times in results.values())
    assert os.listdir(str(tmp_path)) == ['results.json'], "the work directory was left behind"
