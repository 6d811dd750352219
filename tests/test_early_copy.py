"""Tests of the snapshot copy made during the transfer (``snapshots/early_copy.py``), on the test's own filesystem."""

import errno
import os
import shutil
import subprocess
import time

import pytest
from executor.contexts import LocalContext

from rsync_system_backup.agent import update as update_program
from rsync_system_backup.snapshots.early_copy import EarlyCopy
from rsync_system_backup.backup_set.private_directory import PRIVATE_PREFIX
from support.stand_ins import write_script
from support.trees import take_manifest, write_file


def make_latest(latest):
    """Make a ``latest`` with directories, hard links, a symbolic link and attributes to change."""
    write_file(latest / 'stays' / 'file', b'unchanged', mtime=1400000000)
    write_file(latest / 'becomes-dir', b'a file for now', mtime=1400000001)
    write_file(latest / 'becomes-file' / 'inner' / 'deep', b'a tree for now', mtime=1400000002)
    write_file(latest / 'gone' / 'deep' / 'file', b'deleted', mtime=1400000003)
    write_file(latest / 'group' / 'a', b'grouped', mtime=1400000004)
    os.link(str(latest / 'group' / 'a'), str(latest / 'group' / 'b'))
    write_file(latest / 'chmod', b'mode changes', mode=0o644, mtime=1400000005)
    os.symlink('stays/file', str(latest / 'symlink'))


def change_latest(latest):
    """
    Change ``latest`` as a planned transfer would (new inodes for what changes) and list the touched names.

    :returns: The names (bytes) that the plan would hold: changed entries, their directories and deletions.
    """
    os.unlink(str(latest / 'becomes-dir'))
    write_file(latest / 'becomes-dir' / 'new', b'new file', mtime=1400000010)
    shutil.rmtree(str(latest / 'becomes-file'))
    write_file(latest / 'becomes-file', b'now a file', mtime=1400000011)
    shutil.rmtree(str(latest / 'gone'))
    write_file(latest / 'group' / 'c', b'joined later', mtime=1400000012)
    os.unlink(str(latest / 'group' / 'b'))
    os.link(str(latest / 'group' / 'c'), str(latest / 'group' / 'b'))
    subprocess.check_call(['cp', '--archive', str(latest / 'chmod'), str(latest / 'chmod.new')])
    os.rename(str(latest / 'chmod.new'), str(latest / 'chmod'))
    os.chmod(str(latest / 'chmod'), 0o600)
    os.unlink(str(latest / 'symlink'))
    os.symlink('elsewhere', str(latest / 'symlink'))
    os.setxattr(str(latest / 'stays'), 'user.note', b'directory attribute')
    for directory in ('becomes-dir', 'group', 'stays', '.'):
        os.utime(str(latest / directory), ns=(1300000000, 1300000000123456789))
    return [b'becomes-dir', b'becomes-dir/new', b'becomes-file', b'becomes-file/inner', b'becomes-file/inner/deep',
            b'gone', b'gone/deep', b'gone/deep/file', b'group', b'group/b', b'group/c', b'chmod', b'symlink',
            b'stays']


def inodes(root):
    """Map the relative path of every non-directory below `root` to its inode."""
    found = {}
    for directory, subdirectories, files in os.walk(str(root)):
        for name in files:
            pathname = os.path.join(directory, name)
            found[os.path.relpath(pathname, str(root))] = os.lstat(pathname).st_ino
    return found


def test_copy_is_brought_up_to_date(tmp_path):
    """After the update the copy is what cp --archive --link of latest makes: same names, attributes and inodes."""
    latest = tmp_path / 'latest'
    make_latest(latest)
    copy = EarlyCopy(LocalContext(), str(latest))
    assert copy.wait()
    assert os.path.basename(copy.pathname).startswith(PRIVATE_PREFIX)
    before = take_manifest(copy.pathname)
    names = change_latest(latest)
    assert copy.update(names)
    copy.take(str(tmp_path / 'snapshot'))
    assert take_manifest(tmp_path / 'snapshot') == take_manifest(latest) != before
    assert inodes(tmp_path / 'snapshot') == inodes(latest)
    assert sorted(os.listdir(str(tmp_path))) == ['latest', 'snapshot']


def test_top_directory_alone(tmp_path):
    """When only the top directory's attributes changed, the copy's top gets them."""
    latest = tmp_path / 'latest'
    make_latest(latest)
    copy = EarlyCopy(LocalContext(), str(latest))
    os.chmod(str(latest), 0o705)
    os.setxattr(str(latest), 'user.top', b'changed')
    os.utime(str(latest), ns=(1300000000, 1300000000123456789))
    assert copy.update([], top=True)
    copy.take(str(tmp_path / 'snapshot'))
    assert take_manifest(tmp_path / 'snapshot') == take_manifest(latest)


def test_failed_update_removes_the_copy(tmp_path, monkeypatch):
    """When the update fails, the copy is removed and the caller is told to make the snapshot afresh."""
    latest = tmp_path / 'latest'
    make_latest(latest)
    copy = EarlyCopy(LocalContext(), str(latest))

    def fail(*arguments):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(update_program, 'update', fail)
    assert not copy.update(change_latest(latest))
    assert sorted(os.listdir(str(tmp_path))) == ['latest']


def test_discard_stops_the_copy_and_removes_it(tmp_path, fake_bin, monkeypatch):
    """Discarding a copy that is still being made stops its cp processes and leaves nothing behind."""
    latest = tmp_path / 'latest'
    for index in range(300):
        write_file(latest / ('dir-%03i' % index) / 'file', b'data')
    # cp is a stand-in that records its pid and then only sleeps.
    write_script(fake_bin / 'cp', 'echo $$ >> %s\nexec sleep 60\n' % (tmp_path / 'pids'))
    monkeypatch.setenv('PATH', '%s:%s' % (fake_bin, os.environ['PATH']))
    copy = EarlyCopy(LocalContext(), str(latest))
    while not (tmp_path / 'pids').exists():
        time.sleep(0.05)
    copy.discard()
    assert not copy.copy.is_running
    for pid in (tmp_path / 'pids').read_text().split():
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid), 0)
    assert sorted(os.listdir(str(tmp_path))) == ['fake-bin', 'latest', 'pids']
