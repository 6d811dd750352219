"""
Planned transfers: ask rsync what it would change, then transfer exactly that.

The safe-hardlink snapshot method (see :mod:`.snapshots.safe_hardlink`)
splits the transfer into steps, so that no file that an older snapshot
shares is ever changed in place:

1. **Plan**: :func:`.transfer_planned()` runs the run's own rsync command
   with ``--dry-run --itemize-changes`` (:data:`PLAN_OPTIONS`) and
   :func:`read_plan()` reads, as it comes, one line for each entry that
   rsync would create, change or delete (a :class:`TransferPlan`).
   A dry run costs about one in-place walk of the tree.
2. **Check**: :meth:`TransferPlan.check_names()` keeps only the readings
   of each line that name an entry of that kind at that path of the source
   (see :class:`SourceView`).
3. **Protect**: the snapshot method carries out the deletions, and gives
   every entry that rsync would change in place (a symbolic link, device or
   special file whose attributes change), and that a snapshot shares, an
   inode of its own (see :mod:`.snapshots.protection`).
4. **Apply**: rsync transfers the listed names (``--files-from``, see
   :func:`files_from()`, with :data:`APPLY_OPTIONS`) and the directories
   that hold any planned name, whose times the apply puts right. It writes
   every listed regular file anew (``--ignore-times``), so it never changes
   a file's inode in place. The top directory's own attributes take one
   more small rsync (:data:`ROOT_OPTIONS`).

The btrfs and reflink methods, whose snapshots share no inode with
``latest``, apply a plan from the source's snapshots without steps 3 and 4's
care: rsync gets the deletions and new hard links too and changes
attributes in place (:data:`IN_PLACE_APPLY_OPTIONS`, :func:`in_place_names()`).

Names are bytes throughout: rsync prints them in the C locale, where every
byte outside printable ASCII (a newline, say, or the bytes of a non-UTF-8
name) is escaped as ``\\#ooo`` (see :func:`unescape()`). Nothing in the
source can make a name mean another: a line whose name holds rsync's own
arrows (`` -> `` before a symbolic link's target, `` => `` before a hard
link's leader) is read every way it can be, and a reading counts only when
the source has an entry of the itemized kind there (and, for a symbolic
link, with that target). A name with an empty, ``.`` or ``..`` component
never counts, and every name goes to rsync behind ``./`` (so a leading
``#`` or ``;`` isn't read as a comment, and nothing before it as a path).
"""

import logging
import os
import posixpath
import re
import stat

from rsync_system_backup.agent.tree import is_clean
from rsync_system_backup.transfer.progress import read_lines

ITEMIZE_WIDTH = 11
"""The width of rsync's ``%i`` field (``YXcstpoguax``); ``*deleting`` lines pad it to that width."""

PLAN_OPTIONS = ('--dry-run', '--itemize-changes', '--out-format=%i %n%L', '--stats')
"""
The rsync options that make a dry run print the plan (itemized changes, the
name, and ``%L``'s link text, which names the leader of a new hard link) and
the statistics of the transfer it plans.
"""

APPLY_OPTIONS = ('--from0', '--files-from=-', '--ignore-missing-args', '--ignore-times')
"""
The rsync options of the apply: the names come NUL-separated on standard
input; a name that vanished since the plan is skipped (the next run picks up
whatever happened to it); and every listed regular file is written anew and
renamed into place, whether its content or only its attributes change, and
also when it became equal to ``latest``'s in size and time since the plan.
So rsync never changes the inode of a file that snapshots share: hard links
of the source are linked to the new file (``--hard-links``), as when
content changes.
"""

IN_PLACE_APPLY_OPTIONS = ('--from0', '--files-from=-', '--delete-missing-args', '--force')
"""
The rsync options of the apply into a ``latest`` that no snapshot shares an
inode with (the btrfs and reflink methods), planned from the source's
read-only snapshots (see :mod:`.transfer.send_plan`): the names come
NUL-separated on standard input, together with the plan's deletions and
its new hard links with their leaders (see :func:`in_place_names()`). rsync
deletes a listed name that the snapshot lacks, a directory with what it
holds, and replaces an entry whose kind changes; it changes attributes in
place and links the new names as a whole run would, so the apply does what
rsync in place does to those names, without walking the rest.
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

SYMLINK_ARROW = b' -> '
"""What ``%L`` puts between a symbolic link's name and its target."""

LEADER_ARROW = b' => '
"""What ``%L`` puts between a new hard link's name and the name of the entry it links to."""

PLAN_ENVIRONMENT = dict(LC_ALL='C')
"""The environment of the plan's rsync: in the C locale it escapes every byte that isn't printable ASCII."""

KIND_TESTS = {
    b'f': stat.S_ISREG,
    b'd': stat.S_ISDIR,
    b'L': stat.S_ISLNK,
    b'D': lambda mode: stat.S_ISCHR(mode) or stat.S_ISBLK(mode),
    b'S': lambda mode: stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode),
}
"""What each kind letter of ``%i`` means, as a test of an entry's mode."""

logger = logging.getLogger(__name__)


class PlannedEntry(object):

    """One itemized line of the dry run that creates or changes an entry."""

    def __init__(self, flags, text):
        """
        Remember a line.

        :param flags: The ``%i`` field (bytes, 11 characters).
        :param text: What follows it: the name as rsync prints it, and ``%L`` (bytes).
        """
        self.update = flags[:1]
        """How rsync updates it: ``>`` (transfers content), ``c`` (creates), ``h`` (hard-links), ``.`` (attributes)."""

        self.kind = flags[1:2]
        """The entry's kind in the source: ``f``, ``d``, ``L``, ``D`` or ``S`` (see :data:`KIND_TESTS`)."""

        self.text = text
        """The rest of the line (bytes, escaped as rsync prints it)."""

    def readings(self):
        """
        Read the line every way it can be read.

        :returns: A list of tuples of a name (bytes, unescaped, without a
                  directory's trailing slash), the arrow that ``%L`` put
                  after it (:data:`SYMLINK_ARROW`, :data:`LEADER_ARROW` or
                  :data:`None`) and what follows the arrow: a symbolic link's
                  target or a new hard link's leader (bytes, or :data:`None`).

        rsync doesn't escape its arrows inside names and targets, so a
        name that holds one can be read in several ways; :meth:`TransferPlan.check_names()`
        keeps the readings that match the source. A symbolic link always has
        an arrow: its target, or the leader when it is a new hard link.
        """
        text = self.text
        if self.kind == b'd':
            return [(unescape(text).rstrip(b'/') or b'.', None, None)]
        readings = [] if self.kind == b'L' else [(unescape(text), None, None)]
        arrows = ((SYMLINK_ARROW,) if self.kind == b'L' else ()) + ((LEADER_ARROW,) if self.update == b'h' else ())
        for arrow in arrows:
            start = text.find(arrow)
            while start >= 0:
                readings.append((unescape(text[:start]), arrow, unescape(text[start + len(arrow):])))
                start = text.find(arrow, start + 1)
        return readings


class TransferPlan(object):

    """What a transfer would do, as names relative to the source and ``latest`` (bytes)."""

    def __init__(self):
        """Start an empty plan."""
        self.lines = []
        """The :class:`PlannedEntry` objects of the dry run, as read (see :meth:`check_names()`)."""

        self.deletions = set()
        """Entries of ``latest`` that rsync would delete (a directory with everything in it)."""

        self.root_changed = False
        """:data:`True` when the top directory's own attributes would change."""

        self.entries = {}
        """The checked names of created or changed entries (bytes) and their kinds (see :meth:`check_names()`)."""

        self.links = {}
        """New hard links to an entry that the transfer leaves alone: name -> that entry's name (both bytes)."""

        self.unchecked = set()
        """Planned names that couldn't be checked (a directory of the source that this process can't search)."""

        self.changed_since = 0
        """How many lines named nothing that the source holds (it changed since the plan: the next run sees to it)."""

        self.attributes_only = set()
        """
        The checked names of entries other than directories whose attributes
        alone change (no new content, no new link): rsync changes them in
        place in ``latest``, and with them every other name of the inode
        (the dry run itemizes those too, but one can drop out of the plan).
        """

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
            name = unescape(text).rstrip(b'/')
            if is_clean(name):
                self.deletions.add(name)
        elif text == b'./' and flags[1:2] == b'd':
            self.root_changed = True
        else:
            self.lines.append(PlannedEntry(flags, text))
        return True

    def check_names(self, source):
        """
        Keep the readings of each line that name what the source holds.

        :param source: A :class:`SourceView` of the source.

        A reading counts when its name is clean (see :func:`is_clean()`),
        every directory above it is a real directory of the source, and the
        source has an entry of the line's kind there: for a symbolic link
        with the target the line shows, for a new hard link one whose leader
        is another name of the same inode (read as a name and itself as its
        leader, ``x -> y => x -> y`` is the name of a file). The counted
        names go to :attr:`entries`; a new
        hard link to an entry that the plan leaves alone goes to
        :attr:`links` instead (the protect step makes it, as rsync would: a
        link to ``latest``'s entry). A name below a
        directory that can't be searched goes to :attr:`unchecked`; a line
        that names nothing of the source counts in :attr:`changed_since`.
        """
        hard_links = []
        for entry in self.lines:
            readings = [reading for reading in entry.readings() if is_clean(reading[0])]
            counted, unsearchable = False, []
            for name, arrow, extra in readings:
                info = source.lstat(name)
                if info is source.UNSEARCHABLE:
                    unsearchable.append(name)
                    continue
                if info is None or not KIND_TESTS[entry.kind](info.st_mode):
                    continue
                if arrow == SYMLINK_ARROW and source.readlink(name) != extra:
                    continue
                if arrow == LEADER_ARROW:
                    leader = source.lstat(extra) if is_clean(extra) else None
                    if leader is None or leader is source.UNSEARCHABLE or \
                            (leader.st_dev, leader.st_ino) != (info.st_dev, info.st_ino):
                        continue
                    if extra == name:
                        # rsync never names an entry as its own leader: the
                        # line is another name's ('x -> y => x -> y' is a file).
                        continue
                    hard_links.append((name, extra))
                self.entries[name] = entry.kind
                if entry.update == b'.' and entry.kind != b'd':
                    self.attributes_only.add(name)
                counted = True
            if unsearchable and not counted:
                self.unchecked.add(unsearchable[0])
            elif not counted:
                self.changed_since += 1
        if self.changed_since:
            logger.info("Leaving %i planned name(s) to the next run: they changed in the source during the plan.",
                        self.changed_since)
        for name, leader in hard_links:
            if leader not in self.entries:
                # rsync would link the name to latest's unchanged entry: so does the protect step.
                self.links[name] = leader
                del self.entries[name]

    def apply_names(self):
        """
        List the names of the apply.

        :returns: A sorted list of names (bytes): the checked entries,
                  and the directories that hold any planned name or
                  deletion (removing, creating or replacing an entry
                  changes its directory's modification time, which the
                  apply puts right), but no directory that goes or becomes
                  something else. The top directory is never listed (see
                  :data:`ROOT_OPTIONS`).
        """
        names = set(self.entries)
        for name in list(self.entries) + list(self.links) + list(self.deletions):
            parent = posixpath.dirname(name)
            while parent and parent not in names and parent not in self.entries and parent not in self.links \
                    and parent not in self.deletions:
                names.add(parent)
                parent = posixpath.dirname(parent)
        return sorted(names)

    def touched_names(self):
        """
        List every name below the top that the transfer may change.

        :returns: A sorted list of names (bytes): the apply's names, the new links and the deletions.
        """
        return sorted(set(self.apply_names()) | set(self.links) | self.deletions)

    def touches_root(self):
        """
        Check whether the top directory needs its own transfer after the apply.

        :returns: :data:`True` when its attributes change, or when an entry
                  directly in it is created, changed or deleted.
        """
        return self.root_changed or any(b'/' not in name for name in
                                        set(self.entries) | set(self.links) | self.deletions)


class SourceView(object):

    """
    The source as this process sees it: entries looked up one directory at a time.

    Every directory above a name must be a real directory (not a symbolic
    link), so that a name never reaches through a link that whoever owns a
    directory of the source put there.
    """

    UNSEARCHABLE = object()
    """What :meth:`lstat()` gives for a name below a directory that can't be searched."""

    def __init__(self, source):
        """
        Look at a source directory.

        :param source: Its pathname (a string).
        """
        self.top = os.fsencode(source).rstrip(b'/') or b'/'
        self.known = {}

    def forget(self):
        """Forget what was looked up (before the source is looked at again)."""
        self.known.clear()

    def lstat(self, name):
        """
        Look up an entry.

        :param name: Its name (bytes, clean, relative to the source).
        :returns: An :class:`os.stat_result`, :data:`None` when it doesn't
                  exist or a directory above it isn't a real directory,
                  or :data:`UNSEARCHABLE`.
        """
        if name not in self.known:
            parent = posixpath.dirname(name)
            above = self.lstat(parent) if parent else None
            if parent and (above is None or above is self.UNSEARCHABLE or not stat.S_ISDIR(above.st_mode)):
                self.known[name] = self.UNSEARCHABLE if above is self.UNSEARCHABLE else None
            else:
                try:
                    self.known[name] = os.lstat(self.pathname(name))
                except PermissionError:
                    self.known[name] = self.UNSEARCHABLE
                except OSError:
                    self.known[name] = None
        return self.known[name]

    def readlink(self, name):
        """
        Read a symbolic link's target.

        :param name: The link's name (bytes; :meth:`lstat()` said it's a symbolic link).
        :returns: The target (bytes), or :data:`None` when it can't be read.
        """
        try:
            return os.readlink(self.pathname(name))
        except OSError:
            return None

    def pathname(self, name):
        """
        Give the pathname of an entry.

        :param name: Its name (bytes, relative to the source).
        :returns: The pathname (bytes).
        """
        return self.top + b'/' + name if self.top != b'/' else b'/' + name

    def is_directory(self, name):
        """
        Check that a name is a real directory of the source (see :meth:`lstat()`).

        :param name: The name (bytes).
        :returns: :data:`True` when it is, :data:`False` when it isn't, :data:`None` when it can't be examined.
        """
        info = self.lstat(name)
        if info is self.UNSEARCHABLE:
            return None
        return info is not None and stat.S_ISDIR(info.st_mode)


def unescape(text):
    """
    Turn a name as rsync prints it back into the name.

    :param text: The printed name (bytes).
    :returns: The name (bytes).
    """
    return ESCAPE_PATTERN.sub(lambda match: bytes([int(match.group(1), 8)]), text)


def read_plan(pipe, statistics):
    """
    Read a dry run's output as it comes.

    :param pipe: The readable end of the dry run's standard output (a file object).
    :param statistics: A :class:`.TransferStatistics` for the dry run's ``--stats`` block.
    :returns: A :class:`TransferPlan` (whose names aren't checked yet, see :meth:`TransferPlan.check_names()`).
    """
    plan = TransferPlan()
    with pipe:
        for line in read_lines(pipe.fileno()):
            if not plan.add_line(line):
                statistics.parse_line(line.decode('utf-8', 'replace'))
    return plan


def files_from(names):
    """
    Give the apply's standard input.

    :param names: Clean names (bytes).
    :returns: The names, each behind ``./`` and followed by a NUL byte (bytes).

    In ``--files-from``, ``./`` is where the part of a name that the
    destination gets starts, so rsync reads what follows as it is: a
    name that starts with ``#`` or ``;`` isn't a comment then.
    """
    return b''.join(b'./' + name + b'\0' for name in names)


def in_place_names(plan):
    """
    List the names of an apply with :data:`IN_PLACE_APPLY_OPTIONS`.

    :param plan: A checked :class:`TransferPlan`.
    :returns: A sorted list of names (bytes): the apply's names (see
              :meth:`TransferPlan.apply_names()`), the new hard links and the
              entries they link to (rsync links them when it sees both), and
              the deletions (rsync deletes a listed name that the source
              lacks), but none below a deletion or below an entry that is no
              directory in the source: rsync removes a directory with what
              it holds (rsync's dry run itemizes each of those names, and
              they lie below something that isn't a directory of the source).
    """
    gone = plan.deletions | set(name for name, kind in plan.entries.items() if kind != b'd')
    deletions = set(name for name in plan.deletions if not lies_below(name, gone))
    return sorted(set(plan.apply_names()) | set(plan.links) | set(plan.links.values()) | deletions)


def lies_below(name, directories):
    """
    Check whether a name lies below any of some names.

    :param name: A path (bytes).
    :param directories: A set of paths (bytes).
    :returns: :data:`True` when a name above it is in the set.
    """
    parent = posixpath.dirname(name)
    while parent:
        if parent in directories:
            return True
        parent = posixpath.dirname(parent)
    return False


def drop_redirected_names(source, names):
    """
    Leave out the names that no longer lie below real directories of the source.

    :param source: A :class:`SourceView` of the source (rsync runs in the
                   local source context, so this process sees the same tree).
    :param names: The names the apply would transfer (bytes).
    :returns: A tuple of two lists of names (bytes): the names to transfer,
              and the names left out because a directory above them can't
              be examined (permission denied, say when rsync runs through
              sudo and this process can't search it), which the backup
              then lacks, as if rsync couldn't read them.

    With ``--files-from`` the sending rsync opens each listed name by its
    path, so the kernel would follow a symbolic link that whoever owns a
    directory of the source put in its place after the plan, and copy what
    it points to (``/etc``, say) into the backup. So right before the
    apply, every directory above a listed name is looked at afresh; a name
    below one that is no longer a real directory is left out, which is
    logged, and the next run transfers whatever is there by then. What is
    left is the short time between this check and rsync's reads, like
    plain rsync's own between its walk and its reads.
    """
    source.forget()
    kept, dropped = [], {}
    for name in names:
        obstacle = find_obstacle(source, posixpath.dirname(name))
        if obstacle is None:
            kept.append(name)
        else:
            dropped.setdefault(obstacle, []).append(name)
    unexamined = []
    for obstacle, below in sorted(dropped.items()):
        pathname = os.fsdecode(source.pathname(obstacle))
        if source.is_directory(obstacle) is None:
            logger.warning("Not transferring %i planned name(s): %s in the source can't be examined (permission "
                           "denied); run as root to back them up.", len(below), pathname)
            unexamined.extend(below)
        else:
            logger.info("Leaving %i planned name(s) to the next run: %s in the source is no longer a directory.",
                        len(below), pathname)
    return kept, unexamined


def find_obstacle(source, directory):
    """
    Find what keeps a directory of the source from being one.

    :param source: A :class:`SourceView`.
    :param directory: A name (bytes, empty for the top).
    :returns: The highest of `directory` and the directories above it that
              isn't a real directory (bytes), or :data:`None` when all are.
    """
    if not directory:
        return None
    above = find_obstacle(source, posixpath.dirname(directory))
    if above is not None:
        return above
    return None if source.is_directory(directory) else directory
