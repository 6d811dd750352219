#!/usr/bin/env python3
"""
Differential testing: random trees backed up by the command and by plain rsync in place, compared after every run.

For each seed (a :class:`random.Random` seed, so that a seed always makes the
same trees and the same changes), :class:`SeedRun` builds a random source tree
(:class:`TreeBuilder`: files, empty and sparse files, nested directories,
symbolic links with relative, absolute, dangling and hostile targets, FIFOs,
device nodes, hard-link groups across directories (of symbolic links, FIFOs
and devices too), random modes, owners, groups, ``user.*`` xattrs, POSIX ACLs
and modification times, names with newlines, non-UTF-8 bytes, rsync's arrows
and comment characters, names made of a sibling's name and an arrow, and the
structures that a non-root user could plant to subvert the backup) and then,
for a few rounds, runs::

    rsync-system-backup --disable-notifications --backup --snapshot [--exclude=PATTERN ...] SOURCE DEST/latest

on a real filesystem (a tmpfs or an ext4 image, mounted in a private mount
namespace, see :mod:`support.loop_filesystems`), next to an *oracle*: a
directory beside ``DEST`` that plain rsync updates in place from the same
source with the same excludes (:data:`ORACLE_OPTIONS`). After every run it
checks that the command succeeded, that ``latest`` equals the oracle, that
the new snapshot equals ``latest``, that its manifest (built from the
previous one and the transfer's changes, from the second round on) equals a
walk of the whole snapshot, and that every older snapshot still equals
the description taken right after it was made; then :class:`Mutator` changes
the source at random (contents, modes, owners, xattrs, ACLs, times, hard-link
groups joined and split, directories that become files and files that become
directories, whole trees deleted, symbolic links retargeted, renames,
deletions, new entries, planted links, excludes added and dropped) for the
next round. Trees are described (:func:`describe_tree()`) by walking them with
:func:`os.lstat()` and bytes paths, never following a link; the comparison
(:func:`compare_trees()`) covers names, kinds, modes, owners, contents,
link targets, device numbers, xattrs (ACLs included), hard-link groups and
the modification times of everything but directories. The modification times
of directories are compared too, but reported separately, as notes that don't
fail a run.

The rotation step is left out (``--backup --snapshot``): the default scheme
keeps one snapshot per hour, so the rounds' snapshots would be rotated away
before they could be checked.

The test suite runs a fixed list of seeds (``tests/test_differential.py``);
the long mode runs random seeds for as long as asked::

    python tests/support/differential.py --filesystem tmpfs --runs 500
    python tests/support/differential.py --filesystem ext4 --seconds 3600
    python tests/support/differential.py --filesystem ext4 --seed 1234

It prints one line per seed and, for a failing one, the seed, the round,
what the round changed and the first differences; it exits with code 1 when
any seed failed (after the first failure, unless ``--keep-going``). Every
seed that fails belongs in the test suite's list. ``--help`` lists the other
options (the number of backups per seed, the differences of directory
times, the scratch directory). It needs root, ``unshare``,
``nsenter`` and ``mkfs.ext4``. The command runs with this Python and the
package that it imports, from a directory outside the checkout, so setting
``$PYTHONPATH`` to another checkout tests that one.
"""

import argparse
import collections
import errno
import hashlib
import os
import pathlib
import random
import re
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import time

if __name__ == '__main__':
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from support.cli import command_environment, command_line  # noqa: E402
from support.loop_filesystems import MountedFilesystem  # noqa: E402
from support.trees import SNAPSHOT_NAME, XFS_ACL_ATTRIBUTES, manifest_path  # noqa: E402
from rsync_system_backup.manifests.format import format_entry, read_entry_lines  # noqa: E402
from rsync_system_backup.manifests.scan import scan_tree  # noqa: E402

ORACLE_OPTIONS = ('-aHAX', '--numeric-ids', '--delete', '--delete-excluded',
                  '--filter=Hx trusted.SGI_ACL_*', '--filter=Px trusted.SGI_ACL_*')
"""
The options of the oracle: plain rsync, in place, with everything the
command keeps. They are spelled out here, not taken from the package, so that
the oracle stays independent of the code under test.

The two filters are the command's own, for XFS's copies of the ACLs; there
are no such attributes on tmpfs and ext4, but any xattr filter changes how
rsync sets ACLs: without one, ``rsync -aAX`` gives a directory with the
sticky bit and an ACL with a mask the owning group's entry ``---`` (where
the source has ``rwx``), with one it copies the ACL exactly. The oracle
takes them so that this quirk of rsync's doesn't count as a difference.
"""

OWNERS = (0, 0, 0, 1000, 12345, 65534)
"""The user and group ids that entries get (numeric ids need no passwd entries); root is the most common."""

HOSTILE_USER = 65534
"""The user (and group) id of the non-root user who plants hostile structures in the source."""

COMMON_MODES = (0o644, 0o600, 0o640, 0o755, 0o700, 0o444, 0o400, 0o666, 0o777, 0o000, 0o4755, 0o2750, 0o1777)
"""File modes that are picked more often than the others."""

ODD_NAMES = (
    b'new\nline %d',
    b'not-utf8-\xe9\xff-%d',
    b'x%d -> y',
    b'x%d => y',
    b'-leading-dash-%d',
    b'--delete-%d',
    b'#comment-%d',
    b';semicolon-%d',
    b'\\#101-%d',
    b'with space %d',
    b' leading space %d',
    b'trailing space %d ',
    b'glob*?[%d]',
    b'..dots%d',
    b'%d..',
    b'.hidden%d',
    b'tab\t%d',
    b'back\\slash%d',
)
"""
Templates of awkward names (``%d`` becomes a unique number): a newline,
non-UTF-8 bytes, rsync's arrows (``%L``'s `` -> `` and `` => ``), leading
dashes (options), ``#`` and ``;`` (comments in ``--files-from``), rsync's
``\\#ooo`` escape, spaces, glob characters, dots, a tab, a backslash.
"""

EXACT_ODD_NAMES = (b'-', b'--', b'#', b';', b' -> ', b' => ', b'\\#101', b'...', b' ', b'-n', b'x -> y')
"""Awkward names used as they are (when the directory doesn't hold one yet)."""

HOSTILE_TARGETS = (
    b'x/./etc/shadow',
    b'd/./.',
    b'.',
    b'..',
    b'../..',
    b'../../../../etc',
    b'a -> b',
    b'a => b',
    b'sub/',
    b'/',
    b'/etc/passwd',
    b'./',
    b'sub/./../.',
    b'new\nline',
    b'\xe9\xff',
    b'/.//./',
    b'#comment',
    b'-n',
    b'\\#101',
)
"""Symbolic link targets whose text means something to rsync, to a shell or to a parser of rsync's output."""

EXCLUDE_SUFFIX = b'.tmp'
"""A suffix that some plain names get, so that a ``*.tmp`` exclude matches a few entries here and there."""

PLAIN_NAME = re.compile(rb'^[a-z]+[0-9]+(\.tmp|\.txt)?$')
"""Matches the plain names that :class:`Names` makes (the only names that excludes are made from)."""

EARLIEST_TIME, LATEST_TIME = 1000000000, 1700000000
"""The range of the modification times that entries get (in seconds since the epoch: from 2001 to 2023)."""

MAXIMUM_DEPTH = 4
"""How deep the generated directories nest."""

Entry = collections.namedtuple('Entry', 'kind mode uid gid content xattrs mtime links')
"""
The description of one entry of a tree (see :func:`describe_tree()`): its
kind (``file``, ``directory``, ``symlink``, ``fifo``, ``socket``,
``character device``, ``block device``), permission bits, owner and group,
content (a SHA-256 digest and the size of a regular file, a symbolic link's
target, a device's major and minor numbers, otherwise :data:`None`), the
sorted extended attributes (ACLs included, as ``system.posix_acl_*``), the
modification time in nanoseconds (:data:`None` for a directory: see
:attr:`TreeDescription.directory_times`) and the sorted paths of the tree that
share its inode (empty when it has no other name in the tree).
"""

Difference = collections.namedtuple('Difference', 'path field expected actual')
"""
A difference between two trees: the path (bytes), what differs
(``missing``, ``extra`` or an :class:`Entry` field, ``directory time`` for a
directory's modification time) and the two values.
"""

ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_GROUP, ACL_MASK, ACL_OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
"""The tags of an ACL's entries in an extended attribute (as in the kernel's ``posix_acl_xattr.h``)."""

ACL_TAGS = {ACL_USER_OBJ: 'user', ACL_USER: 'user', ACL_GROUP_OBJ: 'group', ACL_GROUP: 'group', ACL_MASK: 'mask',
            ACL_OTHER: 'other'}
"""The names that ``getfacl`` gives the tags."""

ACL_UNDEFINED_ID = 0xffffffff
"""The id of the ACL entries that name no user or group."""

ACL_ATTRIBUTES = ('system.posix_acl_access', 'system.posix_acl_default')
"""The extended attributes in which Linux keeps a POSIX ACL (the second only on directories)."""


# Names.


class Names(object):

    """Unique names for new entries: plain ones, and now and then an awkward one."""

    def __init__(self, rng):
        """
        Start a new supply of names.

        :param rng: The run's :class:`random.Random`.
        """
        self.rng = rng
        self.counter = 0

    def plain(self, prefix):
        """
        Make a plain name (lower-case letters, a number and sometimes a suffix).

        :param prefix: The letters (bytes).
        :returns: A name (bytes).
        """
        self.counter += 1
        suffix = self.rng.choice((b'', b'', b'', b'.txt', EXCLUDE_SUFFIX))
        return b'%s%d%s' % (prefix, self.counter, suffix)

    def any(self, prefix, directory, odd=0.3):
        """
        Make a name that isn't taken in a directory: plain, or awkward with the probability `odd`.

        :param prefix: The letters of a plain name (bytes).
        :param directory: The directory (bytes) the name is for.
        :param odd: The probability of an awkward name.
        :returns: A name (bytes).
        """
        if self.rng.random() >= odd:
            return self.plain(prefix)
        choice = self.rng.random()
        if choice < 0.2:
            name = self.rng.choice(EXACT_ODD_NAMES)
            if not os.path.lexists(os.path.join(directory, name)):
                return name
        elif choice < 0.4 and os.path.isdir(directory):
            # A twin: "NAME -> OTHER" beside NAME, which a reader of rsync's "%n%L" might take for NAME.
            siblings = sorted(os.listdir(directory))
            if siblings:
                arrow = self.rng.choice((b' -> ', b' => '))
                name = self.rng.choice(siblings) + arrow + self.rng.choice(siblings + [b'y'])
                if len(name) < 200 and not os.path.lexists(os.path.join(directory, name)):
                    return name
        self.counter += 1
        return self.rng.choice(ODD_NAMES) % self.counter


# POSIX ACLs as extended attributes.


def encode_acl(mode, users=None, groups=None):
    """
    Encode a POSIX ACL the way the kernel takes it in ``system.posix_acl_*``.

    :param mode: The permission bits whose owner, group and other parts the ACL repeats (an integer).
    :param users: A dict from user id to permissions (0-7) for named users.
    :param groups: A dict from group id to permissions (0-7) for named groups.
    :returns: The extended attribute's value (bytes).
    """
    users = users or {}
    groups = groups or {}
    entries = [(ACL_USER_OBJ, (mode >> 6) & 7, ACL_UNDEFINED_ID)]
    entries.extend((ACL_USER, permissions, uid) for uid, permissions in sorted(users.items()))
    entries.append((ACL_GROUP_OBJ, (mode >> 3) & 7, ACL_UNDEFINED_ID))
    entries.extend((ACL_GROUP, permissions, gid) for gid, permissions in sorted(groups.items()))
    if users or groups:
        mask = (mode >> 3) & 7
        for permissions in list(users.values()) + list(groups.values()):
            mask |= permissions
        entries.append((ACL_MASK, mask, ACL_UNDEFINED_ID))
    entries.append((ACL_OTHER, mode & 7, ACL_UNDEFINED_ID))
    return struct.pack('<I', 2) + b''.join(struct.pack('<HHI', *entry) for entry in entries)


def decode_acl(value):
    """
    Render an ACL extended attribute as text, in the style of ``getfacl``, for reports.

    :param value: The value of a ``system.posix_acl_*`` attribute (bytes).
    :returns: A string such as ``user::rw-,user:1000:r--,group::r--,mask::r--,other::---``.
    """
    parts = []
    for offset in range(4, len(value) - 7, 8):
        tag, permissions, identifier = struct.unpack('<HHI', value[offset:offset + 8])
        qualifier = '' if identifier == ACL_UNDEFINED_ID else str(identifier)
        letters = ''.join(letter if permissions & bit else '-' for letter, bit in (('r', 4), ('w', 2), ('x', 1)))
        parts.append('%s:%s:%s' % (ACL_TAGS.get(tag, hex(tag)), qualifier, letters))
    return ','.join(parts)


# Describing and comparing trees.


class TreeDescription(object):

    """Every detail of a tree that a backup must keep (see :func:`describe_tree()`)."""

    def __init__(self, entries, directory_times):
        """
        Store a description.

        :param entries: A dict from relative path (bytes, ``.`` for the top) to :class:`Entry`.
        :param directory_times: A dict from the relative path of each directory to its modification time (ns).
        """
        self.entries = entries
        self.directory_times = directory_times


def describe_tree(root):
    """
    Describe a tree by walking it with :func:`os.lstat()`, never following a symbolic link.

    :param root: The tree's top directory (a string, bytes or path).
    :returns: A :class:`TreeDescription`.
    """
    root = os.fsencode(root)
    entries = {}
    directory_times = {}
    inodes = collections.defaultdict(list)
    pending = [b'.']
    while pending:
        relative = pending.pop()
        pathname = root if relative == b'.' else os.path.join(root, relative)
        info = os.lstat(pathname)
        kind = kind_name(info.st_mode)
        mtime = info.st_mtime_ns
        if kind == 'directory':
            directory_times[relative] = mtime
            mtime = None
            children = os.listdir(pathname)
            pending.extend(name if relative == b'.' else os.path.join(relative, name) for name in children)
        else:
            inodes[info.st_ino].append(relative)
        entries[relative] = Entry(kind, stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid,
                                  read_content(pathname, info), read_xattrs(pathname), mtime, ())
    for paths in inodes.values():
        if len(paths) > 1:
            group = tuple(sorted(paths))
            for path in paths:
                entries[path] = entries[path]._replace(links=group)
    return TreeDescription(entries, directory_times)


def kind_name(mode):
    """
    Name the kind of an entry.

    :param mode: The ``st_mode`` of its :func:`os.lstat()` result.
    :returns: A string (see :class:`Entry`).
    """
    for test, name in ((stat.S_ISREG, 'file'), (stat.S_ISDIR, 'directory'), (stat.S_ISLNK, 'symlink'),
                       (stat.S_ISFIFO, 'fifo'), (stat.S_ISSOCK, 'socket'), (stat.S_ISCHR, 'character device'),
                       (stat.S_ISBLK, 'block device')):
        if test(mode):
            return name
    return 'unknown (%o)' % stat.S_IFMT(mode)


def read_content(pathname, info):
    """
    Give what an entry holds, as :class:`Entry` records it.

    :param pathname: The entry's pathname (bytes).
    :param info: Its :func:`os.lstat()` result.
    :returns: ``(digest, size)`` for a regular file, the target (bytes) of a
              symbolic link, ``(major, minor)`` for a device, else :data:`None`.
    """
    if stat.S_ISREG(info.st_mode):
        digest = hashlib.sha256()
        descriptor = os.open(pathname, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(descriptor, 'rb') as handle:
            for block in iter(lambda: handle.read(65536), b''):
                digest.update(block)
        return (digest.hexdigest(), info.st_size)
    if stat.S_ISLNK(info.st_mode):
        return os.readlink(pathname)
    if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode):
        return (os.major(info.st_rdev), os.minor(info.st_rdev))
    return None


def read_xattrs(pathname):
    """
    Read an entry's extended attributes (ACLs included) without following a symbolic link.

    :param pathname: The entry's pathname (bytes).
    :returns: A sorted tuple of ``(name, value)`` tuples. XFS's second copy
              of the ACLs (see :data:`support.trees.XFS_ACL_ATTRIBUTES`) is left out.
    """
    try:
        names = os.listxattr(pathname, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EPERM):
            return ()
        raise
    return tuple(sorted((name, os.getxattr(pathname, name, follow_symlinks=False))
                        for name in names if name not in XFS_ACL_ATTRIBUTES))


def compare_trees(expected, actual):
    """
    Compare two descriptions of a tree.

    :param expected: The :class:`TreeDescription` that should be.
    :param actual: The :class:`TreeDescription` that is.
    :returns: A tuple of two lists of :class:`Difference`, sorted by path:
              the differences, and those of the modification times of
              directories (which exist in both).
    """
    differences = []
    for path in sorted(set(expected.entries) | set(actual.entries)):
        old = expected.entries.get(path)
        new = actual.entries.get(path)
        if new is None:
            differences.append(Difference(path, 'missing', old.kind, None))
        elif old is None:
            differences.append(Difference(path, 'extra', None, new.kind))
        elif old.kind != new.kind:
            differences.append(Difference(path, 'kind', old.kind, new.kind))
        else:
            differences.extend(Difference(path, field, getattr(old, field), getattr(new, field))
                               for field in Entry._fields if getattr(old, field) != getattr(new, field))
    directory_times = [Difference(path, 'directory time', expected.directory_times[path], actual.directory_times[path])
                       for path in sorted(set(expected.directory_times) & set(actual.directory_times))
                       if expected.directory_times[path] != actual.directory_times[path]]
    return differences, directory_times


def quick_check_blind_spots(source, oracle, latest):
    """
    Find the files whose content rsync in place couldn't see change, and which ``latest`` has right.

    :param source: The :class:`TreeDescription` of the source.
    :param oracle: That of the tree rsync updated in place.
    :param latest: That of ``latest``.
    :returns: A set of paths: regular files that have the source's size and
              time in the oracle but other content (rsync's quick check
              compares only size and time, so in place it changes their
              attributes and keeps the stale data), while ``latest`` holds
              the source's content. The planned apply writes every file it
              transfers anew (``--ignore-times``), so it gets these right
              where rsync in place doesn't: the one way ``latest`` may
              differ from the oracle, and only towards the source.
    """
    allowed = set()
    for path, entry in latest.entries.items():
        wanted, stale = source.entries.get(path), oracle.entries.get(path)
        if entry.kind == 'file' and wanted is not None and stale is not None and stale.kind == 'file' and \
                entry.content == wanted.content != stale.content and stale.content[1] == wanted.content[1] and \
                stale.mtime == wanted.mtime:
            allowed.add(path)
    return allowed


def render_difference(difference, expected_name='expected', actual_name='actual'):
    """
    Say what a difference is, in one line.

    :param difference: A :class:`Difference`.
    :param expected_name: What to call the tree that should be.
    :param actual_name: What to call the tree that is.
    :returns: A string.
    """
    path = render_path(difference.path)
    if difference.field == 'missing':
        return '%s: %s in %s, missing in %s' % (path, difference.expected, expected_name, actual_name)
    if difference.field == 'extra':
        return '%s: %s in %s, not in %s' % (path, difference.actual, actual_name, expected_name)
    expected = render_value(difference.field, difference.expected)
    actual = render_value(difference.field, difference.actual)
    return '%s: %s %s in %s, %s in %s' % (path, difference.field, expected, expected_name, actual, actual_name)


def render_path(path):
    """
    Show a path so that every byte can be told (a newline, a non-UTF-8 byte, a trailing space).

    :param path: A relative path (bytes).
    :returns: A string: the path as a Python bytes literal.
    """
    return repr(path)


def render_value(field, value):
    """
    Show the value of a field of :class:`Entry` for a report.

    :param field: The field's name.
    :param value: The value.
    :returns: A string.
    """
    if field == 'mode':
        return '%04o' % value
    if field == 'xattrs':
        return '{%s}' % ', '.join('%s=%s' % (name, decode_acl(data) if name in ACL_ATTRIBUTES else repr(data))
                                  for name, data in value)
    if field == 'links':
        return '[%s]' % ', '.join(render_path(path) for path in value) if value else 'no other name'
    return repr(value)


# Building random trees.


class TreeBuilder(object):

    """Random entries in a source tree, with random attributes; shared by the tree's generation and its mutations."""

    def __init__(self, rng, root):
        """
        Prepare to build below a directory.

        :param rng: The run's :class:`random.Random` (everything random comes from it).
        :param root: The tree's top directory (a string, bytes or path; it needn't exist yet).
        """
        self.rng = rng
        self.root = os.fsencode(root)
        self.names = Names(rng)
        self.acls = True

    def path(self, relative):
        """
        Give the pathname of an entry.

        :param relative: Its relative path (bytes; ``.`` for the top).
        :returns: Bytes.
        """
        return self.root if relative == b'.' else os.path.join(self.root, relative)

    def build(self):
        """
        Create the top directory and fill it with 30 to 150 random entries (and sometimes planted ones).

        :returns: A list of strings that say what was made beyond the random entries.
        """
        os.mkdir(self.root)
        self.set_attributes(b'.', directory=True)
        directories = [b'.']
        target = self.rng.randint(30, 150)
        count = 0
        while count < target:
            parent = self.rng.choice(directories)
            made = self.add_entry(parent)
            count += len(made)
            directories.extend(path for path in made if os.path.isdir(self.path(path))
                               and not os.path.islink(self.path(path)))
        log = []
        if self.rng.random() < 0.5:
            log.append(self.plant(self.rng.choice(directories)))
        self.settle_directories()
        return log

    def add_entry(self, parent):
        """
        Create one entry of a random kind (a directory with its contents, possibly).

        :param parent: The relative path of the directory it goes in (bytes).
        :returns: The relative paths of the entries made (a list of bytes).
        """
        depth = 0 if parent == b'.' else parent.count(b'/') + 1
        weights = {'file': 40, 'empty': 5, 'sparse': 2, 'directory': 15 if depth < MAXIMUM_DEPTH else 0,
                   'symlink': 15, 'link': 10, 'special link': 2, 'fifo': 3, 'device': 2}
        kind = self.rng.choices(list(weights), list(weights.values()))[0]
        if kind == 'special link':
            # rsync -H keeps hard links between symbolic links, FIFOs and devices too.
            existing = self.of_kind('symlink', 'fifo', 'character device', 'block device')
            kind = 'link' if existing else 'file'
        elif kind == 'link':
            existing = self.files()
            kind = 'link' if existing else 'file'
        name = self.names.any(b'd' if kind == 'directory' else b'f', self.path(parent))
        relative = name if parent == b'.' else os.path.join(parent, name)
        pathname = self.path(relative)
        if kind == 'link':
            os.link(self.path(self.rng.choice(existing)), pathname, follow_symlinks=False)
            return [relative]
        if kind == 'directory':
            os.makedirs(pathname)
            self.set_attributes(relative, directory=True)
            made = [relative]
            for _ in range(self.rng.randint(0, 4)):
                made.extend(self.add_entry(relative))
            return made
        if kind == 'symlink':
            os.symlink(self.random_target(relative), pathname)
        elif kind == 'fifo':
            os.mkfifo(pathname)
        elif kind == 'device':
            file_type = self.rng.choice((stat.S_IFCHR, stat.S_IFBLK))
            os.mknod(pathname, file_type | 0o600, os.makedev(self.rng.randint(1, 254), self.rng.randint(0, 255)))
        else:
            self.write_content(pathname, kind)
        self.set_attributes(relative)
        return [relative]

    def write_content(self, pathname, kind='file'):
        """
        Write random content to a new file or over an existing one (in place: its hard links see it).

        :param pathname: The file's pathname (bytes).
        :param kind: ``file`` (0 to 3000 random bytes or text), ``empty`` or ``sparse`` (holes around the data).
        """
        with open(pathname, 'r+b' if os.path.lexists(pathname) else 'wb') as handle:
            handle.truncate(0)
            if kind == 'sparse':
                handle.seek(self.rng.randint(1, 4) * 65536)
                handle.write(self.random_bytes())
                handle.truncate(handle.tell() + self.rng.randint(0, 3) * 65536)
            elif kind != 'empty':
                handle.write(self.random_bytes())

    def random_bytes(self, size=None):
        """
        Make some random content: binary or text.

        :param size: How many bytes, or :data:`None` for 0 to 3000.
        :returns: Bytes.
        """
        size = self.rng.randint(0, 3000) if size is None else size
        if self.rng.random() < 0.5:
            return self.rng.randbytes(size)
        return bytes(self.rng.choice(b'abcdefghij \n') for _ in range(size))

    def random_target(self, relative):
        """
        Choose a symbolic link's target: relative to an entry, absolute, dangling or hostile.

        :param relative: The link's own relative path (bytes).
        :returns: Bytes.
        """
        choice = self.rng.random()
        if choice < 0.3:
            return self.rng.choice(HOSTILE_TARGETS)
        if choice < 0.4:
            return b'/no/such/%d' % self.rng.randint(0, 99)
        if choice < 0.5:
            return b'dangling-%d' % self.rng.randint(0, 99)
        entries = self.entries()
        if not entries:
            return b'nothing'
        target = self.rng.choice(entries)
        if choice < 0.6:
            return os.path.join(b'/', target)
        return os.path.relpath(target, os.path.dirname(relative) or b'.')

    def set_attributes(self, relative, directory=False):
        """
        Give an entry a random owner, mode, xattrs, ACL and modification time.

        :param relative: Its relative path (bytes).
        :param directory: :data:`True` to leave the modification time alone
                          (a new directory's entries are still to come, see
                          :meth:`settle_directories()`).
        """
        pathname = self.path(relative)
        os.chown(pathname, self.rng.choice(OWNERS), self.rng.choice(OWNERS), follow_symlinks=False)
        if os.path.islink(pathname):
            self.set_time(relative)
            return
        self.set_mode(relative)
        info = os.lstat(pathname)
        if stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode):
            for _ in range(self.rng.choice((0, 0, 0, 1, 2))):
                self.set_xattr(relative)
            if self.rng.random() < 0.15:
                self.set_acl(relative)
        if not directory:
            self.set_time(relative)

    def set_mode(self, relative):
        """
        Give an entry (not a symbolic link) a random mode; a directory keeps its owner's ``rwx``.

        :param relative: Its relative path (bytes).
        """
        pathname = self.path(relative)
        mode = self.rng.choice(COMMON_MODES) if self.rng.random() < 0.7 else self.rng.randint(0, 0o7777)
        if stat.S_ISDIR(os.lstat(pathname).st_mode):
            mode |= 0o700
        os.chmod(pathname, mode)

    def set_time(self, relative):
        """
        Give an entry a random modification time in the past (whole seconds or not), different from the one it has.

        :param relative: Its relative path (bytes).
        """
        pathname = self.path(relative)
        before = os.lstat(pathname).st_mtime_ns
        while True:
            seconds = self.rng.randint(EARLIEST_TIME, LATEST_TIME)
            moment = seconds * 10 ** 9 + (self.rng.randint(0, 10 ** 9 - 1) if self.rng.random() < 0.5 else 0)
            if moment // 10 ** 9 != before // 10 ** 9:
                break
        os.utime(pathname, ns=(moment, moment), follow_symlinks=False)

    def set_xattr(self, relative):
        """
        Add, change or remove a ``user.*`` extended attribute of a file or directory.

        :param relative: Its relative path (bytes).
        :returns: What was done (a string).
        """
        pathname = self.path(relative)
        existing = [name for name in os.listxattr(pathname) if name.startswith('user.')]
        if existing and self.rng.random() < 0.3:
            name = self.rng.choice(existing)
            os.removexattr(pathname, name)
            return 'removed %s' % name
        name = self.rng.choice(existing) if existing and self.rng.random() < 0.5 else self.rng.choice(
            ('user.note', 'user.tag', 'user.mime_type', 'user.x -> y', 'user.\xe9'))
        os.setxattr(pathname, name, self.random_bytes(self.rng.randint(0, 40)))
        return 'set %s' % name

    def set_acl(self, relative):
        """
        Give a file or directory a random access ACL (and a directory now and then a default ACL), or remove them.

        :param relative: Its relative path (bytes).
        :returns: What was done (a string), or :data:`None` when the filesystem has no ACLs.
        """
        if not self.acls:
            return None
        pathname = self.path(relative)
        mode = stat.S_IMODE(os.lstat(pathname).st_mode)
        named = ({uid: self.rng.randint(0, 7) for uid in self.rng.sample((1000, 1234, 65534), self.rng.randint(0, 2))},
                 {gid: self.rng.randint(0, 7) for gid in self.rng.sample((100, 1000, 5678), self.rng.randint(0, 2))})
        present = [name for name in ACL_ATTRIBUTES if name in os.listxattr(pathname)]
        try:
            if present and self.rng.random() < 0.25:
                name = self.rng.choice(present)
                os.removexattr(pathname, name)
                return 'removed %s' % name
            name = ACL_ATTRIBUTES[1] if os.path.isdir(pathname) and self.rng.random() < 0.4 else ACL_ATTRIBUTES[0]
            os.setxattr(pathname, name, encode_acl(mode, *named))
            return 'set %s' % name
        except OSError as e:
            if e.errno != errno.ENOTSUP:
                raise
            self.acls = False
            return None

    def settle_directories(self, changed_only=False):
        """
        Give directories random modification times in the past.

        :param changed_only: :data:`True` to leave the directories alone
                             whose time is still one that this class gave.

        rsync leaves the time of a directory that it finds within the same
        second as the source's as it is, so a directory changed in the second
        of a backup would get a time that depends on when rsync wrote it;
        in the past, its time is copied exactly.
        """
        for relative in self.directories():
            if not changed_only or os.lstat(self.path(relative)).st_mtime > LATEST_TIME:
                self.set_time(relative)

    def plant(self, parent):
        """
        Plant what a non-root user could make in her part of the source to subvert a backup.

        :param parent: The relative path (bytes) of a directory to plant in.
        :returns: What was planted (a string).

        Root-owned victims ``etc/shadow`` and ``etc/secret`` (mode 0600) go
        at the top, unless ``etc`` is taken by something else than a
        directory. In `parent`, the user (:data:`HOSTILE_USER`) makes a
        directory ``s -> x``, holding ``etc/shadow``, beside a symbolic link
        ``s`` to ``x/./etc/shadow`` (read as ``s -> x/./etc/shadow``, the
        name of her file with ``--relative``'s ``/./``, whose destination is
        the root's ``etc/shadow``); the same again as ``s2`` for
        ``etc/secret``, with a file of the same size and modification time
        (only owner and mode would be applied); and a directory ``t -> d``
        (mode 0777) beside a link ``t`` to ``d/./.`` (the top directory).
        """
        victims = os.path.join(self.root, b'etc')
        if not os.path.isdir(victims) or os.path.islink(victims):
            if os.path.lexists(victims):
                return 'nothing planted: etc is taken'
            os.mkdir(victims, 0o755)
        secret = os.path.join(victims, b'secret')
        for pathname, content in ((os.path.join(victims, b'shadow'), b'root:$6$secret:19000::::::\n'),
                                  (secret, b'root only\n')):
            if not os.path.lexists(pathname):
                with open(pathname, 'wb') as handle:
                    handle.write(content)
                os.chown(pathname, 0, 0)
                os.chmod(pathname, 0o600)
                os.utime(pathname, (1600000000, 1600000000))
        made = []
        for link, victim in ((b's', b'shadow'), (b's2', b'secret')):
            link = self.free_name(parent, link)
            directory = self.join(parent, link + b' -> x')
            relative = os.path.join(directory, b'etc', victim)
            os.makedirs(os.path.dirname(self.path(relative)))
            with open(self.path(relative), 'wb') as handle:
                handle.write(b'x' * os.lstat(secret).st_size if victim == b'secret' else b'hers:planted::::::\n')
            os.symlink(b'x/./etc/' + victim, self.path(self.join(parent, link)))
            os.chmod(self.path(relative), 0o666)
            made.extend((self.join(parent, link), relative, os.path.dirname(relative), directory))
        link = self.free_name(parent, b't')
        os.mkdir(self.path(self.join(parent, link + b' -> d')), 0o777)
        os.symlink(b'd/./.', self.path(self.join(parent, link)))
        made.extend((self.join(parent, link), self.join(parent, link + b' -> d')))
        for relative in made:
            os.chown(self.path(relative), HOSTILE_USER, HOSTILE_USER, follow_symlinks=False)
            self.set_time(relative)
        os.chmod(self.path(self.join(parent, link + b' -> d')), 0o777)
        for relative in made:
            if relative.endswith(b'/secret'):
                os.utime(self.path(relative), ns=(os.lstat(secret).st_mtime_ns,) * 2)
        return 'planted s, s2 and t in %s' % render_path(parent)

    def join(self, parent, name):
        """
        Give the relative path of a name in a directory.

        :param parent: The relative path of the directory (bytes; ``.`` for the top).
        :param name: The name (bytes).
        :returns: Bytes.
        """
        return name if parent == b'.' else os.path.join(parent, name)

    def free_name(self, parent, name):
        """
        Give a name that is free in a directory, and whose ``NAME -> x`` and ``NAME -> d`` are free too.

        :param parent: The relative path of the directory (bytes).
        :param name: The name wanted (bytes); a number is added until it is free.
        :returns: Bytes.
        """
        candidate = name
        while any(os.path.lexists(os.path.join(self.path(parent), candidate + suffix))
                  for suffix in (b'', b' -> x', b' -> d')):
            self.names.counter += 1
            candidate = b'%s%d' % (name, self.names.counter)
        return candidate

    def entries(self):
        """
        List the entries of the tree (not the top), in a stable order.

        :returns: A sorted list of relative paths (bytes).
        """
        found = []
        pending = [b'.']
        while pending:
            relative = pending.pop()
            pathname = self.path(relative)
            for name in os.listdir(pathname):
                child = name if relative == b'.' else os.path.join(relative, name)
                found.append(child)
                if stat.S_ISDIR(os.lstat(self.path(child)).st_mode):
                    pending.append(child)
        return sorted(found)

    def of_kind(self, *kinds):
        """
        List the entries of some kinds.

        :param kinds: Names of kinds (see :func:`kind_name()`).
        :returns: A sorted list of relative paths (bytes).
        """
        return [relative for relative in self.entries() if kind_name(os.lstat(self.path(relative)).st_mode) in kinds]

    def files(self):
        """
        List the regular files.

        :returns: A sorted list of relative paths (bytes).
        """
        return self.of_kind('file')

    def directories(self):
        """
        List the directories, the top one included.

        :returns: A sorted list of relative paths (bytes).
        """
        return [b'.'] + self.of_kind('directory')

    def remove(self, relative):
        """
        Remove an entry, a whole tree for a directory.

        :param relative: Its relative path (bytes).
        """
        pathname = self.path(relative)
        if stat.S_ISDIR(os.lstat(pathname).st_mode):
            shutil.rmtree(pathname)
        else:
            os.unlink(pathname)


# Changing trees at random.


class Mutator(object):

    """Random changes to a source tree, made with a :class:`TreeBuilder`, each of which says what it did."""

    WEIGHTS = {
        'content': 10, 'append': 4, 'mode': 6, 'owner': 6, 'xattr': 5, 'acl': 4, 'mtime': 5, 'join': 5,
        'join_existing': 3, 'split': 4, 'directory_to_file': 3, 'file_to_directory': 3, 'replace_kind': 3,
        'delete_tree': 2, 'delete': 4, 'retarget': 5, 'rename': 4, 'rename_over': 3, 'add': 6, 'plant': 2,
        'rearm': 3,
    }
    """How often each change is picked (the names of the methods that make them)."""

    def __init__(self, builder):
        """
        Prepare to change a tree.

        :param builder: The tree's :class:`TreeBuilder`.
        """
        self.builder = builder
        self.rng = builder.rng

    def mutate(self, count):
        """
        Make random changes.

        :param count: How many.
        :returns: What was done (a list of strings).
        """
        log = []
        names = list(self.WEIGHTS)
        while len(log) < count:
            name = self.rng.choices(names, [self.WEIGHTS[name] for name in names])[0]
            done = getattr(self, name)()
            if done:
                log.append('%s: %s' % (name, done))
        self.builder.settle_directories(changed_only=True)
        return log

    def pick(self, *kinds, top=False):
        """
        Pick an entry of some kinds.

        :param kinds: Names of kinds (see :func:`kind_name()`), none for any kind.
        :param top: :data:`True` to include the top directory.
        :returns: A relative path (bytes), or :data:`None` when there is none.
        """
        candidates = self.builder.of_kind(*kinds) if kinds else self.builder.entries()
        if top:
            candidates.insert(0, b'.')
        return self.rng.choice(candidates) if candidates else None

    def content(self):
        """Write new content to a file, in place, with a new modification time (and maybe the same size)."""
        relative = self.pick('file')
        if relative is None:
            return None
        pathname = self.builder.path(relative)
        size = os.lstat(pathname).st_size if self.rng.random() < 0.3 else None
        with open(pathname, 'r+b') as handle:
            handle.truncate(0)
            handle.write(self.builder.random_bytes(size))
        # A new time: with the same size and time, rsync's quick check would see no change, and rsync in place
        # would then link a new name of the file to the old content while a transfer of that name alone copies
        # the new one. That is a source changing behind rsync's back, not what this harness tests.
        self.builder.set_time(relative)
        return 'new content in %s' % render_path(relative)

    def append(self):
        """Append to a file (keeping its time now and then: the size tells rsync anyway)."""
        relative = self.pick('file')
        if relative is None:
            return None
        pathname = self.builder.path(relative)
        before = os.lstat(pathname).st_mtime_ns
        with open(pathname, 'ab') as handle:
            handle.write(self.builder.random_bytes(self.rng.randint(1, 500)))
        if self.rng.random() < 0.5:
            os.utime(pathname, ns=(before, before))
        else:
            self.builder.set_time(relative)
        return 'appended to %s' % render_path(relative)

    def mode(self):
        """Change the mode of a file, directory, FIFO or device (the top too)."""
        relative = self.pick('file', 'directory', 'fifo', 'character device', 'block device', top=True)
        if relative is None:
            return None
        self.builder.set_mode(relative)
        return 'mode of %s' % render_path(relative)

    def owner(self):
        """Change the owner and group of any entry (the top too)."""
        relative = self.pick(top=True)
        os.chown(self.builder.path(relative), self.rng.choice(OWNERS), self.rng.choice(OWNERS), follow_symlinks=False)
        return 'owner of %s' % render_path(relative)

    def xattr(self):
        """Add, change or remove an extended attribute of a file or directory."""
        relative = self.pick('file', 'directory', top=True)
        return '%s on %s' % (self.builder.set_xattr(relative), render_path(relative))

    def acl(self):
        """Set or remove an ACL of a file or directory."""
        relative = self.pick('file', 'directory', top=True)
        done = self.builder.set_acl(relative)
        return done and '%s on %s' % (done, render_path(relative))

    def mtime(self):
        """Change only the modification time of any entry (a symbolic link's own time, too)."""
        relative = self.pick()
        if relative is None:
            return None
        self.builder.set_time(relative)
        return 'time of %s' % render_path(relative)

    def join(self):
        """Give a file one more name, in any directory."""
        target = self.pick('file')
        parent = self.pick('directory', top=True)
        if target is None:
            return None
        name = self.builder.names.any(b'f', self.builder.path(parent))
        relative = name if parent == b'.' else os.path.join(parent, name)
        os.link(self.builder.path(target), self.builder.path(relative))
        return 'linked %s to %s' % (render_path(relative), render_path(target))

    def join_existing(self):
        """Replace a file by a hard link to another file."""
        files = self.builder.files()
        if len(files) < 2:
            return None
        target, relative = self.rng.sample(files, 2)
        if os.lstat(self.builder.path(target)).st_ino == os.lstat(self.builder.path(relative)).st_ino:
            return None
        os.unlink(self.builder.path(relative))
        os.link(self.builder.path(target), self.builder.path(relative))
        return 'replaced %s by a link to %s' % (render_path(relative), render_path(target))

    def split(self):
        """
        Replace one name of a hard-link group by a copy with a new modification time.

        The copy gets a new time on purpose. A copy identical in every
        attribute passes rsync's quick check, so rsync in place leaves the
        names linked in the destination (it only breaks a link when it
        rewrites a file); when a later change then touches one of them (a
        new mode, say), rsync in place changes both names through the shared
        inode and the outcome depends on the order in which it visits them:
        rsync's own order dependence, which a planned transfer can't and
        needn't reproduce. (With a new time, rsync rewrites the file, and the
        link is broken.)
        """
        linked = [relative for relative in self.builder.files() if os.lstat(self.builder.path(relative)).st_nlink > 1]
        if not linked:
            return None
        relative = self.rng.choice(linked)
        pathname = self.builder.path(relative)
        info = os.lstat(pathname)
        with open(pathname, 'rb') as handle:
            content = handle.read()
        xattrs = [(name, os.getxattr(pathname, name)) for name in os.listxattr(pathname)]
        os.unlink(pathname)
        with open(pathname, 'wb') as handle:
            handle.write(content)
        os.chown(pathname, info.st_uid, info.st_gid)
        os.chmod(pathname, stat.S_IMODE(info.st_mode))
        for name, value in xattrs:
            os.setxattr(pathname, name, value)
        self.builder.set_time(relative)
        return 'split %s from its group' % render_path(relative)

    def directory_to_file(self):
        """Replace a directory tree by a file of the same name."""
        relative = self.pick('directory')
        if relative is None:
            return None
        self.builder.remove(relative)
        self.builder.write_content(self.builder.path(relative))
        self.builder.set_attributes(relative)
        return 'directory %s became a file' % render_path(relative)

    def file_to_directory(self):
        """Replace a file (or a symbolic link, FIFO or device) by a directory with contents."""
        relative = self.pick('file', 'symlink', 'fifo', 'character device', 'block device')
        if relative is None or relative.count(b'/') >= MAXIMUM_DEPTH - 1:
            return None
        self.builder.remove(relative)
        os.mkdir(self.builder.path(relative))
        self.builder.set_attributes(relative, directory=True)
        for _ in range(self.rng.randint(0, 4)):
            self.builder.add_entry(relative)
        return '%s became a directory' % render_path(relative)

    def replace_kind(self):
        """
        Replace any entry (a directory with its tree) by a new entry of a random kind.

        A symbolic link, FIFO or device with other names is left alone: its
        replacement could be of the same kind and differ only in attributes,
        which rsync in place changes through the inode that the destination's
        names still share (see :meth:`split()`).
        """
        relative = self.pick()
        if relative is None:
            return None
        info = os.lstat(self.builder.path(relative))
        if info.st_nlink > 1 and not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
            return None
        self.builder.remove(relative)
        parent, name = os.path.split(relative)
        made = self.builder.add_entry(parent or b'.')
        # The new entry got a new name: move it to the old one.
        os.rename(self.builder.path(made[0]), self.builder.path(relative))
        kind = kind_name(os.lstat(self.builder.path(relative)).st_mode)
        return '%s replaced by a new %s' % (render_path(relative), kind)

    def delete_tree(self):
        """Delete a whole directory tree."""
        relative = self.pick('directory')
        if relative is None:
            return None
        self.builder.remove(relative)
        return 'deleted the tree %s' % render_path(relative)

    def delete(self):
        """Delete an entry that isn't a directory."""
        relative = self.pick('file', 'symlink', 'fifo', 'character device', 'block device')
        if relative is None:
            return None
        self.builder.remove(relative)
        return 'deleted %s' % render_path(relative)

    def retarget(self):
        """
        Point a symbolic link elsewhere (a hostile target now and then), with a new owner and time.

        The target always changes: a link with other names that got a new
        link with the same target would differ only in attributes, which
        rsync in place changes through the inode that the destination's
        names still share (see :meth:`split()`).
        """
        relative = self.pick('symlink')
        if relative is None:
            return None
        pathname = self.builder.path(relative)
        before = os.readlink(pathname)
        target = before
        while target == before:
            target = self.builder.random_target(relative)
        os.unlink(pathname)
        os.symlink(target, pathname)
        self.builder.set_attributes(relative)
        return 'retargeted %s to %s' % (render_path(relative), render_path(target))

    def rename(self):
        """Move an entry to a new name, maybe in another directory."""
        relative = self.pick()
        parent = self.pick('directory', top=True)
        if relative is None or parent == relative or parent.startswith(relative + b'/'):
            return None
        name = self.builder.names.any(b'r', self.builder.path(parent))
        destination = name if parent == b'.' else os.path.join(parent, name)
        os.rename(self.builder.path(relative), self.builder.path(destination))
        return 'renamed %s to %s' % (render_path(relative), render_path(destination))

    def rename_over(self):
        """Rename a directory over another one's name (whose tree is gone first), or a file over another file."""
        kind = self.rng.choice(('directory', 'file'))
        candidates = self.builder.of_kind(kind)
        if len(candidates) < 2:
            return None
        relative, victim = self.rng.sample(candidates, 2)
        if victim.startswith(relative + b'/') or relative.startswith(victim + b'/'):
            return None
        if kind == 'directory':
            shutil.rmtree(self.builder.path(victim))
            os.mkdir(self.builder.path(victim))
        os.rename(self.builder.path(relative), self.builder.path(victim))
        return 'renamed %s over %s' % (render_path(relative), render_path(victim))

    def add(self):
        """Add new entries (awkward names are likelier here)."""
        parent = self.pick('directory', top=True)
        made = self.builder.add_entry(parent)
        return 'added %s' % ', '.join(render_path(path) for path in made)

    def plant(self):
        """Plant hostile structures as a non-root user (see :meth:`TreeBuilder.plant()`)."""
        return self.builder.plant(self.pick('directory', top=True))

    def rearm(self):
        """Touch the non-root user's symbolic links, so that rsync itemizes them again (as ``touch -h`` would)."""
        hers = [relative for relative in self.builder.of_kind('symlink')
                if os.lstat(self.builder.path(relative)).st_uid == HOSTILE_USER]
        if not hers:
            return None
        for relative in hers:
            self.builder.set_time(relative)
        return 'touched %s' % ', '.join(render_path(path) for path in hers)


def choose_excludes(rng, builder, excludes):
    """
    Change a round's exclude patterns at random: add one, drop one, or keep them.

    :param rng: The run's :class:`random.Random`.
    :param builder: The source's :class:`TreeBuilder`.
    :param excludes: The patterns of the previous round (a list of strings).
    :returns: The new list of patterns (strings).
    """
    excludes = list(excludes)
    choice = rng.random()
    if excludes and choice < 0.3:
        excludes.remove(rng.choice(excludes))
    elif choice < 0.6 and len(excludes) < 3:
        candidates = ['*.tmp']
        for relative in builder.entries():
            if not all(PLAIN_NAME.match(part) for part in relative.split(b'/')):
                continue
            text = relative.decode('ascii')
            name = os.path.basename(text)
            if os.path.isdir(builder.path(relative)) and not os.path.islink(builder.path(relative)):
                candidates.extend(('/%s/' % text, '%s/' % name))
            else:
                candidates.append(name)
            if b'/' in relative:
                candidates.append(text)
        pattern = rng.choice(candidates)
        if pattern not in excludes:
            excludes.append(pattern)
    return excludes


# The run loop.


class Failure(object):

    """What went wrong in a round: the checks that failed, and what the round had changed."""

    def __init__(self, seed, kind, round_number, findings, log, excludes, output):
        """
        Record a failure.

        :param seed: The seed.
        :param kind: The filesystem (``tmpfs``, ``ext4``).
        :param round_number: The round (0 for the first backup).
        :param findings: A list of ``(title, differences)`` tuples: what
                         failed (a string) and the :class:`Difference`
                         objects (or lines of text) that show it.
        :param log: What the round changed in the source (a list of strings).
        :param excludes: The round's exclude patterns (a list of strings).
        :param output: The command's output (a string).
        """
        self.seed = seed
        self.kind = kind
        self.round_number = round_number
        self.findings = findings
        self.log = log
        self.excludes = excludes
        self.output = output

    def report(self, limit=5):
        """
        Say what failed.

        :param limit: How many differences to show per failed check.
        :returns: A string of several lines.
        """
        titles = '; '.join(title for title, _ in self.findings)
        lines = ['seed %d on %s, round %d: %s' % (self.seed, self.kind, self.round_number, titles)]
        lines.append('  excludes: %s' % (' '.join(self.excludes) or 'none'))
        lines.extend('  changed: %s' % line for line in self.log)
        for title, differences in self.findings:
            lines.append('  %s (%d):' % (title, len(differences)))
            lines.extend('    %s' % (line if isinstance(line, str) else render_difference(line, *names_of(title)))
                         for line in differences[:limit])
        lines.append('  output of the command:')
        lines.extend('    %s' % line for line in self.output.splitlines()[-limit:])
        return '\n'.join(lines)


def names_of(title):
    """
    Name the trees that a finding compares, for :func:`render_difference()`.

    :param title: The finding's title (see :meth:`SeedRun.check()`).
    :returns: A tuple of two strings.
    """
    if title.startswith('latest'):
        return ('rsync in place', 'latest')
    if title.startswith('the new snapshot'):
        return ('latest', 'the snapshot')
    return ('its record', 'the snapshot')


class SeedResult(object):

    """The outcome of one seed: rounds passed, the failure (if any), notes (directory times, an oracle run twice)."""

    def __init__(self, seed, kind, rounds, failure, notes, seconds):
        """
        Record the outcome.

        :param seed: The seed.
        :param kind: The filesystem.
        :param rounds: How many rounds passed.
        :param failure: A :class:`Failure`, or :data:`None`.
        :param notes: Differences of directory times, as lines of text (they don't fail a run).
        :param seconds: How long the seed took.
        """
        self.seed = seed
        self.kind = kind
        self.rounds = rounds
        self.failure = failure
        self.notes = notes
        self.seconds = seconds

    @property
    def passed(self):
        """:data:`True` when every round passed."""
        return self.failure is None

    def summary(self):
        """
        Say in one line how the seed went.

        :returns: A string.
        """
        status = 'ok' if self.passed else 'FAILED in round %d' % self.failure.round_number
        notes = ', %d notes' % len(self.notes) if self.notes else ''
        return 'seed %d on %s: %s (%d rounds passed, %.1f s%s)' % (self.seed, self.kind, status, self.rounds,
                                                                   self.seconds, notes)


class SeedRun(object):

    """One seed: a random source, backed up round after round by the command and by the oracle, and checked."""

    def __init__(self, seed, filesystem, scratch, rounds=None, tamper=None, timeout=300, options=()):
        """
        Prepare a run.

        :param seed: The seed (an integer).
        :param filesystem: A mounted :class:`support.loop_filesystems.MountedFilesystem`.
        :param scratch: A directory of this seed's own on the host (a path; it may not exist yet) for the source.
        :param rounds: How many backups to make, or :data:`None` for 3 to 5 (chosen by the seed).
        :param tamper: A function called with the round number and this
                       object after each backup, before the checks (the
                       harness's own tests use it to check that a changed
                       tree is found, and read :attr:`output`).
        :param timeout: Seconds before a command is given up on.
        :param options: More options for the command (strings, ``-vv`` say).
        """
        self.seed = seed
        self.filesystem = filesystem
        self.rng = random.Random(seed)
        self.scratch = pathlib.Path(scratch)
        self.source = self.scratch / 'source'
        self.place = filesystem.mount_point / ('seed-%d' % seed)
        self.latest = self.place / 'backups' / 'latest'
        self.oracle = self.place / 'oracle'
        chosen = self.rng.randint(3, 5)  # Drawn either way, so that --rounds doesn't change the seed's trees.
        self.rounds = chosen if rounds is None else rounds
        self.tamper = tamper
        self.timeout = timeout
        self.options = list(options)
        self.output = ''
        self.records = {}
        self.notes = []

    def view(self, pathname):
        """
        Give the pathname under which this process sees a pathname of the filesystem's namespace.

        :param pathname: A path in the namespace.
        :returns: A string.
        """
        return self.filesystem.view(pathname)

    def run(self):
        """
        Build the source and make the backups, checking each.

        :returns: A :class:`SeedResult`.
        """
        started = time.monotonic()
        self.scratch.mkdir(parents=True, exist_ok=True)
        builder = TreeBuilder(self.rng, self.source)
        planted = builder.build()
        log = ['built %d entries' % len(builder.entries())] + planted
        mutator = Mutator(builder)
        excludes = []
        failure = None
        passed = 0
        for round_number in range(self.rounds):
            if round_number:
                log = mutator.mutate(self.rng.randint(3, 12))
                excludes = choose_excludes(self.rng, builder, excludes)
            failure = self.backup_and_check(round_number, log, excludes)
            if failure:
                break
            passed += 1
        return SeedResult(self.seed, self.filesystem.kind, passed, failure, self.notes, time.monotonic() - started)

    def backup_and_check(self, round_number, log, excludes):
        """
        Run the command and the oracle, then check ``latest`` and every snapshot.

        :param round_number: The round.
        :param log: What the round changed (for the report).
        :param excludes: The round's exclude patterns.
        :returns: A :class:`Failure`, or :data:`None`.
        """
        options = self.options + ['--exclude=%s' % pattern for pattern in excludes]
        returncode, output = self.run_command(command_line('--disable-notifications', '--backup', '--snapshot',
                                                           *(options + [self.source, self.latest])))
        self.output = output
        if returncode != 0 or 'Traceback' in output:
            return Failure(self.seed, self.filesystem.kind, round_number,
                           [('the command failed with exit code %d' % returncode, output.splitlines()[-5:])],
                           log, excludes, output)
        oracle_code, oracle_output = self.run_command(oracle_command(self.source, self.oracle, excludes))
        if oracle_code != 0 or oracle_output.strip():
            # rsync in place doesn't always finish in one run: where a directory
            # became a file of a hard-link group, rsync 3.5.0's generator asks for
            # the new file's default ACL ("sys_acl_get_file(..., ACL_TYPE_DEFAULT):
            # Permission denied", exit code 23), and only the next run copies its
            # ACL; and a rewritten file can lose a long xattr ("Missing abbreviated
            # xattr value", exit code 0: seed 2249). What rsync in place leaves is
            # what that next run leaves; the oracle prints nothing otherwise.
            self.notes.append('the oracle needed a second run (round %d): %s'
                              % (round_number, oracle_output.strip().splitlines()[0]))
            oracle_code, oracle_output = self.run_command(oracle_command(self.source, self.oracle, excludes))
        if oracle_code != 0:
            return Failure(self.seed, self.filesystem.kind, round_number,
                           [('the oracle (plain rsync) failed twice, exit code %d' % oracle_code,
                             oracle_output.splitlines()[-5:])], log, excludes, output)
        if self.tamper:
            self.tamper(round_number, self)
        findings = self.check()
        if findings:
            return Failure(self.seed, self.filesystem.kind, round_number, findings, log, excludes, output)
        return None

    def check(self):
        """
        Compare ``latest`` with the oracle, the new snapshot with ``latest`` and the older ones with their records.

        :returns: A list of ``(title, differences)`` tuples (see :class:`Failure`), empty when all is well.
        """
        findings = []
        latest = describe_tree(self.view(self.latest))
        oracle = describe_tree(self.view(self.oracle))
        findings.extend(self.compare('latest differs from rsync in place', oracle, latest,
                                     allowed=quick_check_blind_spots(describe_tree(self.source), oracle, latest)))
        backups = self.view(self.latest.parent)
        names = sorted(name for name in os.listdir(backups) if SNAPSHOT_NAME.match(name))
        new = [name for name in names if name not in self.records]
        for name in sorted(self.records):
            if name not in names:
                findings.append(('snapshot %s disappeared' % name, []))
            else:
                findings.extend(self.compare('snapshot %s changed' % name, self.records[name],
                                             describe_tree(os.path.join(backups, name))))
        if len(new) != 1:
            findings.append(('expected one new snapshot, found %d' % len(new), new))
        else:
            snapshot = describe_tree(os.path.join(backups, new[0]))
            findings.extend(self.compare('the new snapshot %s differs from latest' % new[0], latest, snapshot))
            findings.extend(check_manifest(pathlib.Path(backups), new[0]))
            self.records[new[0]] = snapshot
        return findings

    def compare(self, title, expected, actual, allowed=()):
        """
        Compare two trees, keep the differences of directory times as notes.

        :param title: What a difference means (a string).
        :param expected: The :class:`TreeDescription` that should be.
        :param actual: The :class:`TreeDescription` that is.
        :param allowed: Paths whose content may differ (see :func:`quick_check_blind_spots()`).
        :returns: A list with one finding, or an empty list.
        """
        differences, directory_times = compare_trees(expected, actual)
        differences = [difference for difference in differences
                       if not (difference.field == 'content' and difference.path in allowed)]
        self.notes.extend('%s: %s' % (title, render_difference(difference, *names_of(title)))
                          for difference in directory_times)
        return [(title, differences)] if differences else []

    def run_command(self, command):
        """
        Run a command in the filesystem's namespace, from a directory outside the checkout.

        :param command: The command (strings or paths).
        :returns: A tuple of the exit code and the output (standard output and error, a string).
        """
        result = subprocess.run(self.filesystem.command(*command), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=command_environment(), cwd=str(self.scratch),
                                timeout=self.timeout)
        return result.returncode, result.stdout.decode('utf-8', 'replace')

    def clean_up(self):
        """Remove the seed's source (on the host) and its backups and oracle (on the filesystem)."""
        if os.path.isdir(self.view(self.place)):
            self.filesystem.run('rm', '-rf', '--', self.place)
        shutil.rmtree(str(self.scratch), ignore_errors=True)


def check_manifest(backups, name):
    """
    Compare a snapshot's manifest, line for line, with the manifest that a walk of the whole snapshot gives.

    :param backups: The directory that holds the snapshots (a path this process sees).
    :param name: The snapshot's name.
    :returns: A list with one finding, or an empty list.

    From the second backup on, the command builds the manifest from the
    previous one and the names that the transfer changed: it must come out
    as if every entry had been described and every file read afresh.
    """
    try:
        method, complete, lines = read_entry_lines(str(manifest_path(backups, name)))
    except (OSError, ValueError) as e:
        return [('the manifest of %s is unreadable' % name, [str(e)])]
    walked = [format_entry(entry)[:-1].encode('utf-8', 'surrogateescape') for entry in scan_tree(str(backups / name))]
    if complete and lines == walked:
        return []
    missing, extra = sorted(set(walked) - set(lines)), sorted(set(lines) - set(walked))
    differences = ['only in the walk: %r' % line for line in missing] + ['only in the manifest: %r' % line
                                                                         for line in extra]
    if not complete:
        differences.append('the manifest has no entries (entries=none)')
    elif not differences:
        differences.append('the same lines in another order')
    return [('the manifest of %s differs from a walk of the snapshot' % name, differences)]


def oracle_command(source, oracle, excludes):
    """
    Build the oracle's command: plain rsync in place.

    :param source: The source directory (a path).
    :param oracle: The oracle directory (a path).
    :param excludes: The exclude patterns (strings).
    :returns: A list of strings.
    """
    return (['rsync'] + list(ORACLE_OPTIONS) + ['--exclude=%s' % pattern for pattern in excludes]
            + [str(source) + '/', str(oracle) + '/'])


def run_seed(seed, filesystem, scratch, rounds=None, tamper=None, options=()):
    """
    Run one seed and clean up after it.

    :param seed: The seed (an integer).
    :param filesystem: A mounted :class:`support.loop_filesystems.MountedFilesystem`.
    :param scratch: A directory for the seed's source on the host (a path; it may not exist yet).
    :param rounds: See :class:`SeedRun`.
    :param tamper: See :class:`SeedRun`.
    :param options: See :class:`SeedRun`.
    :returns: A :class:`SeedResult`.
    """
    run = SeedRun(seed, filesystem, scratch, rounds=rounds, tamper=tamper, options=options)
    try:
        return run.run()
    finally:
        run.clean_up()


# The long mode.


def parse_arguments(arguments):
    """
    Parse the long mode's command line.

    :param arguments: The arguments (a list of strings).
    :returns: An :class:`argparse.Namespace`.
    """
    parser = argparse.ArgumentParser(description="Compare rsync-system-backup with rsync in place on random trees.")
    parser.add_argument('--filesystem', choices=('tmpfs', 'ext4'), default='tmpfs',
                        help="the filesystem of the backups (default tmpfs)")
    parser.add_argument('--runs', type=int, help="how many seeds to run (default 1 with --seed, else 100)")
    parser.add_argument('--seconds', type=float, help="run seeds until this many seconds have passed")
    parser.add_argument('--seed', type=int, help="the first seed (the next runs take the next ones)")
    parser.add_argument('--rounds', type=int, help="backups per seed (default 3 to 5, chosen by the seed)")
    parser.add_argument('--work-dir', default=None, help="where to make the scratch directory (default: /tmp)")
    parser.add_argument('--keep-going', action='store_true', help="go on after a failing seed")
    parser.add_argument('--notes', action='store_true', help="show the differences of directory times too")
    return parser.parse_args(arguments)


def main(arguments=None):
    """
    Run seeds on one filesystem, print a line per seed and a report per failure.

    :param arguments: The command line arguments (a list of strings; :data:`None` for :data:`sys.argv`).
    :returns: The exit code: 0 when every seed passed, 1 otherwise.
    """
    options = parse_arguments(sys.argv[1:] if arguments is None else arguments)
    started = time.monotonic()
    failures = []
    count = 0
    scratch = pathlib.Path(tempfile.mkdtemp(prefix='rsb-differential.', dir=options.work_dir))
    try:
        with MountedFilesystem(options.filesystem, scratch / options.filesystem) as filesystem:
            for seed in choose_seeds(options):
                count += 1
                result = run_seed(seed, filesystem, scratch / ('seed-%d' % seed), rounds=options.rounds)
                print(result.summary(), flush=True)
                for note in result.notes if options.notes else ():
                    print('  note: %s' % note, flush=True)
                if not result.passed:
                    print(result.failure.report(), flush=True)
                    failures.append(str(seed))
                    if not options.keep_going:
                        break
    finally:
        shutil.rmtree(str(scratch), ignore_errors=True)
    seconds = time.monotonic() - started
    summary = '%d seeds on %s in %.0f s, %d failed' % (count, options.filesystem, seconds, len(failures))
    print(summary + (': ' + ' '.join(failures) if failures else ''))
    return 1 if failures else 0


def choose_seeds(options):
    """
    Give the seeds that the long mode runs.

    :param options: The :class:`argparse.Namespace` of :func:`parse_arguments()`.
    :returns: A generator of integers: ``--seed`` and the ones after it, or
              random ones; ``--runs`` of them (by default one with ``--seed``,
              else 100, or no limit with ``--seconds``), until ``--seconds``
              have passed.
    """
    started = time.monotonic()
    runs = options.runs
    if runs is None and options.seconds is None:
        runs = 1 if options.seed is not None else 100
    count = 0
    while runs is None or count < runs:
        if options.seconds is not None and time.monotonic() - started >= options.seconds:
            return
        yield options.seed + count if options.seed is not None else random.SystemRandom().randrange(2 ** 32)
        count += 1


if __name__ == '__main__':
    sys.exit(main())
