"""
Tests of the source snapshots (``sources/snapshots.py`` with ``agent/source_directory.py``) on real filesystems.

The source is a btrfs subvolume on a loop device, mounted in a private mount
namespace (see :mod:`support.loop_filesystems`); the command runs there as a
real process, and ``latest`` is compared, attribute by attribute, with what
plain rsync makes of the snapshot that the run kept, or of the source.
"""

import os
import pathlib
import subprocess
import time

import pytest

from support.loop_filesystems import MountedFilesystem
from support.stand_ins import real_program, write_script
from support.trees import settle, take_manifest, write_dated
from support.users import AS_NOBODY, shared_directory

HOLDER = '.rsync-system-backup.source-snapshots'
"""The directory of the source's snapshots, at the top of the source."""

PARENT = HOLDER + '/parent'
"""The snapshot that a run keeps for the next one."""

REFERENCE_OPTIONS = ('-aHAX', '--numeric-ids', '--delete', '--one-file-system', '--exclude=/' + HOLDER)
"""What plain rsync gets to make the reference of a backup (the snapshots' directory is never backed up)."""


@pytest.fixture
def btrfs(tmp_path):
    """A btrfs filesystem in a private mount namespace, with the subvolume ``src`` as the source."""
    with MountedFilesystem('btrfs', tmp_path / 'btrfs') as filesystem:
        filesystem.run('btrfs', '-q', 'subvolume', 'create', filesystem.mount_point / 'src')
        yield filesystem


def source_of(filesystem):
    """The source's pathname in the namespace (a path)."""
    return filesystem.mount_point / 'src'


def view(filesystem, *names):
    """The pathname of an entry of the source as the tests can open it (a path)."""
    return pathlib.Path(filesystem.view(source_of(filesystem).joinpath(*names)))


def build_tree(root):
    """Write a small tree with hard links, an xattr and a symbolic link, every time in the past."""
    write_dated(root / 'etc' / 'hostname', b'backup-host\n')
    write_dated(root / 'home' / 'alice' / 'notes', b'first notes', owner=(1000, 1000))
    os.link(str(root / 'home' / 'alice' / 'notes'), str(root / 'home' / 'alice' / 'linked'))
    os.setxattr(str(root / 'etc' / 'hostname'), 'user.note', b'kept')
    write_dated(root / 'tmp' / 'scratch', b'left out')
    os.symlink('etc/hostname', str(root / 'link'))
    settle(root)


def backup(filesystem, destination, *options):
    """Run the command with ``-v`` on the source, checking that it succeeds; its output."""
    result = filesystem.run_cli('-v', *options, source_of(filesystem), destination)
    assert result.returncode == 0, result.output
    return result.output


def reference(filesystem, directory, tmp_path, name='reference'):
    """Make the reference of a backup with plain rsync from a directory in the namespace; its manifest."""
    target = tmp_path / name
    filesystem.run('rsync', *REFERENCE_OPTIONS, '--exclude=/tmp/', '%s/' % directory, '%s/' % target)
    return take_manifest(target, times='seconds')


def holder_names(filesystem):
    """The names in the directory of the source's snapshots (a sorted list)."""
    return sorted(os.listdir(str(view(filesystem, HOLDER))))


def test_backup_reads_a_snapshot_and_keeps_one_parent(btrfs, tmp_path):
    """A backup of a subvolume equals plain rsync of it, and leaves one parent, in a directory only root enters."""
    build_tree(view(btrfs))
    latest = tmp_path / 'backups' / 'latest'
    output = backup(btrfs, latest, '--exclude=/tmp/')
    assert 'Transferring from a read-only snapshot of %s' % source_of(btrfs) in output
    assert take_manifest(latest, times='seconds') == reference(btrfs, source_of(btrfs), tmp_path)
    assert holder_names(btrfs) == ['.rsync-system-backup.lock', 'parent']
    info = os.lstat(str(view(btrfs, HOLDER)))
    assert (info.st_uid, info.st_mode & 0o7777) == (0, 0o700)
    assert os.lstat(str(view(btrfs, PARENT))).st_ino == 256
    assert not os.path.lexists(str(latest / HOLDER))
    write_dated(view(btrfs, 'etc', 'hostname'), b'renamed-host\n', mtime=1600000000)
    os.unlink(str(view(btrfs, 'link')))
    backup(btrfs, latest, '--exclude=/tmp/')
    assert holder_names(btrfs) == ['.rsync-system-backup.lock', 'parent']
    assert take_manifest(latest, times='seconds') == reference(btrfs, btrfs.mount_point / 'src' / PARENT, tmp_path)
    assert (latest / 'etc' / 'hostname').read_bytes() == b'renamed-host\n'


def test_default_excludes_follow_the_snapshot(btrfs, tmp_path):
    """An absolute excluded path of the source (the backup inside it, too) is left out of the snapshot's transfer."""
    build_tree(view(btrfs))
    latest = view(btrfs, 'backups', 'latest')
    output = backup(btrfs, source_of(btrfs) / 'backups' / 'latest', '--snapshot-method=hardlink')
    assert 'Transferring from a read-only snapshot' in output
    assert sorted(os.listdir(str(latest))) == ['etc', 'home', 'link', 'tmp']
    backup(btrfs, source_of(btrfs) / 'backups' / 'latest', '--snapshot-method=hardlink')
    assert sorted(os.listdir(str(latest))) == ['etc', 'home', 'link', 'tmp']


def test_crash_leaves_at_most_one_parent_and_the_next_run_cleans_up(btrfs, tmp_path, fake_bin):
    """A run killed between its snapshot and the transfer leaves the parent and its snapshot; the next run tidies."""
    build_tree(view(btrfs))
    latest = tmp_path / 'backups' / 'latest'
    backup(btrfs, latest)
    parent_inode = os.stat(str(view(btrfs, PARENT))).st_ino
    write_script(fake_bin / 'rsync', 'kill -KILL $PPID\nsleep 5\n')
    write_dated(view(btrfs, 'etc', 'changed'), b'before the crash')
    crashed = btrfs.run_cli(source_of(btrfs), latest, env=dict(PATH='%s:%s' % (fake_bin, os.environ['PATH'])))
    assert crashed.returncode == -9, crashed.output
    names = holder_names(btrfs)
    assert [name for name in names if name == 'parent'] == ['parent'] and parent_inode
    leftovers = [name for name in names if name.startswith('new.')]
    assert len(leftovers) == 1 and len(leftovers[0]) == len('new.') + 16
    write_dated(view(btrfs, 'etc', 'added'), b'after the crash')
    output = backup(btrfs, latest)
    assert 'Deleting 1 snapshot(s) of %s that an interrupted run left behind' % source_of(btrfs) in output
    assert holder_names(btrfs) == ['.rsync-system-backup.lock', 'parent']
    assert (latest / 'etc' / 'added').read_bytes() == b'after the crash'


def test_failed_transfer_keeps_the_earlier_parent(btrfs, tmp_path, fake_bin):
    """A transfer that fails deletes the run's own snapshot; the parent of the last complete backup stays."""
    build_tree(view(btrfs))
    latest = tmp_path / 'backups' / 'latest'
    backup(btrfs, latest)
    before = take_manifest(btrfs.view(source_of(btrfs) / PARENT), times=None)
    write_script(fake_bin / 'rsync', 'exit 12\n')
    write_dated(view(btrfs, 'etc', 'changed'), b'while rsync fails')
    failed = btrfs.run_cli(source_of(btrfs), latest, env=dict(PATH='%s:%s' % (fake_bin, os.environ['PATH'])))
    assert failed.returncode != 0
    assert holder_names(btrfs) == ['.rsync-system-backup.lock', 'parent']
    assert take_manifest(btrfs.view(source_of(btrfs) / PARENT), times=None) == before


def test_incomplete_transfer_keeps_no_parent(btrfs, tmp_path, fake_bin):
    """After rsync's exit code 23, ``latest`` equals no snapshot, and none is kept."""
    build_tree(view(btrfs))
    latest = tmp_path / 'backups' / 'latest'
    backup(btrfs, latest)
    write_script(fake_bin / 'rsync', '"%s" "$@"\nexit 23\n' % real_program('rsync'))
    result = btrfs.run_cli('-v', '--snapshot-method=hardlink', source_of(btrfs), latest,
                           env=dict(PATH='%s:%s' % (fake_bin, os.environ['PATH'])))
    assert 'Keeping no snapshot of %s: the transfer was incomplete.' % source_of(btrfs) in result.output
    assert holder_names(btrfs) == ['.rsync-system-backup.lock']


def test_nested_subvolume_is_left_out_as_without_a_snapshot(btrfs, tmp_path):
    """A nested subvolume becomes an empty directory, with a snapshot as without; only its attributes differ."""
    build_tree(view(btrfs))
    btrfs.run('btrfs', '-q', 'subvolume', 'create', source_of(btrfs) / 'home' / 'nested')
    write_dated(view(btrfs, 'home', 'nested', 'inside'), b'in the nested subvolume')
    with_snapshot, without = tmp_path / 'a' / 'latest', tmp_path / 'b' / 'latest'
    assert 'Transferring from a read-only snapshot' in backup(btrfs, with_snapshot)
    assert 'Transferring from the live source: --source-snapshot=never.' in \
        backup(btrfs, without, '--source-snapshot=never')
    assert os.listdir(str(with_snapshot / 'home' / 'nested')) == os.listdir(str(without / 'home' / 'nested')) == []
    first, second = take_manifest(with_snapshot, times='seconds'), take_manifest(without, times='seconds')
    # btrfs shows a nested subvolume in a snapshot as an empty directory of root's, mode 0755 (see docs/usage.rst).
    nested = b'home/nested'
    assert first.pop(nested)[0] == second.pop(nested)[0]
    assert first == second


def test_consistency_while_the_source_changes(btrfs, tmp_path):
    """A source that changes during the transfer is backed up as it was at the snapshot's instant, not a mix."""
    for number in range(3000):
        write_dated(view(btrfs, 'bulk', '%02d' % (number % 50), 'file-%04d' % number), b'x' * 512)
    write_dated(view(btrfs, 'moving', 'a', 'file'), b'in a directory that is renamed back and forth')
    write_dated(view(btrfs, 'counter'), b'0\n')
    churn = subprocess.Popen(btrfs.command('sh', '-c', 'cd "$1"; i=0; while :; do i=$((i + 1)); mv moving/a '
                                           'moving/b; echo "$i" > counter; mv moving/b moving/a; done',
                             'churn', source_of(btrfs)), stdin=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        latest = tmp_path / 'backups' / 'latest'
        output = backup(btrfs, latest, '--snapshot-method=hardlink')
    finally:
        churn.kill()
        churn.wait()
    assert 'Transferring from a read-only snapshot' in output
    kept = reference(btrfs, source_of(btrfs) / PARENT, tmp_path)
    assert take_manifest(latest, times='seconds') == kept
    assert int((latest / 'counter').read_text()) > 0
    assert sorted(os.listdir(str(latest / 'moving'))) in (['a'], ['b'])


@pytest.mark.parametrize('kind', ['ext4', 'tmpfs'])
def test_other_filesystems_read_the_live_source(tmp_path, kind):
    """A source on another filesystem than btrfs is transferred live, with one line saying why."""
    with MountedFilesystem(kind, tmp_path / kind) as filesystem:
        root = pathlib.Path(filesystem.view(filesystem.mount_point))
        write_dated(root / 'file', b'on %s' % kind.encode())
        latest = tmp_path / 'backups' / 'latest'
        result = filesystem.run_cli('-v', filesystem.mount_point, latest)
        assert result.returncode == 0, result.output
        message = 'Transferring from the live source: %s is not on a btrfs filesystem.' % filesystem.mount_point
        assert result.output.count(message) == 1
        assert (latest / 'file').read_bytes() == b'on %s' % kind.encode()
        assert not os.path.lexists(str(root / HOLDER))


def test_directory_inside_a_subvolume_and_never_and_dry_run(btrfs, tmp_path):
    """A directory inside a subvolume, ``never`` and a dry run read the live source and create nothing."""
    build_tree(view(btrfs))
    latest = tmp_path / 'backups' / 'latest'
    inside = backup(btrfs, latest, '--source-snapshot=never')
    assert 'Transferring from the live source: --source-snapshot=never.' in inside
    result = btrfs.run_cli('-v', source_of(btrfs) / 'etc', tmp_path / 'etc' / 'latest')
    assert ('Transferring from the live source: %s is a directory inside a btrfs subvolume, not the top of one.'
            % (source_of(btrfs) / 'etc')) in result.output
    dry = backup(btrfs, latest, '--dry-run')
    assert ('Transferring from the live source: a dry run takes no snapshot (a real run reads a snapshot of %s).'
            % source_of(btrfs)) in dry
    assert not os.path.lexists(str(view(btrfs, HOLDER)))
    multi = backup(btrfs, latest, '--multi-fs')
    assert ('Transferring from the live source: with --multi-fs the transfer crosses filesystems, and a snapshot '
            'holds one.') in multi
    assert not os.path.lexists(str(view(btrfs, HOLDER)))


def test_invalid_mode_is_refused(run_cli, tmp_path):
    """An unknown ``--source-snapshot`` is refused with one line, before anything happens."""
    result = run_cli('--source-snapshot=always', str(tmp_path), str(tmp_path / 'backups' / 'latest'))
    assert result.returncode != 0
    assert result.output.strip() == ("Error: Unknown source snapshot mode 'always' (--source-snapshot): use auto "
                                     "or never.")
    assert not (tmp_path / 'backups').exists()


@pytest.mark.parametrize('plant', ['symlink', 'directory', 'owner'])
def test_another_user_cannot_steer_the_snapshots(tmp_path, plant):
    """Whatever an unprivileged user plants at the directory's name, root writes nothing where she points."""
    with shared_directory('rsb-source-') as shared, MountedFilesystem('btrfs', pathlib.Path(shared) / 'fs') as fs:
        source = fs.mount_point / 'src'
        fs.run('btrfs', '-q', 'subvolume', 'create', source)
        fs.run('chmod', '1777' if plant != 'owner' else '0755', source)
        if plant == 'owner':
            fs.run('chown', 'nobody', source)
        script = {
            'symlink': 'mkdir hers; ln -s hers "$1"',
            'directory': 'mkdir -m 777 "$1"',
            'owner': 'mkdir hers; ln -s hers "$1"',
        }[plant]
        subprocess.run(fs.command(*AS_NOBODY, 'sh', '-c', 'cd "$2"; ' + script, 'plant', HOLDER, source), check=True)
        result = fs.run_cli('-v', source, tmp_path / 'backups' / 'latest')
        assert result.returncode == 0, result.output
        if plant == 'owner':
            expected = '%s can be changed by users other than root' % source
        else:
            expected = '%s/%s is not a directory of root\'s on the source\'s subvolume: remove it' % (source, HOLDER)
        assert 'Transferring from the live source: %s' % expected in result.output
        root = pathlib.Path(fs.view(source))
        planted = root / ('hers' if plant != 'directory' else HOLDER)
        assert os.listdir(str(planted)) == []
        assert os.lstat(str(planted)).st_uid == 65534
