"""
Tests of the snapshot methods (``snapshots/methods.py``) on real filesystems: later backups never change a snapshot.

Each filesystem is a real btrfs, XFS (with reflinks) or ext4 on a loop
device, or a tmpfs, mounted in a private mount namespace (see
:mod:`support.loop_filesystems`); the command runs there as a real process, and every
snapshot is compared, attribute by attribute, with a manifest taken right
after it was made.
"""

import os
import pathlib
import re
import subprocess

import pytest

from support.loop_filesystems import MountedFilesystem, NamespaceSSHServer
from support.remote import SERVER_ALIAS, ClientHome, wait_until_idle
from support.trees import PAST, check_snapshots, settle, snapshot_names, take_manifest, write_dated

EXPIRE_ALL_BUT_NEWEST = ('--hourly=1', '--prefer-recent', '--daily=0', '--weekly=0', '--monthly=0')
"""Rotation options that keep only the newest snapshot."""

LINK_LIMIT_WARNING = 'have too many hard links to be linked again'
"""What the warning about the link limit says."""


def build_attribute_tree(root):
    """
    Create a source tree with one file for each kind of change the tests make.

    Every entry gets a modification time in the past: rsync compares the
    times of directories and symbolic links to the second, so it would leave
    the time of one made in the second of the backup as it finds it.
    """
    write_dated(root / 'unchanged', b'never changes')
    write_dated(root / 'mode', b'mode changes')
    write_dated(root / 'owner', b'owner changes', owner=(1000, 1000))
    write_dated(root / 'group', b'group changes', owner=(0, 1000))
    write_dated(root / 'mtime', b'mtime changes')
    write_dated(root / 'content', b'content changes')
    write_dated(root / 'xattr', b'xattr changes')
    os.setxattr(str(root / 'xattr'), 'user.note', b'first')
    os.setxattr(str(root / 'xattr'), 'user.gone', b'removed later')
    write_dated(root / 'acl', b'acl changes')
    subprocess.check_call(['setfacl', '-m', 'u:1234:r', str(root / 'acl')])
    write_dated(root / 'deleted', b'deleted later')
    write_dated(root / 'linked-a', b'hard-linked in the source')
    os.link(str(root / 'linked-a'), str(root / 'linked-b'))
    write_dated(root / 'directory' / 'inside', b'in a directory whose mode changes')
    os.symlink('unchanged', str(root / 'symlink'))
    settle(root)


def change_attributes(root, round_number):
    """
    Change every attribute of some file in the source (differently in each round).

    Changed entries get modification times in the past too (see :func:`build_attribute_tree()`).
    """
    mtime = 1600000000 + 1000 * round_number
    (root / 'mode').chmod(0o600 if round_number == 1 else 0o640)
    os.chown(str(root / 'owner'), 1000 + round_number, 1000)
    os.chown(str(root / 'group'), 0, 1000 + round_number)
    os.utime(str(root / 'mtime'), (mtime, mtime))
    write_dated(root / 'content', b'content changed in round %i' % round_number, mtime=mtime)
    os.setxattr(str(root / 'xattr'), 'user.note', b'round %i' % round_number)
    if round_number == 1:
        os.removexattr(str(root / 'xattr'), 'user.gone')
        subprocess.check_call(['setfacl', '-m', 'u:1234:rw', str(root / 'acl')])
        (root / 'deleted').unlink()
        write_dated(root / 'added', b'added in round 1', mtime=mtime)
        os.link(str(root / 'linked-a'), str(root / 'linked-c'))
        (root / 'directory').chmod(0o700)
        (root / 'symlink').unlink()
        os.symlink('mode', str(root / 'symlink'))
        os.utime(str(root / 'symlink'), (mtime, mtime), follow_symlinks=False)
    else:
        subprocess.check_call(['setfacl', '-m', 'g:5678:r', str(root / 'acl')])
        (root / 'linked-b').unlink()
        write_dated(root / 'linked-b', b'no longer hard-linked', mtime=mtime)
        write_dated(root / 'directory' / 'added', b'added in round 2', mtime=mtime)
    for directory in (root, root / 'directory'):
        os.utime(str(directory), (mtime, mtime))


def backup_and_check(filesystem, source, latest, manifests, *options):
    """
    Run a backup without rotation, check the new snapshot against the source and every older one against its manifest.

    :returns: The output of the run.
    """
    result = filesystem.run_cli('-v', '--backup', '--snapshot', *(options + (source, latest)))
    assert result.returncode == 0, result.output
    names = snapshot_names(filesystem.view(latest.parent))
    assert len(names) == len(manifests) + 1, names
    assert check_snapshots(filesystem, latest, manifests) == take_manifest(source)
    return result.output


@pytest.mark.parametrize('kind, option, method', [
    ('btrfs', 'auto', 'btrfs'),
    ('xfs', 'auto', 'reflink'),
    ('ext4', 'auto', 'safe-hardlink'),
    ('tmpfs', 'auto', 'safe-hardlink'),
    ('ext4', 'link-dest', 'link-dest'),
    ('btrfs', 'reflink', 'reflink'),
])
def test_snapshots_never_change(tmp_path, kind, option, method):
    """Changed modes, owners, groups, mtimes, xattrs, ACLs, contents and links leave every older snapshot as it was."""
    source = tmp_path / 'source'
    build_attribute_tree(source)
    with MountedFilesystem(kind, tmp_path / kind) as filesystem:
        latest = filesystem.mount_point / 'backups' / 'latest'
        manifests = {}
        for round_number in range(3):
            if round_number:
                change_attributes(source, round_number)
            output = backup_and_check(filesystem, source, latest, manifests, '--snapshot-method=%s' % option)
            assert 'Using the %s snapshot method' % method in output
            assert 'WARNING' not in output, output
        backups = filesystem.view(latest.parent)
        newest = snapshot_names(backups)[-1]
        result = filesystem.run_cli('--rotate', '--snapshot-method=%s' % option, *(EXPIRE_ALL_BUT_NEWEST + (latest,)))
        assert result.returncode == 0, result.output
        assert sorted(os.listdir(backups)) == sorted(['.rsync-system-backup', '.rsync-system-backup.lock',
                                                      '.rsync-system-backup.manifests', 'latest', newest])
        assert take_manifest(os.path.join(backups, newest)) == manifests[newest]
        if method == 'btrfs':
            assert subvolumes(filesystem) == ['backups/%s' % newest, 'backups/latest']


def subvolumes(filesystem):
    """List the subvolumes of a mounted btrfs filesystem (relative to its top)."""
    output = filesystem.run('btrfs', 'subvolume', 'list', '-o', filesystem.mount_point).stdout
    return sorted(line.split(' path ', 1)[1] for line in output.splitlines())


def is_subvolume(pathname):
    """Check whether a directory on btrfs is a subvolume (its inode number is 256)."""
    return os.stat(pathname).st_ino == 256


def test_btrfs_converts_plain_latest_once(tmp_path):
    """A plain latest (from hard-link snapshots) becomes a subvolume once; older plain snapshots stop changing."""
    source = tmp_path / 'source'
    build_attribute_tree(source)
    with MountedFilesystem('btrfs', tmp_path / 'btrfs') as filesystem:
        latest = filesystem.mount_point / 'backups' / 'latest'
        backups = filesystem.view(latest.parent)
        manifests = {}
        output = backup_and_check(filesystem, source, latest, manifests, '--snapshot-method=hardlink')
        assert 'Using the hardlink snapshot method' in output
        assert not is_subvolume(filesystem.view(latest))
        change_attributes(source, 1)
        output = backup_and_check(filesystem, source, latest, manifests)
        assert output.count('Converting %s into a btrfs subvolume (this happens once)' % latest) == 1
        assert is_subvolume(filesystem.view(latest))
        [plain, converted] = snapshot_names(backups)
        assert not is_subvolume(os.path.join(backups, plain)) and is_subvolume(os.path.join(backups, converted))
        change_attributes(source, 2)
        output = backup_and_check(filesystem, source, latest, manifests)
        assert 'Converting' not in output
        # One rotation removes the plain snapshot (rm) and a subvolume snapshot (btrfs subvolume delete).
        result = filesystem.run_cli('--rotate', *(EXPIRE_ALL_BUT_NEWEST + (latest,)))
        assert result.returncode == 0, result.output
        newest = snapshot_names(backups)
        assert len(newest) == 1
        assert subvolumes(filesystem) == ['backups/%s' % newest[0], 'backups/latest']


def test_btrfs_removes_leftover_subvolumes(tmp_path):
    """Read-only snapshots left behind by an interrupted run are removed with btrfs subvolume delete."""
    source = tmp_path / 'source'
    build_attribute_tree(source)
    with MountedFilesystem('btrfs', tmp_path / 'btrfs') as filesystem:
        latest = filesystem.mount_point / 'backups' / 'latest'
        assert filesystem.run_cli(source, latest).returncode == 0
        for leftover in ('2001-01-01_00-00-00.incomplete', '2001-01-01_00-00-00.removing'):
            filesystem.run('btrfs', 'subvolume', 'snapshot', '-r', latest, latest.parent / leftover)
        result = filesystem.run_cli('--snapshot', source, latest)
        assert result.returncode == 0, result.output
        assert result.output.count('left behind by an interrupted run') == 2
        assert len(snapshot_names(filesystem.view(latest.parent))) == 2
        assert len(subvolumes(filesystem)) == 3


def test_reflink_stops_sharing_with_hardlink_snapshots(tmp_path):
    """On XFS, a latest that shares files with hard-link snapshots (version 1.1) is copied with reflinks once."""
    source = tmp_path / 'source'
    build_attribute_tree(source)
    with MountedFilesystem('xfs', tmp_path / 'xfs') as filesystem:
        latest = filesystem.mount_point / 'backups' / 'latest'
        manifests = {}
        output = backup_and_check(filesystem, source, latest, manifests, '--snapshot-method=hardlink')
        assert 'The snapshots share files with %s and the hardlink method writes it in place' % latest in output
        change_attributes(source, 1)
        output = backup_and_check(filesystem, source, latest, manifests)
        assert 'Using the reflink snapshot method' in output
        assert re.search(r'Copying \S+ with reflinks, because \d+ of its files are hard-linked', output), output
        change_attributes(source, 2)
        output = backup_and_check(filesystem, source, latest, manifests)
        assert 'Copying' not in output


def test_hardlink_method_changes_old_snapshots(tmp_path):
    """The hardlink method (version 1.1's flow) warns, and indeed lets a mode change reach an older snapshot."""
    source = tmp_path / 'source'
    build_attribute_tree(source)
    with MountedFilesystem('tmpfs', tmp_path / 'tmpfs') as filesystem:
        latest = filesystem.mount_point / 'backups' / 'latest'
        for _ in range(2):
            result = filesystem.run_cli('--snapshot-method=hardlink', source, latest)
            assert result.returncode == 0, result.output
            assert 'the next backup changes them in the earlier snapshots too' in result.output
            (source / 'mode').chmod(0o600)
        oldest = snapshot_names(filesystem.view(latest.parent))[0]
        assert os.stat(os.path.join(filesystem.view(latest.parent), oldest, 'mode')).st_mode & 0o777 == 0o600


@pytest.mark.parametrize('method', ['safe-hardlink', 'link-dest', 'hardlink'])
def test_link_limit_fallback(tmp_path, method):
    """Files that already have 65,000 links (ext4's limit) are copied instead of linked, with one warning."""
    source = tmp_path / 'source'
    write_dated(source / 'crowded', b'a file with as many links as ext4 allows')
    write_dated(source / 'group-a', b'a hard-linked group close to the limit')
    os.link(str(source / 'group-a'), str(source / 'group-b'))
    os.link(str(source / 'group-a'), str(source / 'group-c'))
    write_dated(source / 'other', b'an ordinary file')
    os.utime(str(source), (PAST, PAST))
    option = '--snapshot-method=%s' % method
    with MountedFilesystem('ext4', tmp_path / 'ext4') as filesystem:
        latest = filesystem.mount_point / 'backups' / 'latest'
        manifests = {}
        backup_and_check(filesystem, source, latest, manifests, option)
        # Fill up the link counts from a directory beside the snapshots.
        os.mkdir(filesystem.view(filesystem.mount_point / 'links'))
        links = os.open(filesystem.view(filesystem.mount_point / 'links'), os.O_RDONLY)
        files = os.open(filesystem.view(latest), os.O_RDONLY)
        try:
            for name, total in (('crowded', 65000), ('group-a', 64998)):
                for number in range(total - os.stat(name, dir_fd=files).st_nlink):
                    os.link(name, '%s-%i' % (name, number), src_dir_fd=files, dst_dir_fd=links)
                assert os.stat(name, dir_fd=files).st_nlink == total
        finally:
            os.close(links)
            os.close(files)
        output = backup_and_check(filesystem, source, latest, manifests, option)
        assert output.count(LINK_LIMIT_WARNING) == 1, output
        assert '2 file(s) in %s %s' % (latest, LINK_LIMIT_WARNING) in output
        newest = os.path.join(filesystem.view(latest.parent), snapshot_names(filesystem.view(latest.parent))[-1])
        assert os.stat(os.path.join(newest, 'crowded')).st_nlink < 10
        assert os.stat(os.path.join(newest, 'group-c')).st_nlink < 10
        output = backup_and_check(filesystem, source, latest, manifests, option)
        assert LINK_LIMIT_WARNING not in output


def test_ssh_destination_on_btrfs(tmp_path):
    """Over SSH, auto finds btrfs on the remote side, and the snapshots never change."""
    source = tmp_path / 'source'
    build_attribute_tree(source)
    with MountedFilesystem('btrfs', tmp_path / 'btrfs') as filesystem:
        latest = filesystem.mount_point / 'backups' / 'latest'
        backups = filesystem.view(latest.parent)
        with NamespaceSSHServer(tmp_path / 'sshd', filesystem) as server:
            client = ClientHome(tmp_path / 'client-home')
            client.add_host(SERVER_ALIAS, server.port, client.install_key(server.identity_file))
            destination = '%s:%s' % (SERVER_ALIAS, latest)
            manifests = {}
            for round_number in range(2):
                if round_number:
                    change_attributes(source, round_number)
                result = client.run('-v', source, destination)
                assert result.returncode == 0, result
                assert 'Using the btrfs snapshot method' in result.output
                assert check_snapshots(filesystem, latest, manifests) == take_manifest(source)
                names = snapshot_names(backups)
            assert is_subvolume(filesystem.view(latest))
            result = client.run('--rotate', *(EXPIRE_ALL_BUT_NEWEST + (destination,)))
            assert result.returncode == 0, result
            assert subvolumes(filesystem) == ['backups/%s' % names[-1], 'backups/latest']
            wait_until_idle(server)


def test_daemon_post_xfer_on_btrfs(tmp_path):
    """After an rsync daemon's transfer into a plain directory on btrfs, the snapshots are subvolumes (no warning)."""
    with MountedFilesystem('btrfs', tmp_path / 'btrfs') as filesystem:
        latest = filesystem.mount_point / 'module' / 'latest'
        write_dated(pathlib.Path(filesystem.view(latest)) / 'etc' / 'hostname', b'written by the daemon')
        # A module's directory closed to other users, as docs/remote.rst and docs/fleet.rst say.
        os.chmod(filesystem.view(latest.parent), 0o700)
        environment = {'RSYNC_MODULE_PATH': str(latest), 'RSYNC_EXIT_STATUS': '0'}
        for conversions in (1, 0):
            result = filesystem.run_cli('-v', '--snapshot', '--rotate', env=environment)
            assert result.returncode == 0, result.output
            assert 'Using the btrfs snapshot method' in result.output
            assert 'WARNING' not in result.output, result.output
            assert result.output.count('Converting %s into a btrfs subvolume' % latest) == conversions
        assert [is_subvolume(os.path.join(filesystem.view(latest.parent), name))
                for name in snapshot_names(filesystem.view(latest.parent))] == [True, True]


def test_dry_run_probes_nothing(tmp_path):
    """A dry run on XFS tells reflinks from the filesystem type, without writing a trial file."""
    source = tmp_path / 'source'
    build_attribute_tree(source)
    with MountedFilesystem('xfs', tmp_path / 'xfs') as filesystem:
        backups = filesystem.mount_point / 'backups'
        os.mkdir(filesystem.view(backups))
        result = filesystem.run_cli('--dry-run', source, backups / 'latest')
        assert result.returncode == 0, result.output
        assert 'Using the reflink snapshot method' in result.output
        assert os.listdir(filesystem.view(backups)) == []
