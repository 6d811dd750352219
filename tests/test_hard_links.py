"""
Tests of :mod:`rsync_system_backup.snapshots.hard_links`: files near the link limit get fresh copies, safely.

The backed-up user controls every name inside ``latest`` and the snapshots.
These tests plant symbolic links there under every name the program uses for
temporary files, pointing at a sentinel file outside the backup, and run real
backups on a real ext4 filesystem (in a private mount namespace, see
:mod:`support.loop_filesystems`) through the path that copies files with too
many hard links: the sentinel never changes.
"""

import os

from support.loop_filesystems import MountedFilesystem
from support.trees import snapshot_names, write_file

LINK_LIMIT_WARNING = 'have too many hard links to be linked again'
"""What the warning about the link limit says."""

PLANTED_NAMES = (
    '.rsync-system-backup', '.rsync-system-backup.copy', '.rsync-system-backup.lock', '.rsync-system-backup.new',
    '.rsync-system-backup.old', '.rsync-system-backup.probe', '.rsync-system-backup.tmp', '.incomplete',
    '.removing', 'latest', 'copy', 'file',
)
"""Names of the program's temporary and bookkeeping files, and of the files it makes in private directories."""

SENTINEL_TEXT = b'nobody may write this file\n'
"""What the sentinel holds."""


def plant_links(directory, target):
    """
    Create a symbolic link under each of :data:`PLANTED_NAMES` in a directory.

    :param directory: The directory (a path that exists).
    :param target: What the links point at (a path).
    """
    for name in PLANTED_NAMES:
        os.symlink(str(target), str(directory / name))


def fill_up_links(files_directory, name, links_directory, total):
    """
    Give a file hard links in another directory until it has a number of them.

    :param files_directory: The directory that holds the file (a string).
    :param name: The file's name (a string).
    :param links_directory: The directory for the new links (a string that exists).
    :param total: The link count to reach (an integer).
    """
    files = os.open(files_directory, os.O_RDONLY)
    links = os.open(links_directory, os.O_RDONLY)
    try:
        for number in range(total - os.stat(name, dir_fd=files).st_nlink):
            os.link(name, '%s-%i' % (name, number), src_dir_fd=files, dst_dir_fd=links)
    finally:
        os.close(files)
        os.close(links)


def test_planted_links_are_never_followed(tmp_path):
    """Symbolic links named like the program's temporary files, in latest and the snapshots, are never followed."""
    sentinel = tmp_path / 'sentinel'
    sentinel.write_bytes(SENTINEL_TEXT)
    before = os.stat(str(sentinel))
    source = tmp_path / 'source'
    home = source / 'home' / 'user'
    write_file(home / 'crowded', b'the user\'s file, with as many links as ext4 allows', mtime=1500000000)
    plant_links(source, sentinel)
    plant_links(home, sentinel)
    with MountedFilesystem('ext4', tmp_path / 'ext4') as filesystem:
        latest = filesystem.mount_point / 'backups' / 'latest'
        result = filesystem.run_cli(source, latest)
        assert result.returncode == 0, result.output
        links = filesystem.mount_point / 'links'
        os.mkdir(filesystem.view(links))
        fill_up_links(filesystem.view(latest / 'home' / 'user'), 'crowded', filesystem.view(links), 65000)
        for run in range(2):
            result = filesystem.run_cli(source, latest)
            assert result.returncode == 0, result.output
            assert sentinel.read_bytes() == SENTINEL_TEXT, result.output
            assert (LINK_LIMIT_WARNING in result.output) == (run == 0), result.output
        backups = filesystem.view(latest.parent)
        assert snapshot_names(backups)
        for tree in ['latest'] + snapshot_names(backups):
            for directory in (os.path.join(backups, tree), os.path.join(backups, tree, 'home', 'user')):
                for name in PLANTED_NAMES:
                    assert os.readlink(os.path.join(directory, name)) == str(sentinel)
        assert not [name for name in os.listdir(backups) if name.startswith('.rsync-system-backup.tmp')]
    after = os.stat(str(sentinel))
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
