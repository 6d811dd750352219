"""
Planned transfers: ask rsync what it would change, then transfer exactly that.

The safe-hardlink snapshot method (see :mod:`.snapshots.safe_hardlink`)
splits the transfer into three steps, so that no file that an older snapshot
shares is ever changed in place:

1. **Plan**: :func:`.transfer_planned()` runs the run's own rsync command
   with ``--dry-run --itemize-changes`` (:data:`PLAN_OPTIONS`) and
   :func:`read_plan()` reads, as it comes, one line for each entry that
   rsync would create, change or delete (a :class:`TransferPlan`).
   A dry run costs about one in-place walk of the tree.
2. **Protect**: the snapshot method gives every planned entry that shares
   its inode with a snapshot a private copy (see :mod:`.snapshots.protection`).
3. **Apply**: :meth:`TransferPlan.apply_names()` and :func:`apply_input()`
   turn the plan into standard input for ``--files-from`` (with the options
   in :data:`APPLY_OPTIONS`), so that the real transfer touches
   only the planned entries: an entry that changes in the source after the
   plan is left alone until the next run, whatever it became.

Names are handled as bytes throughout: rsync prints them in the C locale,
where every byte outside printable ASCII (a newline, say, or the bytes of a
non-UTF-8 name) is escaped as ``\\#ooo`` (see :func:`unescape()`).
"""

import logging
import os
import posixpath
import re
import stat

from rsync_system_backup.transfer.progress import read_lines

ITEMIZE_WIDTH = 11
"""The width of rsync's ``%i`` field (``YXcstpoguax``); ``*deleting`` lines pad it to that width."""

PLAN_OPTIONS = ('--dry-run', '--itemize-changes', '--out-format=%i %n%L', '--stats')
"""
The rsync options that make a dry run print the plan (itemized changes, the
name, and ``%L``'s link text) and the statistics of the transfer it plans.
"""

APPLY_OPTIONS = ('--from0', '--files-from=-', '--ignore-missing-args')
"""
The rsync options of the apply: the planned names come NUL-separated on
standard input, and a planned name that vanished since the plan is skipped
(the next run picks up whatever happened to it).
"""

ROOT_OPTIONS = ('--dirs', '--exclude=*')
"""
The rsync options that transfer the top directory's own attributes and
nothing else. The apply can't list the top directory: in ``--files-from``,
``.`` brings in every entry directly in it, also those that the plan didn't
list (which must not be touched). So when the top directory changes, or an
entry directly in it is created, replaced or deleted (which changes its
modification time), one more small rsync puts its attributes right.
"""

ITEMIZED_PATTERN = re.compile(rb'^(?:[<>ch.][fdLDS][ .+?a-zA-Z]{9}|\*deleting  ) ')
"""Matches the start of an itemized line (``%i`` and a space), and nothing in rsync's ``--stats`` block."""

ESCAPE_PATTERN = re.compile(rb'\\#([0-7]{3})')
"""rsync's escape sequence for a byte it doesn't print as is."""

ARROWS = (b' -> ', b' => ')
"""What ``%L`` puts between a name and a symbolic link's target or a hard link's leader."""

PLAN_ENVIRONMENT = dict(LC_ALL='C')
"""The environment of the plan's rsync: in the C locale it escapes every byte that isn't printable ASCII."""

logger = logging.getLogger(__name__)


class TransferPlan(object):

    """What a transfer would do, as names relative to the source and ``latest`` (bytes)."""

    def __init__(self):
        """Start an empty plan."""
        self.changed = set()
        """Entries that rsync would create or change, and the leaders of hard links it would make."""

        self.leaders = set()
        """The hard-link leaders that rsync names (``=> leader``), which may themselves be unchanged."""

        self.deletions = set()
        """Entries of ``latest`` that rsync would delete."""

        self.root_changed = False
        """:data:`True` when the top directory's own attributes would change."""

    def add_line(self, line):
        """
        Add one line of the dry run's output.

        :param line: A line (bytes, without its line ending).
        :returns: :data:`True` when it was an itemized change, :data:`False` otherwise.
        """
        if not ITEMIZED_PATTERN.match(line):
            return False
        flags, text = line[:ITEMIZE_WIDTH], line[ITEMIZE_WIDTH + 1:]
        if flags.startswith(b'*deleting'):
            self.deletions.add(normalize(unescape(text)))
            return True
        names, leaders = read_names(text)
        for name in names:
            name = normalize(name)
            if name == b'.':
                self.root_changed = True
            else:
                self.changed.add(name)
        self.leaders.update(normalize(leader) for leader in leaders)
        return True

    def apply_names(self, extra=()):
        """
        List the names that the apply transfers.

        :param extra: More names to transfer (bytes; the protect step's findings).
        :returns: A sorted list of names (bytes): the changed entries, the
                  hard-link leaders, `extra`, and the directories that hold
                  any of them or a deletion (removing or replacing an entry
                  changes its directory's modification time, which the
                  apply puts right). The top directory is never listed
                  (see :data:`ROOT_OPTIONS`).
        """
        names = set(self.changed) | self.leaders | set(extra)
        for name in list(names) + list(self.deletions):
            parent = posixpath.dirname(name)
            while parent and parent not in names:
                names.add(parent)
                parent = posixpath.dirname(parent)
        return sorted(names)

    def touches_root(self, extra=()):
        """
        Check whether the top directory needs its own transfer after the apply.

        :param extra: See :meth:`apply_names()`.
        :returns: :data:`True` when its attributes change, or when an entry
                  directly in it is created, changed or deleted.
        """
        return self.root_changed or any(b'/' not in name for name in
                                        self.changed | self.leaders | self.deletions | set(extra))


def unescape(text):
    """
    Turn a name as rsync prints it back into the name.

    :param text: The printed name (bytes).
    :returns: The name (bytes).
    """
    return ESCAPE_PATTERN.sub(lambda match: bytes([int(match.group(1), 8)]), text)


def normalize(name):
    """
    Give a name as the apply lists it.

    :param name: A name as rsync prints it, unescaped (bytes); directories end in a slash.
    :returns: The name without the slash, or ``.`` for the top directory (bytes).

    The slash must go: in ``--files-from``, ``dir/`` (like ``.``) would also
    bring in the directory's entries, which the plan didn't list.
    """
    return name.rstrip(b'/') or b'.'


def read_names(text):
    """
    Read the names in the text that follows an itemized change.

    :param text: What follows ``%i`` and a space (bytes).
    :returns: A tuple of two lists of names (bytes): the possible names of
              the entry, and the possible leaders of a hard link.

    ``%L`` adds `` -> TARGET`` to symbolic links and `` => LEADER`` to hard
    links, and rsync doesn't escape those arrows inside names, so a name
    that holds one can be read in several ways. Every reading is kept:
    a listed name that doesn't exist is skipped by the apply, and one that
    exists is protected and transferred like any planned entry, which is
    always safe.
    """
    names, leaders = [text], []
    for arrow in ARROWS:
        start = text.find(arrow)
        while start >= 0:
            names.append(text[:start])
            if arrow == ARROWS[1]:
                leaders.append(text[start + len(arrow):])
            start = text.find(arrow, start + 1)
    return [unescape(name) for name in names], [unescape(leader) for leader in leaders]


def read_plan(pipe, statistics):
    """
    Read a dry run's output as it comes.

    :param pipe: The readable end of the dry run's standard output (a file object).
    :param statistics: A :class:`.TransferStatistics` for the dry run's ``--stats`` block.
    :returns: A :class:`TransferPlan`.
    """
    plan = TransferPlan()
    with pipe:
        for line in read_lines(pipe.fileno()):
            if not plan.add_line(line):
                statistics.parse_line(line.decode('utf-8', 'replace'))
    return plan


def apply_input(names):
    """
    Give the apply's standard input.

    :param names: The names to transfer (bytes, see :meth:`TransferPlan.apply_names()`).
    :returns: The names, each followed by a NUL byte (bytes).
    """
    return b''.join(name + b'\0' for name in names)


def drop_redirected_names(source, names):
    """
    Leave out the names that no longer lie below real directories of the source.

    :param source: The source directory (a string; rsync runs in the local
                   source context, so this process sees the same tree).
    :param names: The names the apply would transfer (bytes, see :meth:`TransferPlan.apply_names()`).
    :returns: A tuple of two lists of names (bytes): the names to transfer,
              and the names left out because a directory above them can't
              be examined (permission denied, say when rsync runs through
              sudo and this process can't search it), which the backup
              then lacks, as if rsync couldn't read them.

    With ``--files-from`` the sending rsync opens each listed name by its
    path, so the kernel would follow a symbolic link that whoever owns a
    directory of the source put in its place after the plan, and copy what
    it points to (``/etc``, say) into the backup. So right before the
    apply, every directory above a listed name (below `source`) is checked
    with :func:`os.lstat()`; a name below one that is no longer a real
    directory is left out (and that directory too, whose type changed since
    the plan), which is logged, and the next run transfers whatever is there
    by then. What is left is the short time between this check and rsync's
    reads, like plain rsync's own between its walk and its reads.
    """
    top = os.fsencode(source).rstrip(b'/')
    directories, obstacles = {}, {b'': None}

    def find_obstacle(path):
        """Give the highest of `path` and the directories above it that isn't a real directory, or :data:`None`."""
        if path not in obstacles:
            obstacle = find_obstacle(posixpath.dirname(path))
            if obstacle is None:
                try:
                    directories[path] = stat.S_ISDIR(os.lstat(top + b'/' + path).st_mode)
                except PermissionError:
                    directories[path] = None
                except OSError:
                    directories[path] = False
                obstacle = None if directories[path] else path
            obstacles[path] = obstacle
        return obstacles[path]
    kept, dropped = [], {}
    for name in names:
        obstacle = find_obstacle(posixpath.dirname(name))
        if obstacle is None:
            kept.append(name)
        else:
            dropped.setdefault(obstacle, []).append(name)
    unexamined = []
    for obstacle, below in sorted(dropped.items()):
        pathname = os.fsdecode(top + b'/' + obstacle)
        if directories[obstacle] is None:
            logger.warning("Not transferring %i planned name(s): %s in the source can't be examined (permission "
                           "denied); run as root to back them up.", len(below), pathname)
            unexamined.extend(below)
        else:
            logger.info("Leaving %i planned name(s) to the next run: %s in the source is no longer a directory.",
                        len(below), pathname)
    return [name for name in kept if directories.get(name) is not False], unexamined
