"""Tests of ``sources/rerooting.py``: absolute excluded paths moved onto a snapshot of the source, as rsync reads."""

import os
import subprocess

import pytest

from rsync_system_backup.sources.rerooting import move_patterns
from rsync_system_backup.transfer.command import DEFAULT_EXCLUDED_ROOTS

SNAPSHOT = '/srv/.rsync-system-backup.source-snapshots/new.0123'
"""Where the snapshot of the source ``/srv`` (or ``/``) would be."""


def test_root_source_keeps_every_default_exclude():
    """From a snapshot of ``/``, each default excluded path names the same entry inside the snapshot."""
    moved = move_patterns(list(DEFAULT_EXCLUDED_ROOTS), '/', SNAPSHOT)
    assert moved == [SNAPSHOT + pattern for pattern in DEFAULT_EXCLUDED_ROOTS]


def test_patterns_outside_the_source_are_dropped_and_wildcards_match_its_path():
    """A pattern that can't match inside the source goes; one whose wildcards match its path moves."""
    patterns = ['/tmp/', '/home/*/.cache/', '/home/alice/', '/home/[a-c]lice/x', '/home/b\\*b/y']
    assert move_patterns(patterns, '/home/alice', SNAPSHOT) == [SNAPSHOT + '/.cache/', SNAPSHOT + '/x']
    assert move_patterns(patterns, '/home/b*b', SNAPSHOT) == [SNAPSHOT + '/.cache/', SNAPSHOT + '/y']


@pytest.mark.parametrize('pattern', ['/**/cache/', 'home/alice'])
def test_patterns_that_cannot_move(pattern):
    """``**`` in the part that names the source, or a relative path with a slash, can't be moved."""
    assert move_patterns([pattern], '/home/alice', SNAPSHOT) is None


def test_moved_patterns_exclude_the_same_entries(tmp_path):
    """rsync leaves out the same names from a copy of the source at another path with the moved patterns."""
    source, copy = tmp_path / 'we[ird]*' / 'home', tmp_path / 'copy'
    for tree in (source, copy):
        for name in ('keep/a', 'cache/b', 'deep/cache/c', 'star*/d'):
            os.makedirs(str(tree / name))
    patterns = ['%s/cache/' % str(source).replace('[', '\\[').replace('*', '\\*'), 'deep']
    results = []
    for tree, filters in ((source, patterns), (copy, move_patterns(patterns, str(source), str(copy)))):
        listing = subprocess.run(['rsync', '-a', '--list-only'] + ['--filter=-/ %s' % f for f in filters]
                                 + ['%s/' % tree], capture_output=True, text=True, check=True).stdout
        results.append(sorted(line.split()[-1] for line in listing.splitlines()))
    assert results[0] == results[1] and 'cache' not in results[0] and 'keep/a' in results[0]
