"""
Deterministic sample trees for the benchmarks.

A :class:`TreePlan` describes a tree of a given size: regular files of mixed
sizes and permissions, extra hard links to some of them, symbolic links
(some dangling), empty directories and a sprinkling of awkward names
(spaces, quotes, a newline, glob characters, non-UTF-8 bytes, a leading
dash). The same file count and seed always give the same tree, so every
benchmark run works on the same data::

    from tree import TreePlan

    plan = TreePlan(files=10000, seed=1)
    plan.create('/dev/shm/source')
    plan.mutate('/dev/shm/source', round_number=1)   # changes about 1% of the files

:meth:`TreePlan.mutate()` rewrites about 1% of the files in place (new
content, a slightly different size, a new modification time), adds a few new
files and removes the files that the previous round added, so each round has
the same amount of work for rsync.
"""

import math
import os
import random
import re

FILES_PER_DIRECTORY = 40
"""How many entries the generator puts in one directory."""

ODD_NAMES = (
    'with space',
    "single'quote",
    'double"quote',
    'new\nline',
    'tab\there',
    '-leading-dash',
    'glob*?[chars]',
    'dollar$HOME;semicolon&amp',
    'back\\slash',
    'colon:name',
    'ünïcödé-文件',
    os.fsdecode(b'latin1-\xe9-not-utf8'),
    'x' * 200,
)
"""The awkward parts of names that about 1% of the entries get (each followed by a unique number)."""

BASE_MTIME = 1600000000
"""The modification time of the generated files (a fixed moment, for determinism)."""

PLAIN_NAME = re.compile(r'^f\d{6}(\.\w+)?$')
"""Matches the ordinary names of the generated entries (the others are the awkward ones)."""

POOL_SIZE = 2 * 1024 * 1024
"""The size of the block of random bytes that file contents are cut from."""


class Entry(object):

    """One planned entry of a tree: a regular file, a hard link or a symbolic link."""

    def __init__(self, path, kind, size=0, mode=0o644, target=None, offset=0):
        """
        Describe an entry.

        :param path: The relative pathname (a string).
        :param kind: ``'file'``, ``'hardlink'`` or ``'symlink'``.
        :param size: The size in bytes of a regular file.
        :param mode: The permission bits of a regular file.
        :param target: The relative pathname that a hard link points to, or
                       the text of a symbolic link.
        :param offset: Where in the random pool a regular file's content starts.
        """
        self.path = path
        self.kind = kind
        self.size = size
        self.mode = mode
        self.target = target
        self.offset = offset


class TreeStatistics(object):

    """What a tree holds: counts of each kind of entry and the bytes in its regular files."""

    def __init__(self, entries, directories):
        """
        Count the entries.

        :param entries: The :class:`Entry` objects of a plan.
        :param directories: The relative pathnames of its directories.
        """
        self.files = sum(1 for entry in entries if entry.kind == 'file')
        self.hard_links = sum(1 for entry in entries if entry.kind == 'hardlink')
        self.symbolic_links = sum(1 for entry in entries if entry.kind == 'symlink')
        self.odd_names = sum(1 for entry in entries if not PLAIN_NAME.match(os.path.basename(entry.path)))
        self.directories = len(directories)
        self.bytes = sum(entry.size for entry in entries if entry.kind == 'file')

    def as_dict(self):
        """The statistics as a :class:`dict` (for JSON)."""
        return dict(vars(self))


class TreePlan(object):

    """A deterministic sample tree: see the module documentation."""

    def __init__(self, files, seed=0, fraction=0.01):
        """
        Plan a tree.

        :param files: The number of non-directory entries (regular files,
                      hard links and symbolic links together; at least 1).
        :param seed: Picks one of many trees of that size (an integer).
        :param fraction: The part of the files that :meth:`mutate()` changes.
        """
        self.files = max(1, files)
        self.seed = seed
        self.fraction = fraction
        self.entries = []
        self.directories = []
        self.plan()

    def plan(self):
        """Fill :attr:`entries` and :attr:`directories`."""
        rng = random.Random(self.seed)
        directory_count = -(-self.files // FILES_PER_DIRECTORY)
        top_count = max(1, int(math.sqrt(directory_count)))
        regular = []
        for number in range(self.files):
            index = number // FILES_PER_DIRECTORY
            directory = os.path.join('top-%03d' % (index % top_count), directory_name(index))
            if number % FILES_PER_DIRECTORY == 0:
                self.directories.append(directory)
            name = 'f%06d%s' % (number, rng.choice(('.conf', '.txt', '.so', '', '.db')))
            if rng.random() < 0.01:
                name = '%s-%d' % (rng.choice(ODD_NAMES), number)
            path = os.path.join(directory, name)
            choice = rng.random()
            if choice < 0.02 and regular:
                self.entries.append(Entry(path, 'hardlink', target=rng.choice(regular).path))
            elif choice < 0.04:
                self.entries.append(Entry(path, 'symlink', target=symlink_target(rng, regular)))
            else:
                entry = Entry(path, 'file', size=pick_size(rng), mode=pick_mode(rng),
                              offset=rng.randrange(POOL_SIZE))
                regular.append(entry)
                self.entries.append(entry)
        self.directories.extend('top-%03d/empty-%d' % (n % top_count, n) for n in range(max(1, top_count // 4)))

    @property
    def statistics(self):
        """The :class:`TreeStatistics` of this plan."""
        return TreeStatistics(self.entries, self.directories)

    def pool(self):
        """The random bytes that file contents are cut from (the same for a given seed)."""
        return random.Random(self.seed).randbytes(POOL_SIZE)

    def create(self, root):
        """
        Create the tree.

        :param root: The directory to create it in (a string; created when missing).
        """
        pool = self.pool()
        for directory in self.directories:
            os.makedirs(os.path.join(root, directory), exist_ok=True)
        for number, entry in enumerate(self.entries):
            pathname = os.path.join(root, entry.path)
            if entry.kind == 'file':
                write_content(pathname, pool, entry.offset, entry.size, entry.path)
                os.chmod(pathname, entry.mode)
                os.utime(pathname, (BASE_MTIME + number, BASE_MTIME + number))
            elif entry.kind == 'hardlink':
                os.link(os.path.join(root, entry.target), pathname)
            else:
                os.symlink(entry.target, pathname)

    def churn_paths(self, round_number):
        """
        Name the files that :meth:`mutate()` adds in a round.

        :param round_number: The round (an integer, 1 or more).
        :returns: A list of relative pathnames (strings).
        """
        rng = random.Random(self.seed * 1000003 + round_number * 2 + 1)
        count = max(1, self.change_count() // 10)
        return [os.path.join(rng.choice(self.directories), 'new-r%d-%d' % (round_number, n)) for n in range(count)]

    def change_count(self):
        """How many entries one round of :meth:`mutate()` changes (an integer, at least 1)."""
        return max(1, int(round(self.files * self.fraction)))

    def mutate(self, root, round_number):
        """
        Change about :attr:`fraction` of the files of a tree made by :meth:`create()`.

        Rounds must be applied in order (1, 2, 3, ...): each round removes
        the files that the round before added.

        :param root: The tree's directory (a string).
        :param round_number: The round (an integer, 1 or more).
        :returns: The number of changed entries (an integer).
        """
        rng = random.Random(self.seed * 1000003 + round_number * 2)
        pool = self.pool()
        added = self.churn_paths(round_number)
        removed = self.churn_paths(round_number - 1) if round_number > 1 else []
        regular = [entry for entry in self.entries if entry.kind == 'file']
        rewrites = min(len(regular), max(1, self.change_count() - len(added) - len(removed)))
        moment = BASE_MTIME + 10000000 + round_number
        for entry in rng.sample(regular, rewrites):
            size = max(0, entry.size + rng.randint(-entry.size // 10 - 1, entry.size // 10 + 1))
            pathname = os.path.join(root, entry.path)
            write_content(pathname, pool, rng.randrange(POOL_SIZE), size, '%s round %d' % (entry.path, round_number))
            os.utime(pathname, (moment, moment))
        for path in removed:
            os.unlink(os.path.join(root, path))
        for path in added:
            write_content(os.path.join(root, path), pool, rng.randrange(POOL_SIZE), rng.randrange(8192), path)
        return rewrites + len(added) + len(removed)


def directory_name(index):
    """
    Name the directory with a given number (one in 97 gets an awkward name).

    :param index: The directory's number (an integer).
    :returns: A name (a string).
    """
    if index % 97 == 5:
        return "dir %d with 'odd' name" % index
    return 'dir-%05d' % index


def pick_size(rng):
    """
    Pick a file size: mostly small, some tens of kilobytes, a few of a megabyte or more.

    :param rng: A :class:`random.Random` object.
    :returns: A size in bytes (an integer).
    """
    choice = rng.random()
    if choice < 0.0005:
        return rng.randint(1024 * 1024, 2 * 1024 * 1024)
    if choice < 0.1:
        return int(8192 * 8 ** rng.random())
    return rng.randrange(8192)


def pick_mode(rng):
    """
    Pick permission bits: mostly 0644, some executables and private files.

    :param rng: A :class:`random.Random` object.
    :returns: The mode (an integer).
    """
    choice = rng.random()
    if choice < 0.05:
        return 0o755
    if choice < 0.1:
        return 0o600
    return 0o644


def symlink_target(rng, regular):
    """
    Pick the text of a symbolic link: a file elsewhere in the tree, a dangling name or an absolute path.

    :param rng: A :class:`random.Random` object.
    :param regular: The regular files planned so far (a list of :class:`Entry` objects).
    :returns: The link's text (a string).
    """
    choice = rng.random()
    if choice < 0.7 and regular:
        return os.path.join('..', '..', rng.choice(regular).path)
    if choice < 0.9:
        return 'missing-%d' % rng.randrange(1000)
    return '/nonexistent/target'


def write_content(pathname, pool, offset, size, label):
    """
    Write a file: a label line, then bytes from the random pool (wrapping around).

    :param pathname: The file to create or overwrite in place (a string).
    :param pool: The random bytes (a :class:`bytes` object).
    :param offset: Where in the pool to start.
    :param size: The size of the file in bytes.
    :param label: Text that makes the content unique (a string).
    """
    head = (label.encode('utf-8', 'surrogateescape') + b'\n')[:size]
    remaining = size - len(head)
    chunks = [head]
    while remaining > 0:
        chunk = pool[offset:offset + remaining]
        chunks.append(chunk)
        remaining -= len(chunk)
        offset = 0
    with open(pathname, 'wb') as handle:
        handle.write(b''.join(chunks))
