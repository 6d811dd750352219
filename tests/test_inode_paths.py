"""
Tests of ``transfer/inode_paths.py``: the names of a hard-linked inode, from the kernel, on a real btrfs image.

The image is mounted in a private mount namespace (see
:mod:`support.loop_filesystems`); this process reaches it through
``/proc/PID/root``, and the answers are compared with what
``btrfs inspect-internal inode-resolve`` says about the same inode.
"""

import errno
import os
import subprocess

import pytest

from rsync_system_backup.transfer.inode_paths import inode_paths
from support.loop_filesystems import MountedFilesystem

NAMES = [b'top', b'dir/second', b'dir/deeper/with\nnewline', b'dir/latin1-\xe9', b'dir/with space']
"""The names of one file: with a newline, a byte that isn't UTF-8 and a blank among them."""


@pytest.fixture
def subvolume(tmp_path):
    """A btrfs subvolume in a private mount namespace: the filesystem and the subvolume's path there."""
    with MountedFilesystem('btrfs', tmp_path / 'btrfs') as filesystem:
        path = filesystem.mount_point / 'subvolume'
        filesystem.run('btrfs', '-q', 'subvolume', 'create', path)
        yield filesystem, path


def resolve_with_btrfs(filesystem, path, inode):
    """The paths that ``btrfs inspect-internal inode-resolve`` prints for an inode (a sorted list of bytes)."""
    output = subprocess.run(filesystem.command('btrfs', 'inspect-internal', 'inode-resolve', str(inode), path),
                            stdout=subprocess.PIPE, check=True).stdout
    return sorted(line[len(os.fsencode(str(path))) + 1:] for line in output.splitlines())


def test_every_name_of_a_hard_linked_file(subvolume):
    """Every name comes back as bytes, relative to the subvolume; in a read-only snapshot too."""
    filesystem, path = subvolume
    top = os.fsencode(filesystem.view(path))
    os.makedirs(os.path.join(top, b'dir', b'deeper'))
    first = os.path.join(top, NAMES[0])
    with open(first, 'wb') as handle:
        handle.write(b'shared content')
    for name in NAMES[1:]:
        os.link(first, os.path.join(top, name))
    with open(os.path.join(top, b'alone'), 'wb') as handle:
        handle.write(b'one name')
    inode = os.lstat(first).st_ino
    assert sorted(inode_paths(top, inode)) == sorted(NAMES)
    assert inode_paths(top, os.lstat(os.path.join(top, b'alone')).st_ino) == [b'alone']
    filesystem.run('btrfs', '-q', 'subvolume', 'snapshot', '-r', path, filesystem.mount_point / 'snapshot')
    snapshot = os.fsencode(filesystem.view(filesystem.mount_point / 'snapshot'))
    assert sorted(inode_paths(snapshot, inode)) == sorted(NAMES)
    # What btrfs-progs says, for the names without a newline (it prints one name a line).
    plain = [name for name in NAMES if b'\n' not in name]
    assert [name for name in resolve_with_btrfs(filesystem, path, inode) if name in plain] == sorted(plain)


def test_more_names_than_the_kernel_gives(subvolume):
    """Names that don't fit in the kernel's answer are an error (the send plan then falls back), never a part."""
    filesystem, path = subvolume
    top = os.fsencode(filesystem.view(path))
    first = os.path.join(top, b'f' * 200)
    open(first, 'wb').close()
    for number in range(400):
        os.link(first, os.path.join(top, b'%03d-' % number + b'n' * 200))
    with pytest.raises(OSError) as raised:
        inode_paths(top, os.lstat(first).st_ino)
    assert raised.value.errno == errno.ENAMETOOLONG


def test_not_btrfs(tmp_path):
    """On another filesystem the ioctl fails with an OSError (the send plan turns it into a fallback)."""
    with pytest.raises(OSError):
        inode_paths(os.fsencode(str(tmp_path)), os.lstat(str(tmp_path)).st_ino)
