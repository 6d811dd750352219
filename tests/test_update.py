"""Tests of the early copy's update (``agent/update.py``), run as a program in this process."""

import io
import os
import subprocess

from rsync_system_backup.agent import update
from rsync_system_backup.backup_set.private_directory import PRIVATE_PREFIX
from support.trees import take_manifest, write_file


def run_update(latest, copy, names):
    """Run the program on two trees with the names (bytes) on its input; give its exit code and messages."""
    stderr = io.StringIO()
    code = update.main([str(latest), str(copy), PRIVATE_PREFIX], io.BytesIO(b''.join(name + b'\0' for name in names)),
                       io.BytesIO(), stderr, None)
    return code, stderr.getvalue()


def link_copy(latest, copy):
    """Make the copy that the update starts from: ``cp --archive --link``."""
    subprocess.run(['cp', '--archive', '--link', str(latest), str(copy)], check=True)


def inodes(root):
    """Map the relative path of every non-directory below `root` to its inode."""
    return {os.path.relpath(os.path.join(directory, name), str(root)): os.lstat(os.path.join(directory, name)).st_ino
            for directory, subdirectories, files in os.walk(str(root)) for name in files}


def test_copy_becomes_what_latest_is(tmp_path):
    """Kinds that change, trees that go, new files and directories: the copy is cp --archive --link of latest."""
    latest, copy = tmp_path / 'latest', tmp_path / 'copy'
    write_file(latest / 'file-becomes-tree', b'file', mtime=1400000000)
    write_file(latest / 'tree-becomes-file' / 'deep' / 'file', b'tree', mtime=1400000001)
    write_file(latest / 'gone' / 'file', b'gone', mtime=1400000002)
    write_file(latest / 'same', b'same', mtime=1400000003)
    link_copy(latest, copy)
    os.unlink(str(latest / 'file-becomes-tree'))
    write_file(latest / 'file-becomes-tree' / 'inner', b'inner', mtime=1400000010)
    subprocess.run(['rm', '-r', str(latest / 'tree-becomes-file'), str(latest / 'gone')], check=True)
    write_file(latest / 'tree-becomes-file', b'now a file', mtime=1400000011)
    write_file(latest / 'new' / 'directory' / 'file', b'new', mtime=1400000012)
    os.chmod(str(latest / 'new'), 0o751)
    os.setxattr(str(latest), 'user.top', b'changed')
    os.utime(str(latest), ns=(1300000000, 1300000000123456789))
    names = [b'file-becomes-tree', b'file-becomes-tree/inner', b'tree-becomes-file', b'tree-becomes-file/deep',
             b'tree-becomes-file/deep/file', b'gone', b'gone/file', b'new', b'new/directory', b'new/directory/file',
             b'same']
    assert run_update(latest, copy, names) == (0, '')
    assert take_manifest(copy) == take_manifest(latest)
    assert inodes(copy) == inodes(latest)
    assert sorted(os.listdir(str(tmp_path))) == ['copy', 'latest']


def test_names_that_lead_nowhere_are_left_alone(tmp_path):
    """Names that aren't clean, or lead through a symbolic link or a file of the copy, change nothing there."""
    latest, copy, outside = tmp_path / 'latest', tmp_path / 'copy', tmp_path / 'outside'
    write_file(latest / 'dir' / 'file', b'new content')
    write_file(latest / 'file', b'file')
    write_file(outside / 'file', b'outside')
    write_file(copy / 'file', b'file')
    os.symlink(str(outside), str(copy / 'dir'))
    before = take_manifest(outside)
    assert run_update(latest, copy, [b'../outside/file', b'/file', b'dir/file', b'file/below', b'./file']) == (0, '')
    assert take_manifest(outside) == before
    assert os.path.islink(str(copy / 'dir'))
    assert (copy / 'file').read_bytes() == b'file'


def test_failure_is_reported(tmp_path):
    """When the copy is missing the update fails with one message, and leaves no private directory."""
    write_file(tmp_path / 'latest' / 'file', b'file')
    code, message = run_update(tmp_path / 'latest', tmp_path / 'copy', [b'file'])
    assert code == 1
    assert message == "Failed to bring %s up to date: [Errno 2] No such file or directory: b'%s'\n" % (
        tmp_path / 'copy', tmp_path / 'copy')
    assert sorted(os.listdir(str(tmp_path))) == ['latest']
