"""Tests of the protect step (``agent/protect.py`` and ``snapshots/protection.py``) on the test's own filesystem."""

import errno
import os
import subprocess

import pytest
from executor.contexts import LocalContext

from rsync_system_backup.agent import protect as program
from rsync_system_backup.agent.shipping import run_program
from rsync_system_backup.agent.standalone import Stopped
from rsync_system_backup.snapshots.protection import PROGRAM_MODULES, protect
from rsync_system_backup.backup_set.private_directory import PRIVATE_PREFIX
from rsync_system_backup.transfer.plan import TransferPlan
from support.trees import take_manifest, write_file


def make_plan(entries=(), links=(), deletions=()):
    """Build a checked :class:`.TransferPlan` by hand: `entries` are (name, kind) pairs."""
    plan = TransferPlan()
    plan.entries.update(entries)
    plan.links.update(links)
    plan.deletions.update(deletions)
    return plan


def snapshot(latest, target):
    """Make a hard-link snapshot of ``latest``, as the snapshot step does."""
    subprocess.run(['cp', '--archive', '--link', str(latest), str(target)], check=True)


def inode(path):
    """Give the inode number of a path (without following a symbolic link)."""
    return os.lstat(str(path)).st_ino


def private_directories(directory):
    """List the private directories beside ``latest``."""
    return [name for name in os.listdir(str(directory)) if name.startswith(PRIVATE_PREFIX)]


def test_one_copy_per_shared_inode(tmp_path):
    """A shared symbolic link or FIFO gets one copy, which all its planned names link to; the snapshot keeps the old."""
    latest = tmp_path / 'latest'
    write_file(latest / 'dir' / 'file', b'content', mode=0o640, mtime=1500000000)
    os.symlink('dir/file', str(latest / 'symlink'))
    os.chown(str(latest / 'symlink'), 1000, 1000, follow_symlinks=False)
    for name in ('symlink-mate', 'dir/symlink-mate'):
        os.link(str(latest / 'symlink'), str(latest / name), follow_symlinks=False)
    os.mkfifo(str(latest / 'fifo'), 0o600)
    os.mkfifo(str(latest / 'alone'), 0o600)
    snapshot(latest, tmp_path / 'snapshot')
    os.unlink(str(tmp_path / 'snapshot' / 'alone'))
    before = take_manifest(latest)
    old = {name: inode(latest / name) for name in ('dir/file', 'symlink', 'fifo', 'alone')}
    plan = make_plan(entries=[(b'dir/file', b'f'), (b'symlink', b'L'), (b'symlink-mate', b'L'),
                              (b'dir/symlink-mate', b'L'), (b'fifo', b'S'), (b'alone', b'S')])
    assert protect(LocalContext(), str(latest), plan) == ([], [])
    after = take_manifest(latest)
    # Directories aren't shared; their times change with the renames, and the apply puts them right.
    assert {name: value for name, value in after.items() if name not in (b'.', b'dir')} == \
        {name: value for name, value in before.items() if name not in (b'.', b'dir')}
    assert inode(latest / 'symlink') == inode(latest / 'symlink-mate') == inode(latest / 'dir' / 'symlink-mate')
    for name in ('symlink', 'fifo'):
        assert inode(latest / name) != old[name], name
        assert inode(tmp_path / 'snapshot' / name) == old[name], name
    assert os.lstat(str(latest / 'symlink')).st_nlink == 3
    # Regular files are written anew by the apply, and what nothing else shares needs no copy.
    assert inode(latest / 'dir' / 'file') == old['dir/file']
    assert inode(latest / 'alone') == old['alone']
    assert not private_directories(tmp_path)


def test_entries_of_another_kind_in_latest_are_not_copied(tmp_path):
    """An entry that the apply replaces with one of another kind keeps its inode: nothing is copied for it."""
    latest = tmp_path / 'latest'
    write_file(latest / 'big', b'x' * 100000)
    os.symlink('big', str(latest / 'was-a-link'))
    snapshot(latest, tmp_path / 'snapshot')
    old = inode(latest / 'big'), inode(latest / 'was-a-link')
    assert protect(LocalContext(), str(latest), make_plan(entries=[(b'big', b'L'), (b'was-a-link', b'f')])) == \
        ([], [])
    assert (inode(latest / 'big'), inode(latest / 'was-a-link')) == old
    assert not private_directories(tmp_path)


def test_deletions_and_changed_kinds(tmp_path):
    """Deleted trees go whole; an entry whose kind changes between directory and anything else is removed."""
    latest = tmp_path / 'latest'
    write_file(latest / 'gone' / 'a' / 'b' / 'file', b'deleted')
    write_file(latest / 'now-a-file' / 'a' / 'inside', b'replaced')
    write_file(latest / 'now-a-directory', b'replaced')
    write_file(latest / 'kept', b'kept')
    snapshot(latest, tmp_path / 'snapshot')
    plan = make_plan(entries=[(b'now-a-file', b'f'), (b'now-a-directory', b'd'), (b'now-a-directory/new', b'f')],
                     deletions=[b'gone', b'gone/a/b/file'])
    assert protect(LocalContext(), str(latest), plan) == ([], [])
    assert sorted(os.listdir(str(latest))) == ['kept']
    assert (tmp_path / 'snapshot' / 'gone' / 'a' / 'b' / 'file').read_bytes() == b'deleted'


def test_new_links_to_unchanged_entries(tmp_path):
    """A new hard link to an entry the transfer leaves alone is made in latest, in a new directory too."""
    latest = tmp_path / 'latest'
    write_file(latest / 'leader', b'linked')
    write_file(latest / 'replaced', b'old')
    write_file(latest / 'was-a-directory' / 'inside', b'old')
    snapshot(latest, tmp_path / 'snapshot')
    plan = make_plan(entries=[(b'new-dir', b'd')], links=[(b'new-dir/deep/link', b'leader'), (b'replaced', b'leader'),
                                                          (b'orphan', b'missing'), (b'was-a-directory', b'leader')])
    assert protect(LocalContext(), str(latest), plan) == ([b'orphan'], [])
    assert inode(latest / 'new-dir' / 'deep' / 'link') == inode(latest / 'leader')
    assert inode(latest / 'leader') == inode(tmp_path / 'snapshot' / 'leader')
    assert inode(latest / 'replaced') == inode(latest / 'leader') == inode(latest / 'was-a-directory')
    assert (tmp_path / 'snapshot' / 'replaced').read_bytes() == b'old'
    assert not (latest / 'orphan').exists()


def test_symbolic_links_inside_latest_are_never_followed(tmp_path):
    """A planned path through a symbolic link in latest leaves the link's target alone (no copy, no deletion)."""
    latest, outside = tmp_path / 'latest', tmp_path / 'outside'
    write_file(outside / 'file', b'outside latest')
    os.link(str(outside / 'file'), str(outside / 'second-name'))
    write_file(latest / 'placeholder', b'')
    os.symlink(str(outside), str(latest / 'link'))
    before = take_manifest(outside)
    old = os.stat(str(outside / 'file')).st_ino
    plan = make_plan(entries=[(b'link/file', b'f')], links=[(b'link/new', b'link/second-name')],
                     deletions=[b'link/second-name'])
    assert protect(LocalContext(), str(latest), plan) == ([b'link/new'], [])
    assert take_manifest(outside) == before
    assert os.stat(str(outside / 'file')).st_ino == old
    assert os.path.islink(str(latest / 'link'))


def test_stopped_while_copying_changes_nothing(tmp_path, monkeypatch):
    """A signal while the copies are made leaves latest as it was and no private directory."""
    latest = tmp_path / 'latest'
    for name in ('one', 'two', 'three'):
        os.makedirs(str(latest), exist_ok=True)
        os.symlink(name, str(latest / name))
    snapshot(latest, tmp_path / 'snapshot')
    before = take_manifest(latest)
    copies = []
    real_copy_entry = program.copy_entry

    def copy_then_stop(*arguments):
        real_copy_entry(*arguments)
        copies.append(arguments)
        if len(copies) == 2:
            raise Stopped(15)
    monkeypatch.setattr(program, 'copy_entry', copy_then_stop)
    protection = program.Protection(os.fsencode(str(latest)), os.fsencode(PRIVATE_PREFIX))
    with pytest.raises(Stopped):
        protection.run(program.read_orders(program.encode_orders(protect_orders())))
    assert take_manifest(latest) == before
    assert not private_directories(tmp_path)


def protect_orders():
    """The orders that protect the three files of :func:`test_stopped_while_copying_changes_nothing`."""
    orders = program.Orders()
    orders.kinds = {name: b'L' for name in (b'one', b'two', b'three')}
    return orders


def test_program_answers_through_its_pipes(tmp_path):
    """Run as a program (as on another system), the step reads its orders and answers as records."""
    latest = tmp_path / 'latest'
    write_file(latest / 'gone', b'deleted')
    os.symlink('gone', str(latest / 'shared'))
    snapshot(latest, tmp_path / 'snapshot')
    orders = program.Orders()
    orders.deletions = [b'gone']
    orders.kinds = {b'shared': b'L', b'new': b'f'}
    orders.links = [(b'new', b'missing')]
    # An I/O scheduling class makes it a command of its own, as on another system.
    finished = run_program(LocalContext(), "The test", PROGRAM_MODULES, [str(latest), PRIVATE_PREFIX],
                           program.encode_orders(orders), ionice='idle')
    assert finished.returncode == program.INCOMPLETE, finished.stderr
    assert finished.stdout == b'Fnew\0'
    assert b"Can't protect 'new'" in finished.stderr
    assert inode(latest / 'shared') != inode(tmp_path / 'snapshot' / 'shared')
    assert not (latest / 'gone').exists()


def shared_links(tmp_path, names=('one', 'two')):
    """Make a ``latest`` of symbolic links that a snapshot shares; give its path."""
    latest = tmp_path / 'latest'
    latest.mkdir()
    for name in names:
        os.symlink(name + '-target', str(latest / name))
    snapshot(latest, tmp_path / 'snapshot')
    return latest


def run_step(latest, orders):
    """Run the protect step as a program, in this process (see ``agent/shipping.py``)."""
    return run_program(LocalContext(), "The test", PROGRAM_MODULES, [str(latest), PRIVATE_PREFIX],
                       program.encode_orders(orders))


def test_failed_copy_changes_nothing(tmp_path, monkeypatch):
    """A copy that fails for want of space fails the whole step: latest stays as it was, the private directory goes."""
    latest = shared_links(tmp_path)
    before = take_manifest(latest)

    def no_space(*arguments):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(program, 'copy_entry', no_space)
    orders = protect_orders()
    orders.deletions = [b'three']
    finished = run_step(latest, orders)
    assert (finished.returncode, finished.stdout) == (program.FAILED, b'')
    assert finished.problem == "Failed to copy 'one' in %s: No space left on device." % latest
    assert take_manifest(latest) == before
    assert not private_directories(tmp_path)


def test_entries_that_cannot_be_prepared_are_left_out(tmp_path, monkeypatch):
    """An entry that can't be read or copied, or changes meanwhile, is reported and left out; the rest goes on."""
    latest = shared_links(tmp_path, names=('unreadable', 'uncopyable', 'changing', 'fine', 'kind-unknown'))
    write_file(latest / 'file', b'')
    real_lstat, real_copy_entry = program.Tree.lstat, program.copy_entry

    def lstat(tree, name):
        if name in (b'unreadable', b'kind-unknown'):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_lstat(tree, name)

    def copy_entry(directory, name, info, private, copy):
        if name == b'uncopyable':
            raise PermissionError(errno.EACCES, "Permission denied")
        real_copy_entry(directory, name, info, private, copy)
        if name == b'changing':
            os.rename(str(latest / 'fine'), str(latest / 'changing'))
            os.symlink('fine-target', str(latest / 'fine'))
    monkeypatch.setattr(program.Tree, 'lstat', lstat)
    monkeypatch.setattr(program, 'copy_entry', copy_entry)
    orders = program.Orders()
    orders.kinds = {b'unreadable': b'L', b'uncopyable': b'L', b'changing': b'L', b'kind-unknown': b'f'}
    orders.links = [(b'file/below', b'file')]
    finished = run_step(latest, orders)
    assert finished.returncode == program.INCOMPLETE
    assert sorted(record for record in finished.stdout.split(b'\0') if record) == \
        [b'Fchanging', b'Ffile/below', b'Funcopyable', b'Funreadable']
    assert finished.messages == [
        "Can't protect 'unreadable' in %s: Permission denied" % latest,
        "Can't protect 'uncopyable' in %s: Permission denied" % latest,
        "Can't protect 'changing' in %s: it changed while it was copied" % latest,
        "Can't protect 'file/below' in %s: something else is in the way of its directory" % latest,
    ]
    assert os.readlink(str(latest / 'changing')) == 'fine-target'
    assert not private_directories(tmp_path)


def test_missing_latest_fails_the_step(tmp_path):
    """Without ``latest`` the step fails with one message."""
    finished = run_step(tmp_path / 'latest', protect_orders())
    assert (finished.returncode, finished.problem) == (
        program.FAILED, "Failed to prepare %s: [Errno 2] No such file or directory: b'%s'." % (
            tmp_path / 'latest', tmp_path / 'latest'))
