"""
Trees on disk for the tests: making sources and snapshots, reading them back, and their manifests.

A manifest (:func:`take_manifest()`) records every detail of a tree that a
backup must keep, so that one comparison checks a copy or a snapshot; for
the small text trees of the remote tests, :func:`read_tree()` gives just the
contents, to compare with what :func:`write_tree()` wrote.
"""

import hashlib
import os
import re
import stat
import subprocess

SNAPSHOT_NAME = re.compile(r'^\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}$')
"""The name of a complete snapshot."""

BOOKKEEPING_FILES = ('.rsync-system-backup', '.rsync-system-backup.lock', '.rsync-system-backup.access')
"""The marker and lock files, and the record of the warning about an open directory, kept next to ``latest``."""

MANIFEST_DIRECTORY = '.rsync-system-backup.manifests'
"""The directory beside the snapshots that holds their manifests (``SNAPSHOT.manifest.gz``)."""

XFS_ACL_ATTRIBUTES = ('trusted.SGI_ACL_FILE', 'trusted.SGI_ACL_DEFAULT')
"""The extended attributes in which XFS shows its ACLs a second time (besides ``system.posix_acl_*``)."""

AWKWARD_SOURCE = {
    'etc/hostname': 'test-host\n',
    'home/alice/notes with spaces.txt': 'notes\n',
    "home/alice/it's \"quoted\" $HOME; true": 'awkward\n',
    'home/alice/new\nline': 'newline\n',
    'var/data.bin': 'x' * 5000,
}
"""The files of :func:`make_source()`: relative pathnames (with characters a shell would interpret) and contents."""

PAST = 1500000000
"""A modification time in the past (rsync compares the times of directories and symbolic links to the second)."""

ODD_NAME = b'odd\nname \\#101 => one -> two \xe9'
"""A name with a newline, rsync's escape character, both of ``%L``'s arrows and a byte that isn't UTF-8."""


def write_file(path, content, mode=None, owner=None, mtime=None):
    """
    Write a file (and the directories it needs), optionally with a mode, owner and modification time.

    :param path: The file's pathname (a path).
    :param content: The content (bytes).
    :param mode: The permission bits (an integer), or :data:`None` for the default.
    :param owner: A tuple of user and group id, or :data:`None` to leave them as they are.
    :param mtime: The modification (and access) time in seconds, or :data:`None` for now.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    if owner is not None:
        os.chown(str(path), *owner)
    if mode is not None:
        path.chmod(mode)
    if mtime is not None:
        os.utime(str(path), (mtime, mtime))


def write_dated(path, content, mode=0o644, owner=(0, 0), mtime=PAST):
    """
    Write a file as the snapshot tests' sources need it: by default mode 644, owned by root, modified at :data:`PAST`.

    :param path: The file's pathname (a path).
    :param content: The content (bytes).
    :param mode: The permission bits (an integer).
    :param owner: A tuple of user and group id.
    :param mtime: The modification (and access) time in seconds.
    """
    write_file(path, content, mode=mode, owner=owner, mtime=mtime)


def settle(root):
    """
    Give every directory, symbolic link and fifo below a tree (and the tree itself) the modification time :data:`PAST`.

    :param root: The tree's top directory (a path).
    """
    for directory, subdirectories, files in os.walk(str(root)):
        for name in subdirectories + files:
            pathname = os.path.join(directory, name)
            if not os.path.isfile(pathname) or os.path.islink(pathname):
                os.utime(pathname, (PAST, PAST), follow_symlinks=False)
    os.utime(str(root), (PAST, PAST))


def make_system_tree(root):
    """
    Create a small system with every kind of entry a system backup must keep as it is.

    :param root: The directory to create (a path).
    :returns: `root`.

    It holds ``etc/hostname`` (modified in 2001), ``etc/fstab`` and its hard
    link ``etc/fstab.link``, ``etc/shadow`` (mode 640, owned by 0:42), a
    dangling symbolic link ``etc/dangling-link``, files of an owner without a
    name (12345:23456) in ``home/alice`` (``notes`` with the extended
    attribute ``user.tag``, ``docs/report`` with an ACL for user 23456), a
    setuid program ``usr/bin/tool`` with a symbolic link ``usr/bin/tool-link``
    and a sparse file of 8 MiB, ``var/lib/image``.
    """
    write_file(root / 'etc' / 'hostname', b'system-test\n', mtime=1000000000)
    write_file(root / 'etc' / 'fstab', b'UUID=1234 / ext4 defaults 0 1\n', mode=0o644)
    write_file(root / 'etc' / 'shadow', b'root:*:1:0:99999:7:::\n', mode=0o640, owner=(0, 42))
    os.link(str(root / 'etc' / 'fstab'), str(root / 'etc' / 'fstab.link'))
    os.symlink('/nonexistent/target', str(root / 'etc' / 'dangling-link'))
    write_file(root / 'home' / 'alice' / 'notes', b'notes\n', owner=(12345, 23456), mode=0o600)
    write_file(root / 'home' / 'alice' / 'docs' / 'report', b'report\n', owner=(12345, 23456))
    os.setxattr(str(root / 'home' / 'alice' / 'notes'), 'user.tag', b'important')
    subprocess.check_call(['setfacl', '-m', 'u:23456:r', str(root / 'home' / 'alice' / 'docs' / 'report')])
    write_file(root / 'usr' / 'bin' / 'tool', b'#!/bin/sh\n', mode=0o4755)
    os.symlink('tool', str(root / 'usr' / 'bin' / 'tool-link'))
    (root / 'var' / 'lib').mkdir(parents=True)
    with open(str(root / 'var' / 'lib' / 'image'), 'wb') as handle:
        handle.seek(8 * 1024 * 1024)
        handle.write(b'end')
    return root


def make_bulky_source(root, files, size, hostname=None):
    """
    Create a source of random files (``file-000``, ``file-001``, ...), so that a slowed transfer takes a while.

    :param root: The directory to create (a path; it may exist).
    :param files: The number of files (an integer).
    :param size: The size of each file in bytes (an integer).
    :param hostname: The contents of an ``etc/hostname`` to add (a string), or :data:`None` for none.
    :returns: `root`.
    """
    root.mkdir(parents=True, exist_ok=True)
    if hostname is not None:
        write_file(root / 'etc' / 'hostname', hostname.encode())
    for number in range(files):
        write_file(root / ('file-%03i' % number), os.urandom(size))
    return root


def write_tree(directory, contents):
    """
    Create text files below a directory (and the directories they need).

    :param directory: The directory (a path; it may exist).
    :param contents: A dict from relative pathname to contents (strings).
    :returns: `contents`.
    """
    for name, text in contents.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return contents


def make_source(directory):
    """
    Create a small source tree with awkward names (:data:`AWKWARD_SOURCE`).

    :param directory: The directory to create (a path).
    :returns: A dict from relative pathname to contents (what :func:`read_tree()` returns).
    """
    return write_tree(directory, dict(AWKWARD_SOURCE))


class SourceTree(object):

    """A source tree made by :func:`make_source()`, which renders as its pathname."""

    def __init__(self, directory):
        """
        Create the tree.

        :param directory: The directory to create (a path).
        """
        self.path = directory
        self.contents = make_source(directory)

    def __str__(self):
        """The tree's pathname."""
        return str(self.path)


def read_tree(directory):
    """
    Read the regular files below a directory.

    :param directory: A directory (a string or path).
    :returns: A dict from relative pathname to contents.
    """
    tree = {}
    for root, _, files in os.walk(str(directory)):
        for name in files:
            pathname = os.path.join(root, name)
            with open(pathname) as handle:
                tree[os.path.relpath(pathname, str(directory))] = handle.read()
    return tree


def take_manifest(root, times='exact'):
    """
    Describe every entry of a tree in every detail a backup must keep.

    :param root: The tree's top directory (a string or path).
    :param times: How to record modification times: ``'exact'`` (in
                  nanoseconds, for every entry), ``'seconds'`` (in seconds,
                  and none for directories: rsync leaves the times of
                  directories, and of entries made in the second of the
                  backup, as it finds them, so a tree made just before a
                  backup compares only this way) or :data:`None` (none, to
                  compare trees made at different moments).
    :returns: A dict from relative path (bytes; ``.`` for the top) to a
              tuple: type, mode, owner, group, modification time (or
              :data:`None`), a digest of the content (or the target of a
              symbolic link), the extended attributes (ACLs included, as
              ``system.posix_acl_*``; see :data:`XFS_ACL_ATTRIBUTES`) and, for
              regular files, the first path of the group of paths in the tree
              that share its inode. Hard links that leave the tree (to
              snapshots, say) don't count.
    """
    root = os.path.normpath(os.fsencode(str(root)))
    start = len(os.path.join(root, b''))  # What os.path.relpath() would cut off (it is slow on big trees).
    manifest = {}
    groups = {}
    for directory, subdirectories, files in os.walk(root):
        for pathname in [directory] + [os.path.join(directory, name) for name in subdirectories + files]:
            relative = pathname[start:] if pathname != root else b'.'
            info = os.lstat(pathname)
            if stat.S_ISLNK(info.st_mode):
                content = os.readlink(pathname)
            elif stat.S_ISREG(info.st_mode):
                with open(pathname, 'rb') as handle:
                    content = hashlib.sha256(handle.read()).hexdigest()
                groups.setdefault(info.st_ino, []).append(relative)
            else:
                content = None
            attributes = tuple(sorted((name, os.getxattr(pathname, name, follow_symlinks=False))
                                      for name in os.listxattr(pathname, follow_symlinks=False)
                                      if name not in XFS_ACL_ATTRIBUTES))
            manifest[relative] = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid,
                                  modification_time(info, times), content, attributes)
    for paths in groups.values():
        first = min(paths)  # Once per inode: a file with 30,000 names made this quadratic (40 seconds a manifest).
        for path in paths:
            manifest[path] += (first,)
    return manifest


def modification_time(info, times):
    """
    Give an entry's modification time as :func:`take_manifest()` records it.

    :param info: The entry's :func:`os.lstat()` result.
    :param times: See :func:`take_manifest()`.
    :returns: An integer or :data:`None`.
    """
    if times == 'exact':
        return info.st_mtime_ns
    if times == 'seconds' and not stat.S_ISDIR(info.st_mode):
        return int(info.st_mtime)
    return None


def list_names(directory):
    """
    List the names in a directory, sorted, without the program's marker and lock files and the manifests' directory.

    :param directory: The directory (a string or path).
    :returns: A list of strings.
    """
    return sorted(name for name in os.listdir(str(directory))
                  if name not in BOOKKEEPING_FILES and name != MANIFEST_DIRECTORY)


def snapshot_names(directory, leftovers=False):
    """
    List the snapshots in a directory, oldest first.

    :param directory: The directory (a string or path).
    :param leftovers: :data:`True` to list every name that starts with a
                      digit: also version 1.1's snapshot names and what an
                      interrupted run left (``*.incomplete``, ``*.removing``).
    :returns: A list of strings.
    """
    return sorted(name for name in os.listdir(str(directory))
                  if (name[:1].isdigit() if leftovers else SNAPSHOT_NAME.match(name)))


def make_snapshots(directory, names):
    """
    Create fake snapshots (directories with one file) for rotation to work on.

    :param directory: The directory to create them in (a path; it may not exist yet).
    :param names: Snapshot names (strings).
    """
    for name in names:
        (directory / name).mkdir(parents=True)
        (directory / name / 'file').write_text(name)


def flip_byte(pathname, offset=0):
    """
    Change one byte of a file in place, keeping its size and modification time (as a failing disk would).

    :param pathname: The file (a string).
    :param offset: Where the byte is (an integer).
    """
    info = os.stat(pathname)
    with open(pathname, 'r+b') as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xff]))
    os.utime(pathname, ns=(info.st_atime_ns, info.st_mtime_ns))


def manifest_path(directory, name):
    """
    Give the pathname of a snapshot's manifest.

    :param directory: The directory that holds the snapshot (a path).
    :param name: The snapshot's name (a string).
    :returns: A path.
    """
    return directory / MANIFEST_DIRECTORY / ('%s.manifest.gz' % name)


def check_snapshots(filesystem, latest, manifests):
    """
    Check every older snapshot against its manifest and record the newest one's manifest.

    :param filesystem: The :class:`support.loop_filesystems.MountedFilesystem` that holds the snapshots.
    :param latest: The pathname of ``latest`` inside the filesystem's namespace (a path).
    :param manifests: A dict from snapshot name to manifest (:func:`take_manifest()`), updated in place.
    :returns: The newest snapshot's manifest.
    """
    backups = filesystem.view(latest.parent)
    names = snapshot_names(backups)
    for name in names[:-1]:
        assert take_manifest(os.path.join(backups, name)) == manifests[name], "snapshot %s changed" % name
    manifests[names[-1]] = take_manifest(os.path.join(backups, names[-1]))
    return manifests[names[-1]]
