"""Tests of the link-limit programs (``agent/link_limit.py``) on the test's own filesystem, with a small limit."""

import os

from executor.contexts import LocalContext

from rsync_system_backup.agent import link_limit
from rsync_system_backup.agent.shipping import run_program
from rsync_system_backup.snapshots.hard_links import PROGRAM_MODULES
from support.trees import take_manifest, write_file

ODD = b'odd \xff name'
"""A name that isn't UTF-8."""


def inode(path):
    """Give the inode number of a path (bytes or a path, without following a symbolic link)."""
    return os.lstat(path if isinstance(path, bytes) else str(path)).st_ino


def test_relief_copies_files_near_the_limit(tmp_path):
    """A file whose links could pass the limit gets a fresh copy for all its names; its directories keep their times."""
    latest, elsewhere = tmp_path / 'latest', tmp_path / 'elsewhere'
    top = os.fsencode(str(latest))
    write_file(latest / 'dir' / 'crowded', b'many links', mtime=1500000000)
    for name in (b'dir/second', ODD):
        os.link(top + b'/dir/crowded', top + b'/' + name)
    write_file(latest / 'many' / 'file', b'too many names to relieve')
    for number in range(3):
        os.link(str(latest / 'many' / 'file'), str(latest / 'many' / ('name-%i' % number)))
    elsewhere.mkdir()
    for number in range(3):
        os.link(str(latest / 'dir' / 'crowded'), str(elsewhere / ('snapshot-%i' % number)))
    os.utime(str(latest / 'dir'), (1500000000, 1500000000))
    before = take_manifest(latest)
    old = inode(latest / 'dir' / 'crowded'), inode(latest / 'many' / 'file')
    # 6 links and 3 names in latest: 6 + 2 * 3 > 11, and 3 * 3 <= 11; the other file has 4 names: 4 * 3 > 11.
    assert link_limit.relieve(top, 11, b'.private.') == [b'dir/crowded']
    assert inode(latest / 'dir' / 'crowded') != old[0]
    assert inode(latest / 'dir' / 'crowded') == inode(latest / 'dir' / 'second') == inode(top + b'/' + ODD)
    assert os.lstat(str(latest / 'dir' / 'crowded')).st_nlink == 3
    assert inode(elsewhere / 'snapshot-0') == old[0]
    assert inode(latest / 'many' / 'file') == old[1]
    after = take_manifest(latest)
    assert after == before
    assert not [name for name in os.listdir(str(tmp_path)) if name.startswith('.private.')]


def test_snapshot_copies_what_cannot_be_linked(tmp_path):
    """At the limit, a file is copied once into the snapshot, all its names there linked to the copy."""
    latest, snapshot = tmp_path / 'latest', tmp_path / 'snapshot'
    top = os.fsencode(str(latest))
    write_file(latest / 'a' / 'crowded', b'crowded', mode=0o640, mtime=1500000000)
    for name in (b'a/second', b'third', ODD):
        os.link(top + b'/a/crowded', top + b'/' + name)
    write_file(latest / 'a' / 'b' / 'plain', b'plain', mtime=1500000000)
    os.symlink('a/crowded', str(latest / 'link'))
    os.mkfifo(str(latest / 'fifo'))
    os.setxattr(str(latest / 'a'), 'user.note', b'directory attribute')
    os.chmod(str(latest / 'a'), 0o750)
    os.utime(str(latest / 'a'), (1500000000, 1500000000))
    # 4 links and 4 names: 4 + 4 > 6, so the crowded file is copied; everything else is linked.
    assert link_limit.link_or_copy(top, os.fsencode(str(snapshot)), 6) == [b'a/crowded']
    assert take_manifest(snapshot) == take_manifest(latest)
    copied = inode(snapshot / 'a' / 'crowded')
    assert copied != inode(latest / 'a' / 'crowded')
    assert copied == inode(snapshot / 'a' / 'second') == inode(snapshot / 'third') == \
        inode(os.fsencode(str(snapshot)) + b'/' + ODD)
    for name in ('a/b/plain', 'link', 'fifo'):
        assert inode(snapshot / name) == inode(latest / name), name


def test_program_answers_through_its_pipes(tmp_path):
    """Run as a program (as on another system), each verb answers with the names it copied."""
    latest = tmp_path / 'latest'
    write_file(latest / 'crowded', b'crowded')
    for number in range(3):
        os.link(str(latest / 'crowded'), str(latest / ('name-%i' % number)))

    def program(*arguments):
        # An I/O scheduling class makes it a command of its own, as on another system.
        return run_program(LocalContext(), "The test", PROGRAM_MODULES, arguments, ionice='idle')
    copy = program('copy', str(latest), str(tmp_path / 'snapshot'), '6')
    assert copy.returncode == 0 and copy.stdout == b'crowded\0', copy.stderr
    again = program('copy', str(latest), str(tmp_path / 'snapshot'), '6')
    assert again.returncode == 1 and b'Failed to make the snapshot' in again.stderr
    relieve = program('relieve', str(latest), '9', '.private.')
    assert relieve.returncode == 0 and relieve.stdout == b'', relieve.stderr
