"""
The exclusive size of each tree in a backup set: the space that removing it alone would free.

Snapshots share files through hard links, so a snapshot's exclusive size
counts only the inodes whose every link is inside it, like ``du`` does over
the whole set. One walk over every tree of the set finds them: an inode with
one link (or a directory) counts toward its tree at once; an inode with more
links is remembered until the walk ends, and counts toward a tree when all
its links were seen in that tree. Sizes are allocated blocks (``st_blocks``),
which is what the filesystem gets back. Data that btrfs or reflink copies
share at the block level isn't visible this way, so there the sizes are an
upper bound.

This module uses only the standard library: the manifests' program takes it
along to the destination (see :mod:`.agent.manifests`).
"""

import os
import stat

from rsync_system_backup.manifests.scan import walk

BLOCK_SIZE = 512
"""The unit of ``st_blocks``."""


def measure_exclusive_sizes(directory, names, extra_files=None):
    """
    Measure the exclusive size of each tree in a directory, in one walk over all of them.

    :param directory: The directory that holds the trees (a string).
    :param names: The names of the trees to measure (strings); every tree that
                  may share inodes with them should be among them (``latest`` too).
    :param extra_files: A dict from tree name to the names of files in
                        `directory` that are removed with that tree (its
                        manifest), or :data:`None`.
    :returns: A dict from name to bytes (integers).
    """
    sizes = dict.fromkeys(names, 0)
    # (device, inode) -> [bytes, links, the one tree its links were seen in (None for several), links seen]
    shared = {}
    for name in names:
        for _, info, _, _ in walk(os.path.join(directory, name)):
            allocated = info.st_blocks * BLOCK_SIZE
            if info.st_nlink <= 1 or stat.S_ISDIR(info.st_mode):
                sizes[name] += allocated
                continue
            record = shared.get((info.st_dev, info.st_ino))
            if record is None:
                shared[(info.st_dev, info.st_ino)] = [allocated, info.st_nlink, name, 1]
            else:
                if record[2] != name:
                    record[2] = None
                record[3] += 1
    for allocated, links, owner, seen in shared.values():
        if owner is not None and seen >= links:
            sizes[owner] += allocated
    for name, files in (extra_files or {}).items():
        for filename in files:
            info = os.stat(os.path.join(directory, filename), follow_symlinks=False)
            if info.st_nlink <= 1:
                sizes[name] += info.st_blocks * BLOCK_SIZE
    return sizes
