"""Tests of the walk by directory file descriptors (``agent/tree.py``) on the test's own filesystem."""

import errno
import os
import stat

import pytest

from rsync_system_backup.agent import tree
from rsync_system_backup.agent.tree import (
    Tree,
    copy_data,
    copy_directory_attributes,
    copy_entry,
    copy_xattrs,
    is_clean,
    list_names,
    remove_entry,
    walk,
)
from support.trees import take_manifest, write_file


@pytest.fixture
def opened(tmp_path):
    """A :class:`.Tree` of ``tmp_path / 'top'`` with a file, a directory and a symbolic link to a directory."""
    top = tmp_path / 'top'
    write_file(top / 'dir' / 'deep' / 'file', b'deep')
    write_file(top / 'file', b'top')
    os.symlink(str(tmp_path), str(top / 'link'))
    opened = Tree(os.fsencode(str(top)))
    yield opened
    opened.close()


def test_names_that_mean_one_path(opened):
    """Only relative names without empty, . or .. components are looked up."""
    for name in (b'', b'/file', b'file/', b'dir//deep', b'./file', b'dir/../file', b'..'):
        assert not is_clean(name), name
        assert opened.locate(name) is None, name
        assert opened.lstat(name) is None, name
    assert is_clean(b'dir/deep/file')


def test_directories_are_opened_without_following_links(opened):
    """A symbolic link or a file is no directory; what isn't there is no entry."""
    assert opened.directory(b'dir/deep') is not None
    assert opened.directory(b'link') is None
    assert opened.directory(b'link/top') is None
    assert opened.directory(b'file') is None
    assert opened.lstat(b'link/top/file') is None
    assert opened.lstat(b'dir/missing') is None
    assert stat.S_ISLNK(opened.lstat(b'link').st_mode)
    assert opened.lstat(b'dir/deep/file').st_size == 4


def test_many_directories_stay_under_the_limit(tmp_path):
    """Past :data:`MOST_OPEN` open directories the tree closes them and starts again; lookups still work."""
    for index in range(tree.MOST_OPEN + 20):
        (tmp_path / ('dir-%03i' % index)).mkdir()
    opened = Tree(str(tmp_path))
    try:
        for index in range(tree.MOST_OPEN + 20):
            assert opened.directory(b'dir-%03i' % index) is not None
            assert len(opened.opened) <= tree.MOST_OPEN + 2
    finally:
        opened.close()


def test_forget_closes_what_is_below(opened):
    """Forgetting a directory closes it and what was opened below it, and nothing beside it."""
    for name in (b'dir', b'dir/deep'):
        opened.directory(name)
    opened.forget(b'dir')
    assert sorted(opened.opened) == [b'']
    assert opened.directory(b'dir/deep') is not None


def test_make_directories(tmp_path, opened):
    """Missing directories are made closed to others; a file in the way stops it."""
    made = opened.make_directories(b'dir/new/newer')
    assert made == opened.directory(b'dir/new/newer')
    assert stat.S_IMODE(os.stat(str(tmp_path / 'top' / 'dir' / 'new')).st_mode) == 0o700
    assert opened.make_directories(b'file/below') is None
    assert opened.make_directories(b'link') is None
    assert opened.make_directories(b'') == opened.top


def test_remove_entry_removes_a_tree_without_following_links(tmp_path, opened):
    """A directory goes with everything in it; a symbolic link goes, not what it points to."""
    remove_entry(opened.top, b'link')
    remove_entry(opened.top, b'dir')
    assert sorted(list_names(opened.top)) == [b'file']
    assert (tmp_path / 'top' / 'file').exists()


def test_walk_goes_parents_first(opened):
    """Every entry once, sorted, a directory before what it holds; a symbolic link isn't entered."""
    assert [relative for directory, name, relative, info in walk(opened.top)] == \
        [b'dir', b'dir/deep', b'dir/deep/file', b'file', b'link']


def test_copy_entry_keeps_attributes(tmp_path):
    """A file, a symbolic link and a FIFO are copied with their owner, mode, xattrs and times."""
    source, target = tmp_path / 'source', tmp_path / 'target'
    write_file(source / 'file', b'content', mode=0o640, owner=(1234, 5678), mtime=1400000000)
    os.setxattr(str(source / 'file'), 'user.note', b'kept')
    os.symlink('file', str(source / 'link'))
    os.lchown(str(source / 'link'), 1234, 5678)
    os.mkfifo(str(source / 'fifo'), 0o604)
    os.utime(str(source / 'fifo'), (1400000001, 1400000001))
    target.mkdir()
    directory, copies = os.open(str(source), os.O_RDONLY), os.open(str(target), os.O_RDONLY)
    try:
        for name in (b'file', b'link', b'fifo'):
            copy_entry(directory, name, os.lstat(name, dir_fd=directory), copies, name)
    finally:
        os.close(directory)
        os.close(copies)
    assert entries(target) == entries(source)
    assert os.lstat(str(target / 'file')).st_ino != os.lstat(str(source / 'file')).st_ino


def entries(root):
    """Give the manifest of what a directory holds (without the directory itself)."""
    return {name: value for name, value in take_manifest(root).items() if name != b'.'}


def test_copy_entry_refuses_a_file_that_changed(tmp_path):
    """A file replaced since it was looked at isn't copied."""
    write_file(tmp_path / 'file', b'old')
    info = os.lstat(str(tmp_path / 'file'))
    # The old inode stays, so the new file can't get its number.
    os.rename(str(tmp_path / 'file'), str(tmp_path / 'old'))
    write_file(tmp_path / 'file', b'new')
    directory = os.open(str(tmp_path), os.O_RDONLY)
    try:
        with pytest.raises(OSError) as raised:
            copy_entry(directory, b'file', info, directory, b'copy')
    finally:
        os.close(directory)
    assert raised.value.errno == errno.ESTALE
    assert sorted(os.listdir(str(tmp_path))) == ['file', 'old']


def test_copy_entry_keeps_its_own_owner_without_the_right_to_give_it(tmp_path, monkeypatch):
    """Where this process may not give a file away, the copy is its own."""
    def refuse(*arguments, **options):
        raise PermissionError(errno.EPERM, "Operation not permitted")
    write_file(tmp_path / 'file', b'mine', owner=(1234, 5678))
    os.symlink('file', str(tmp_path / 'link'))
    monkeypatch.setattr(os, 'fchown', refuse)
    monkeypatch.setattr(os, 'chown', refuse)
    directory = os.open(str(tmp_path), os.O_RDONLY)
    try:
        for name in (b'file', b'link'):
            copy_entry(directory, name, os.lstat(name, dir_fd=directory), directory, name + b'.copy')
        copy_directory_attributes(directory, directory)
    finally:
        os.close(directory)
    assert os.lstat(str(tmp_path / 'file.copy')).st_uid == os.getuid()
    assert os.readlink(str(tmp_path / 'link.copy')) == 'file'


def test_copy_data_keeps_holes_and_size(tmp_path):
    """A sparse file's copy has the same content and size, and no more data than the original."""
    with open(str(tmp_path / 'sparse'), 'wb') as handle:
        handle.write(b'start')
        handle.seek(8 << 20)
        handle.write(b'middle')
        handle.truncate(16 << 20)
    size = os.stat(str(tmp_path / 'sparse')).st_size
    copied = copy_file(tmp_path, 'sparse', size)
    assert copied == (tmp_path / 'sparse').read_bytes()
    assert os.stat(str(tmp_path / 'copy')).st_blocks <= os.stat(str(tmp_path / 'sparse')).st_blocks


def test_copy_data_without_seek_data(tmp_path, monkeypatch):
    """A filesystem without SEEK_DATA gets a plain copy; a file that shrank meanwhile is copied as it is."""
    def refuse(*arguments):
        raise OSError(errno.EINVAL, "Invalid argument")
    write_file(tmp_path / 'file', b'x' * 100)
    monkeypatch.setattr(os, 'lseek', refuse)
    assert copy_file(tmp_path, 'file', 100) == b'x' * 100
    os.unlink(str(tmp_path / 'copy'))
    assert copy_file(tmp_path, 'file', 150) == b'x' * 100 + b'\0' * 50


def copy_file(directory, name, size):
    """Copy `name` in `directory` to ``copy`` with :func:`copy_data()` and give the copy's content."""
    source = os.open(str(directory / name), os.O_RDONLY)
    target = os.open(str(directory / 'copy'), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        copy_data(source, target, size)
    finally:
        os.close(source)
        os.close(target)
    return (directory / 'copy').read_bytes()


def test_xattrs_are_made_equal(tmp_path, monkeypatch):
    """The copy loses the xattrs the original lacks and gets the original's; one that can't be set is left out."""
    for name in ('original', 'copy'):
        write_file(tmp_path / name, b'')
    os.setxattr(str(tmp_path / 'original'), 'user.wanted', b'1')
    os.setxattr(str(tmp_path / 'copy'), 'user.unwanted', b'2')
    original, copy = (os.open(str(tmp_path / name), os.O_RDONLY) for name in ('original', 'copy'))
    try:
        copy_xattrs(original, copy)
        assert os.listxattr(copy) == ['user.wanted']
        os.setxattr(copy, 'user.unwanted', b'2')
        monkeypatch.setattr(os, 'setxattr', refuse_xattr)
        monkeypatch.setattr(os, 'removexattr', refuse_xattr)
        copy_xattrs(original, copy)
        assert sorted(os.listxattr(copy)) == ['user.unwanted', 'user.wanted']
    finally:
        os.close(original)
        os.close(copy)


def refuse_xattr(*arguments):
    """Stand in for :func:`os.setxattr` and :func:`os.removexattr` on a filesystem that refuses them."""
    raise OSError(errno.EOPNOTSUPP, "Operation not supported")
