"""Tests of the protect step (``snapshots/protection.py``) on the test's own filesystem, run as the method runs it."""

import os

from executor.contexts import LocalContext

from rsync_system_backup.snapshots.protection import protect
from rsync_system_backup.target.private_directory import PRIVATE_PREFIX
from rsync_system_backup.transfer.plan import TransferPlan
from support.trees import take_manifest, write_file


def make_plan(changed=(), leaders=(), deletions=()):
    """Build a :class:`.TransferPlan` by hand."""
    plan = TransferPlan()
    plan.changed.update(changed)
    plan.leaders.update(leaders)
    plan.deletions.update(deletions)
    return plan


def run_protect(latest, plan):
    """Run the protect step on a local ``latest``."""
    return protect(LocalContext(), str(latest), plan)


def test_shared_files_get_inodes_of_their_own(tmp_path):
    """Planned files shared with a snapshot get new inodes, same content and attributes; the snapshot keeps the old."""
    latest, snapshot = tmp_path / 'latest', tmp_path / 'snapshot'
    write_file(latest / 'dir' / 'file', b'content', mode=0o640, mtime=1500000000)
    os.setxattr(str(latest / 'dir' / 'file'), 'user.note', b'kept')
    os.link(str(latest / 'dir' / 'file'), str(latest / 'mate'))
    os.symlink('dir/file', str(latest / 'symlink'))
    os.mkfifo(str(latest / 'fifo'), 0o600)
    write_file(latest / 'alone', b'not shared')
    write_file(latest / 'gone' / 'deep', b'deleted')
    os.system('cp -al %s %s' % (latest, snapshot))
    os.unlink(str(snapshot / 'alone'))
    before = take_manifest(latest)
    inodes = {name: os.lstat(str(latest / name)).st_ino for name in ('dir/file', 'mate', 'symlink', 'fifo', 'alone')}
    extra = run_protect(latest, make_plan(changed=[b'dir/file', b'mate', b'symlink', b'fifo', b'alone'],
                                          deletions=[b'gone', b'gone/deep']))
    assert extra == ([], [])
    assert not (latest / 'gone').exists()
    del before[b'gone'], before[b'gone/deep']
    after = take_manifest(latest)
    # Every path has an inode of its own now (rsync -H links them again where the source links them).
    assert after[b'mate'][-1] == b'mate'
    after[b'mate'] = after[b'mate'][:-1] + (b'dir/file',)
    # Directories aren't shared; their times change with the renames, and the apply puts them right.
    assert {name: value for name, value in after.items() if name not in (b'.', b'dir')} == \
        {name: value for name, value in before.items() if name not in (b'.', b'dir')}
    for name in ('dir/file', 'mate', 'symlink', 'fifo'):
        assert os.lstat(str(latest / name)).st_ino != inodes[name], name
        assert os.lstat(str(snapshot / name)).st_ino == inodes[name], name
    assert os.lstat(str(latest / 'alone')).st_ino == inodes['alone']
    assert not [name for name in os.listdir(str(tmp_path)) if name.startswith(PRIVATE_PREFIX)]


def test_unchanged_leader_brings_its_group(tmp_path):
    """A hard link's unchanged leader is protected with every path of its group, which the apply must transfer too."""
    latest, snapshot = tmp_path / 'latest', tmp_path / 'snapshot'
    write_file(latest / 'leader', b'linked')
    os.link(str(latest / 'leader'), str(latest / 'sub-mate'))
    os.system('cp -al %s %s' % (latest, snapshot))
    assert run_protect(latest, make_plan(leaders=[b'leader'])) == ([b'sub-mate'], [])
    assert os.lstat(str(latest / 'leader')).st_ino != os.lstat(str(snapshot / 'leader')).st_ino
    assert os.lstat(str(latest / 'sub-mate')).st_ino != os.lstat(str(snapshot / 'sub-mate')).st_ino


def test_symbolic_links_inside_latest_are_never_followed(tmp_path):
    """A planned path through a symbolic link in latest leaves the link's target alone (no copy, no deletion)."""
    latest, outside = tmp_path / 'latest', tmp_path / 'outside'
    write_file(outside / 'file', b'outside latest')
    os.link(str(outside / 'file'), str(outside / 'second-name'))
    write_file(latest / 'placeholder', b'')
    os.symlink(str(outside), str(latest / 'link'))
    before = take_manifest(outside)
    inode = os.stat(str(outside / 'file')).st_ino
    assert run_protect(latest, make_plan(changed=[b'link/file'], leaders=[b'link/second-name'],
                                         deletions=[b'link/second-name'])) == ([], [])
    assert take_manifest(outside) == before
    assert os.stat(str(outside / 'file')).st_ino == inode
    assert os.path.islink(str(latest / 'link'))


def test_failed_deletions_are_reported(tmp_path):
    """A planned deletion that fails (a directory that isn't empty) is returned; the rest of the step is done."""
    latest, snapshot = tmp_path / 'latest', tmp_path / 'snapshot'
    write_file(latest / 'full' / 'unplanned', b'not in the plan')
    write_file(latest / 'gone', b'deleted')
    write_file(latest / 'changed', b'shared')
    os.system('cp -al %s %s' % (latest, snapshot))
    assert run_protect(latest, make_plan(changed=[b'changed'], deletions=[b'full', b'gone'])) == ([], [b'full'])
    assert (latest / 'full' / 'unplanned').exists() and not (latest / 'gone').exists()
    assert os.lstat(str(latest / 'changed')).st_ino != os.lstat(str(snapshot / 'changed')).st_ino
