"""
The walk-free plan: what changed between two read-only btrfs snapshots, as a :class:`.TransferPlan`.

rsync's dry run (see :mod:`.transfer.plan`) walks the whole source to find
what changed. On a btrfs source, two read-only snapshots of the subvolume
(``OLD``, the parent, which equals ``latest``, and ``NEW``) already know:
:func:`plan_from_snapshots()` runs ``btrfs send --no-data -p OLD NEW``,
replays its commands while it writes them (see :func:`replay_send()` and
:mod:`.transfer.send_stream`) and turns them into a :class:`SendPlan`,
which the protect and apply steps take as they take the dry run's plan.
Its cost grows with the changes, not with the tree.

How the commands become names:

1. **Replay** (:class:`Replay`): the commands are carried out on a model of
   the tree that knows only what they named. An entry that a command names
   for the first time is an entry of ``OLD`` at that path; everything that
   no command named stays where it was in ``OLD``, inside its directory,
   wherever that directory went. So the stream's temporary names (an
   orphan ``o257-8-0`` that a new entry or a directory in the way gets)
   end up at the final names, renames move whole directories, and every
   entry knows the names it lost and got.
2. **Names**: every entry that a command created, renamed, linked,
   unlinked or changed is planned under each of its names in ``NEW``. A
   directory that is new at its path (created, or moved there) is planned
   with everything in it, read from ``NEW`` (rsync sees all of it as new).
   A file with more names in ``NEW`` than the stream gave (the stream names
   an inode once) gets the others from the kernel (see
   :mod:`.transfer.inode_paths`), so that the apply writes the whole hard-link group.
   Every name of ``OLD`` that lost its entry is a deletion (only the top
   one of a deleted tree: the protect step deletes a directory with
   everything in it).
3. **Nested subvolumes**: in a snapshot, each subvolume below the top is an
   empty directory that the stream never mentions (inode 2, whose
   attributes the kernel makes up when it first shows it). The directories
   whose entries changed are looked at in both snapshots: such a directory
   that came or went is planned or deleted; one that stays is left alone,
   whatever attributes it shows.
4. **Filters**: the candidate names, and every directory above them, are
   matched against the run's filter options (:func:`filter_names()`: in
   this process when they are simple exclude rules, see
   :mod:`.transfer.exclude_rules`, otherwise by a dry run of rsync): a name
   that they leave out, or that lies below a directory that they leave out,
   never gets into the plan.

Whatever isn't as expected (no parent, a failing command, a stream this
module doesn't know, a name that isn't in ``NEW``, a hard-link group whose
names can't all be found) raises :exc:`SendPlanUnavailable` with the reason,
and the caller falls back to rsync's dry run.

Both snapshots are read by this process (directory listings and
:func:`os.lstat()` of the planned names), so it must be able to read them
(root can); the commands run in the given execution context, with sudo
when asked.
"""

import io
import os
import posixpath
import shutil
import stat
import tempfile
import threading

from rsync_system_backup.agent.tree import is_clean
from rsync_system_backup.connections.ssh import decode_output, last_line
from rsync_system_backup.processes.waiting import wait_for_exit
from rsync_system_backup.transfer.exclude_rules import excluded, parse_exclude_rules
from rsync_system_backup.transfer.inode_paths import inode_paths
from rsync_system_backup.transfer.plan import (
    KIND_TESTS,
    PLAN_ENVIRONMENT,
    TransferPlan,
    files_from,
    lies_below,
    unescape,
)
from rsync_system_backup.transfer.send_stream import StreamError, read_commands

SEND_OPTIONS = ('--no-data', '-q')
"""The options of ``btrfs send``: no file data (only which files' contents change), no messages but errors."""

FILTER_OPTIONS = ('--dry-run', '--archive', '--from0', '--files-from=-', '--no-implied-dirs', '--ignore-missing-args',
                  '--out-format=%n')
"""
The options of :func:`filter_names()`'s rsync: a dry run over the listed
names only (no directory above them unless listed, so that an excluded
directory doesn't come back as an implied one), printing each name it
would transfer.
"""

CREATING_COMMANDS = ('mkfile', 'mkdir', 'mknod', 'mkfifo', 'mksock', 'symlink')
"""The stream's commands that create an entry (under a temporary name, mostly)."""

ATTRIBUTE_COMMANDS = ('set_xattr', 'remove_xattr', 'chmod', 'chown', 'utimes', 'fileattr')
"""The stream's commands that change an entry's attributes."""

CONTENT_COMMANDS = ('write', 'clone', 'truncate', 'update_extent', 'fallocate', 'encoded_write', 'enable_verity')
"""The stream's commands that change a file's content."""

READ_SIZE = 65536
"""How many bytes :func:`replay_send()` reads at a time of what follows the stream's end (or the part it can't read)."""

LOOKUP_THREADS = 2
"""How many threads :meth:`PlanBuilder.look_up_new()` looks up names in."""

STUB_INODE = 2
"""The inode number of the empty directory that stands for a nested subvolume in a snapshot."""


class SendPlanUnavailable(Exception):

    """Raised when the snapshots can't give a plan; the caller plans with rsync's dry run instead."""

    def __init__(self, reason):
        """
        Say why.

        :param reason: A short reason (a string, without a full stop), for one line of the log.
        """
        super(SendPlanUnavailable, self).__init__(reason)
        self.reason = reason


class SendPlan(TransferPlan):

    """A :class:`.TransferPlan` made from a send stream: checked names, and which of them got new content."""

    def __init__(self):
        """Start an empty plan."""
        super(SendPlan, self).__init__()
        self.content_changes = set()
        """
        The names of :attr:`entries` whose content ``latest`` doesn't have
        under that name: new, rewritten, renamed or newly linked entries,
        and everything in a directory that is new at its path. The other
        entries only changed attributes (owner, mode, times, xattrs), or
        are other names of a file that did.
        """


class Node(object):

    """One entry of the replayed tree (see :class:`Replay`)."""

    __slots__ = ('locations', 'children', 'old_path', 'origin', 'created', 'changed', 'content', 'moved', 'retimed')

    def __init__(self, old_path=None, origin=None):
        """
        Make an entry.

        :param old_path: Its path in ``OLD`` (bytes, empty for the top), or :data:`None` for a created entry.
        :param origin: The tuple of the directory :class:`Node` and name where it was found in ``OLD``.
        """
        self.locations = []
        """Where it is now: tuples of a directory :class:`Node` and a name (bytes)."""
        self.children = {}
        """The names of a directory that commands changed or looked at: name -> :class:`Node`, or :data:`None`."""
        self.old_path = old_path
        self.origin = origin
        self.created = old_path is None
        """:data:`True` when a command created it."""
        self.changed = False
        """:data:`True` when a command changed its attributes."""
        self.content = False
        """:data:`True` when a command changed its content."""
        self.moved = False
        """:data:`True` when a command renamed, linked or unlinked it."""
        self.retimed = False
        """:data:`True` when a ``utimes`` command set its times (which says nothing of which time changed)."""

    @property
    def touched(self):
        """:data:`True` when any command changed the entry."""
        return self.created or self.changed or self.content or self.moved or self.retimed

    @property
    def only_retimed(self):
        """:data:`True` when the only command about the entry set its times (reading it changes its access time)."""
        return self.retimed and not (self.created or self.changed or self.content or self.moved)


class Replay(object):

    """The commands of a send stream carried out on a model of the tree (see the module's documentation)."""

    def __init__(self):
        """Start with ``OLD`` as it is."""
        self.root = Node(old_path=b'')
        self.found = []
        """The entries of ``OLD`` that commands named, in order (their :attr:`Node.origin` says where)."""
        self.created = []
        """The entries that commands created, in order."""

    def run(self, commands):
        """
        Carry out a stream's commands.

        :param commands: The :class:`.Command` objects of an incremental
                         stream (an iterable, such as the generator of
                         :func:`.read_commands()`: each is carried out as it comes).
        :raises: :exc:`SendPlanUnavailable` for a stream without a parent, a
                 command this module doesn't know, or a path it can't follow.
        """
        commands = iter(commands)
        first = next(commands, None)
        if first is None or first.name != 'snapshot':
            raise SendPlanUnavailable("the send stream isn't relative to a parent snapshot")
        for command in commands:
            self.carry_out(command)

    def carry_out(self, command):
        """
        Carry out one command.

        :param command: A :class:`.Command`.
        """
        name, path = command.name, command.attributes.get('path')
        if path is None:
            raise SendPlanUnavailable("the send stream's %s command names no path" % name)
        if name in CREATING_COMMANDS:
            node = Node()
            self.created.append(node)
            self.attach(node, *self.resolve_parent(path))
        elif name == 'rename':
            node = self.resolve(path)
            self.detach(node, *self.resolve_parent(path))
            self.attach(node, *self.resolve_parent(self.attribute(command, 'path_to')))
            node.moved = True
        elif name == 'link':
            node = self.resolve(self.attribute(command, 'path_link'))
            self.attach(node, *self.resolve_parent(path))
            node.moved = True
        elif name in ('unlink', 'rmdir'):
            node = self.resolve(path)
            self.detach(node, *self.resolve_parent(path))
            node.moved = True
        elif name == 'utimes':
            self.resolve(path).retimed = True
        elif name in ATTRIBUTE_COMMANDS:
            self.resolve(path).changed = True
        elif name in CONTENT_COMMANDS:
            self.resolve(path).content = True
        else:
            raise SendPlanUnavailable("the send stream has a %s command" % name)

    def attribute(self, command, name):
        """
        Give a path attribute that a command must have.

        :param command: A :class:`.Command`.
        :param name: The attribute's name.
        :returns: Its value (bytes).
        """
        value = command.attributes.get(name)
        if value is None:
            raise SendPlanUnavailable("the send stream's %s command has no %s" % (command.name, name))
        return value

    def lookup(self, directory, name):
        """
        Find an entry in a directory of the model.

        :param directory: The directory's :class:`Node`.
        :param name: The entry's name (bytes).
        :returns: Its :class:`Node`: one that a command named before, or else
                  the entry of ``OLD`` in that directory (for a directory of
                  ``OLD``), found now.
        """
        if name in directory.children:
            node = directory.children[name]
        elif directory.old_path is None:
            node = None
        else:
            node = Node(old_path=join(directory.old_path, name), origin=(directory, name))
            node.locations.append((directory, name))
            directory.children[name] = node
            self.found.append(node)
        if node is None:
            raise SendPlanUnavailable("the send stream names %r, which isn't there" % os.fsdecode(name))
        return node

    def resolve(self, path):
        """
        Follow a path of the stream.

        :param path: A path relative to the top (bytes; empty for the top).
        :returns: The entry's :class:`Node`.
        """
        node = self.root
        for name in split(path):
            node = self.lookup(node, name)
        return node

    def resolve_parent(self, path):
        """
        Follow a path of the stream to its directory.

        :param path: A path relative to the top (bytes, not empty).
        :returns: A tuple of the directory's :class:`Node` and the last name (bytes).
        """
        names = split(path)
        if not names:
            raise SendPlanUnavailable("the send stream names the top directory where it can't")
        directory = self.root
        for name in names[:-1]:
            directory = self.lookup(directory, name)
        return directory, names[-1]

    def attach(self, node, directory, name):
        """
        Give an entry a name, taking it from whatever had it.

        :param node: The entry's :class:`Node`.
        :param directory: The directory's :class:`Node`.
        :param name: The name (bytes).
        """
        previous = directory.children.get(name)
        if previous is not None:
            previous.locations.remove((directory, name))
            previous.moved = True
        directory.children[name] = node
        node.locations.append((directory, name))

    def detach(self, node, directory, name):
        """
        Take a name from an entry.

        :param node: The entry's :class:`Node`.
        :param directory: The directory's :class:`Node`.
        :param name: The name (bytes).
        """
        node.locations.remove((directory, name))
        directory.children[name] = None

    def path_of(self, directory):
        """
        Give a directory's path at the end of the stream.

        :param directory: Its :class:`Node`.
        :returns: Its path in ``NEW`` (bytes, empty for the top), or :data:`None` when it is gone.
        """
        names = []
        seen = set()
        while directory is not self.root:
            if len(directory.locations) != 1 or id(directory) in seen:
                return None
            seen.add(id(directory))
            directory, name = directory.locations[0]
            names.append(name)
        return b'/'.join(reversed(names))

    def names_of(self, node):
        """
        Give the names that the stream leaves an entry.

        :param node: Its :class:`Node`.
        :returns: A list of paths in ``NEW`` (bytes).
        """
        names = []
        for directory, name in node.locations:
            above = self.path_of(directory)
            if above is not None:
                names.append(join(above, name))
        return names

    def deletions(self):
        """
        List the names of ``OLD`` that lost their entries.

        :returns: A set of paths (bytes).
        """
        return set(node.old_path for node in self.found if node.origin[0].children.get(node.origin[1]) is not node)


class PlanBuilder(object):

    """The names of a :class:`SendPlan`, from a finished :class:`Replay` and the two snapshots."""

    def __init__(self, context, parent, snapshot, sudo=False):
        """
        Prepare to look at the snapshots.

        :param context: The execution context of the snapshots.
        :param parent: The older snapshot, ``OLD`` (a string).
        :param snapshot: The newer snapshot, ``NEW`` (a string).
        :param sudo: :data:`True` to run the commands with superuser privileges.
        """
        self.context = context
        self.old_top = os.fsencode(parent).rstrip(b'/')
        self.new_top = os.fsencode(snapshot).rstrip(b'/')
        self.sudo = sudo
        self.kinds = {}
        """Planned names -> their kinds (letters of ``%i``)."""
        self.content = set()
        """Planned names whose content is new under that name."""
        self.inodes = {}
        """Planned names of regular files, links, devices and special files -> their :func:`os.lstat()` results."""
        self.fresh = set()
        """Directories of ``NEW`` planned with everything in them."""
        self.rewritten = set()
        """The inode numbers (in ``NEW``) of the planned files whose content changed or that are new."""
        self.deletions = set()
        self.root_changed = False
        self.looked_up = {}
        """Paths of ``NEW`` -> their :func:`os.lstat()` results or errors (see :meth:`look_up_new()`)."""

    def build(self, replay):
        """
        Collect the planned names.

        :param replay: A :class:`Replay` that ran.
        """
        root = replay.root
        self.root_changed = root.changed or root.content or (root.retimed and not self.same_modification_time(b'', b''))
        changed_directories = [b''] if root.touched else []
        touched = [(node, replay.names_of(node)) for node in [node for node in replay.found if node.touched]
                   + replay.created]
        self.look_up_new([name for _, names in touched for name in names])
        for node, names in touched:
            if node.only_retimed and all(self.same_modification_time(node.old_path, name) for name in names):
                # Only its access (and change) time moved, which rsync never compares: nothing to transfer.
                continue
            moved_names = [name for name in names if node.created or name != node.old_path]
            for name in names:
                info = self.lstat_new(name)
                if stat.S_ISDIR(info.st_mode) and name in moved_names:
                    self.fresh.add(name)
                elif stat.S_ISDIR(info.st_mode):
                    self.add(name, info, node.content)
                    changed_directories.append(name)
                else:
                    self.add(name, info, node.content or name in moved_names)
                    if node.content or node.created:
                        self.rewritten.add(info.st_ino)
        for name in sorted(self.fresh):
            if not lies_below(name, self.fresh):
                self.add_tree(name)
        self.add_stubs(changed_directories)
        self.add_hard_links()
        deletions = set(name for name in replay.deletions() | self.deletions
                        if name not in self.kinds or self.replaces_directory(name))
        self.deletions = set(name for name in deletions if not lies_below(name, deletions))

    def same_modification_time(self, old_path, name):
        """
        Check whether an entry has the same modification time in both snapshots.

        :param old_path: Its path in ``OLD`` (bytes, from the stream's replay; empty for the top).
        :param name: A path of it in ``NEW`` (bytes, empty for the top).
        :returns: :data:`True` when it does.
        """
        try:
            before = os.lstat(join(self.old_top, old_path) if old_path else self.old_top)
            after = self.look_up(name) if name else os.lstat(self.new_top)
        except OSError:
            return False
        return before.st_mtime_ns == after.st_mtime_ns

    def replaces_directory(self, name):
        """
        Check whether a planned directory takes the place of another directory.

        :param name: A planned name whose entry of ``OLD`` is gone (bytes).
        :returns: :data:`True` when both entries are directories: the old
                  one must be deleted with what it holds, since the apply
                  only adds to a directory. Any other change of an entry
                  stays out of the deletions: the protect step deletes an
                  entry whose kind changes between a directory and anything
                  else, and the apply replaces the others.
        """
        if self.kinds[name] != b'd':
            return False
        try:
            return stat.S_ISDIR(os.lstat(join(self.old_top, name)).st_mode)
        except OSError:
            return False

    def add(self, name, info, new_content):
        """
        Plan a name.

        :param name: Its path (bytes).
        :param info: Its :func:`os.lstat()` result in ``NEW``.
        :param new_content: :data:`True` when ``latest`` doesn't have its content under this name.
        """
        self.kinds[name] = kind_letter(info.st_mode)
        if new_content:
            self.content.add(name)
        if not stat.S_ISDIR(info.st_mode):
            self.inodes[name] = info

    def add_tree(self, top):
        """
        Plan a directory of ``NEW`` with everything in it.

        :param top: Its path (bytes).
        """
        pending = [top]
        while pending:
            name = pending.pop()
            info = self.lstat_new(name)
            self.add(name, info, True)
            if stat.S_ISDIR(info.st_mode) and info.st_ino != STUB_INODE:
                pending.extend(join(name, entry) for entry in self.list_directory(self.new_top, name))

    def add_stubs(self, directories):
        """
        Plan the nested subvolumes that came or went in directories whose entries changed.

        :param directories: Paths of directories that are in both snapshots at the same path (bytes).
        """
        for directory in directories:
            before = self.find_stubs(self.old_top, directory)
            after = self.find_stubs(self.new_top, directory)
            for name in after - before:
                path = join(directory, name)
                self.add(path, self.lstat_new(path), True)
            for name in before - after:
                self.deletions.add(join(directory, name))

    def find_stubs(self, top, directory):
        """
        List the nested subvolumes in a directory of a snapshot.

        :param top: The snapshot (bytes).
        :param directory: The directory's path (bytes).
        :returns: A set of names (bytes).
        """
        stubs = set()
        pathname = join(top, directory) if directory else top
        try:
            with os.scandir(pathname) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_ino == STUB_INODE:
                        stubs.add(entry.name)
        except OSError as error:
            raise SendPlanUnavailable("can't read %s (%s)" % (os.fsdecode(pathname), error.strerror))
        return stubs

    def add_hard_links(self):
        """
        Plan every other name of each planned file that has names outside the plan.

        :raises: :exc:`SendPlanUnavailable` when the kernel doesn't give every name (see :meth:`resolve_inode()`).
        """
        groups = {}
        for name, info in self.inodes.items():
            groups.setdefault(info.st_ino, (info, []))[1].append(name)
        for info, names in groups.values():
            if info.st_nlink > len(names):
                for other in self.resolve_inode(info):
                    if other not in self.kinds:
                        self.add(other, self.lstat_new(other), info.st_ino in self.rewritten)

    def resolve_inode(self, info):
        """
        Find every name of an inode in ``NEW``.

        :param info: The :func:`os.lstat()` result of one of its names.
        :returns: A set of paths (bytes).
        :raises: :exc:`SendPlanUnavailable` when the kernel doesn't give them
                 (see :func:`.inode_paths()`), or not as many names of this
                 inode as it has links.
        """
        try:
            found = inode_paths(self.new_top, info.st_ino)
        except OSError as error:
            raise SendPlanUnavailable("can't find the names of inode %i (%s)" % (info.st_ino,
                                                                                 error.strerror or error))
        names = set()
        for candidate in found:
            other = self.lstat_new(candidate, missing_ok=True) if is_clean(candidate) else None
            if other is not None and (other.st_dev, other.st_ino) == (info.st_dev, info.st_ino):
                names.add(candidate)
        if len(names) != info.st_nlink:
            raise SendPlanUnavailable("can't find all %i names of inode %i" % (info.st_nlink, info.st_ino))
        return names

    def lstat_new(self, name, missing_ok=False):
        """
        Look up an entry of ``NEW``.

        :param name: Its path (bytes, clean).
        :param missing_ok: :data:`True` to return :data:`None` for a name that isn't there.
        :returns: An :class:`os.stat_result`.
        """
        if not is_clean(name):
            raise SendPlanUnavailable("the send stream gives the name %r" % os.fsdecode(name))
        try:
            return self.look_up(name)
        except OSError as error:
            if missing_ok:
                return None
            raise SendPlanUnavailable("can't find %r in the new snapshot (%s)" % (os.fsdecode(name), error.strerror))

    def look_up(self, name):
        """
        Give the :func:`os.lstat()` result of an entry of ``NEW``, as :meth:`look_up_new()` found it if it did.

        :param name: Its path (bytes).
        :returns: An :class:`os.stat_result`.
        :raises: :exc:`~exceptions.OSError` when it can't be looked up.
        """
        found = self.looked_up.get(name)
        if isinstance(found, OSError):
            raise found
        return found or os.lstat(join(self.new_top, name))

    def look_up_new(self, names):
        """
        Look up many entries of ``NEW`` at once, for :meth:`look_up()`, in :data:`LOOKUP_THREADS` threads.

        :param names: Their paths (bytes); those that aren't clean are left to :meth:`lstat_new()` to refuse.

        The kernel looks up the names of the snapshot, which is new to its
        caches, while the interpreter lets other threads run, so on two
        processors the lookups overlap (measured: about 30 ms less of a run
        of 1.1 s at 100,000 files with 1% changed).
        """
        names = [name for name in names if is_clean(name)]

        def look_up(part):
            for name in part:
                try:
                    self.looked_up[name] = os.lstat(join(self.new_top, name))
                except OSError as error:
                    self.looked_up[name] = error
        threads = [threading.Thread(target=look_up, args=(names[number::LOOKUP_THREADS],))
                   for number in range(1, LOOKUP_THREADS)]
        for thread in threads:
            thread.start()
        look_up(names[::LOOKUP_THREADS])
        for thread in threads:
            thread.join()

    def list_directory(self, top, name):
        """
        List a directory of a snapshot.

        :param top: The snapshot (bytes).
        :param name: The directory's path (bytes).
        :returns: A list of names (bytes).
        """
        try:
            return os.listdir(join(top, name))
        except OSError as error:
            raise SendPlanUnavailable("can't read %r in the new snapshot (%s)" % (os.fsdecode(name), error.strerror))

    def run_command(self, *command, **options):
        """
        Run a command in the snapshots' context.

        :param command: The command line (strings).
        :param options: More :mod:`executor` options (``input``, ``environment``).
        :returns: Its standard output (bytes).
        :raises: :exc:`SendPlanUnavailable` when it fails.
        """
        finished = self.context.execute(*command, capture=True, capture_stderr=True, check=False, shell=False,
                                        tty=False, sudo=self.sudo, **options)
        if finished.returncode != 0:
            raise command_failed(' '.join(command[:2]), finished.returncode, finished.stderr)
        return finished.stdout


def plan_from_snapshots(context, parent, snapshot, filter_options, sudo=False):
    """
    Plan a transfer from two read-only snapshots of the source (see the module's documentation).

    :param context: The execution context of the snapshots (the source's).
    :param parent: The older snapshot, which ``latest`` equals (a string).
    :param snapshot: The newer snapshot, which the transfer reads (a string).
    :param filter_options: The rsync options that choose what the transfer
                           takes (``--exclude=...``, ``--filter=...``; a
                           list of strings). They must mean the same for
                           both snapshots: a rule that matches absolute
                           paths (``-/``) must be given relative to the
                           transfer's top instead.
    :param sudo: :data:`True` to run the commands with superuser privileges.
    :returns: A :class:`SendPlan` whose names are checked already.
    :raises: :exc:`SendPlanUnavailable` (see the module's documentation).
    """
    builder = PlanBuilder(context, parent, snapshot, sudo=sudo)
    builder.build(replay_send(context, parent, snapshot, sudo=sudo))
    plan = SendPlan()
    plan.root_changed = builder.root_changed
    kept = filter_names(builder, builder.new_top, builder.kinds, filter_options)
    plan.entries = dict((name, kind) for name, kind in builder.kinds.items() if name in kept)
    plan.content_changes = set(name for name in builder.content if name in kept)
    plan.deletions = filter_names(builder, builder.old_top, builder.deletions, filter_options)
    return plan


def replay_send(context, parent, snapshot, sudo=False):
    """
    Run ``btrfs send`` from one snapshot to the other and replay its commands while it writes them.

    :param context: The execution context of the snapshots.
    :param parent: ``OLD`` (a string).
    :param snapshot: ``NEW`` (a string).
    :param sudo: :data:`True` to run it with superuser privileges.
    :returns: The :class:`Replay` that ran.
    :raises: :exc:`SendPlanUnavailable` when ``btrfs send`` fails (with
             the last line of its messages), or its stream can't be read
             or replayed (``btrfs send`` is stopped then).

    The kernel writes the stream as it compares the snapshots, so the
    replay ends with the send: at 100,000 files with 1% changed (medians
    of six runs), the plan took about 240 ms when the stream was read after
    the send had ended, and 205 ms replayed while it comes.
    """
    replay = Replay()
    # A file with a name: executor reads a file it is given by its name (and closes a descriptor it is given as one).
    with tempfile.NamedTemporaryFile(prefix='rsync-system-backup-send-') as messages:
        send = context.execute('btrfs', 'send', *(SEND_OPTIONS + ('-p', parent, '--', snapshot)),
                               asynchronous=True, capture=True, buffered=False, stderr_file=messages,
                               check=False, shell=False, tty=False, sudo=sudo)
        problem = None
        try:
            with io.BufferedReader(send.stdout) as stream:
                try:
                    replay.run(read_commands(stream))
                except StreamError as error:
                    problem = "can't read the send stream: %s" % error
                # Read to the end, so that a send that failed says why, and none dies of a closed pipe (closed
                # right after the end command, btrfs send died of SIGPIPE in some runs of the tests).
                while stream.read(READ_SIZE):
                    pass
        except BaseException:
            if send.is_running:
                send.terminate(use_spinner=False)
            wait_for_exit(send)
            raise
        wait_for_exit(send)
        if send.returncode != 0:
            messages.seek(0)
            raise command_failed('btrfs send', send.returncode, messages.read())
    if problem:
        raise SendPlanUnavailable(problem)
    return replay


def command_failed(name, returncode, messages):
    """
    Say why the plan is unavailable after one of its commands failed.

    :param name: The command (a string, such as ``btrfs send``).
    :param returncode: Its exit code.
    :param messages: Its standard error (bytes).
    :returns: A :exc:`SendPlanUnavailable` with the last line of the messages, or the exit code when there are none.
    """
    return SendPlanUnavailable("%s failed: %s" % (name, last_line(decode_output(messages))
                                                  or "exit code %i" % returncode))


def filter_names(builder, top, names, filter_options):
    """
    Keep the names that the transfer takes.

    :param builder: The :class:`PlanBuilder` (its context runs rsync).
    :param top: The snapshot that holds the names (bytes).
    :param names: Paths (bytes, clean).
    :param filter_options: See :func:`plan_from_snapshots()`.
    :returns: The set of names that the rules take, and whose directories they take too.

    Every directory above a name is checked against the rules too, and a
    name counts only when the rules take it and every directory above it.
    Rules that :mod:`.transfer.exclude_rules` can match are matched in this
    process; otherwise rsync decides (see :func:`ask_rsync()`).
    """
    if not names or not filter_options:
        return set(names)
    candidates = set()
    for name in names:
        while name and name not in candidates:
            candidates.add(name)
            name = posixpath.dirname(name)
    rules = parse_exclude_rules(filter_options)
    if rules is None:
        taken = ask_rsync(builder, top, candidates, filter_options)
    else:
        taken = set(name for name in candidates if not excluded(rules, name, lambda name=name: is_directory(top, name)))
    kept = set()
    for name in names:
        parent = name
        while parent and parent in taken:
            parent = posixpath.dirname(parent)
        if not parent:
            kept.add(name)
    return kept


def ask_rsync(builder, top, candidates, filter_options):
    """
    Ask rsync which names the filter options take.

    :param builder: The :class:`PlanBuilder` (its context runs rsync).
    :param top: The snapshot that holds the names (bytes).
    :param candidates: Paths (bytes, clean), with every directory above each of them.
    :param filter_options: See :func:`plan_from_snapshots()`.
    :returns: The set of the candidates that rsync takes (each checked by itself).

    rsync checks each listed name against the rules by itself. It runs as
    a dry run to an empty directory of its own, where it would create
    every name it takes.
    """
    scratch = tempfile.mkdtemp(prefix='rsync-system-backup-filter-')
    try:
        output = builder.run_command('rsync', *(FILTER_OPTIONS + tuple(filter_options) + (
            os.fsdecode(top) + '/', os.path.join(scratch, 'empty') + '/')), input=files_from(sorted(candidates)),
            environment=PLAN_ENVIRONMENT)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return set(unescape(line).rstrip(b'/') for line in output.split(b'\n') if line)


def is_directory(top, name):
    """
    Check whether an entry of a snapshot is a directory.

    :param top: The snapshot (bytes).
    :param name: The entry's path (bytes, clean).
    :returns: :data:`True` when it is.
    :raises: :exc:`SendPlanUnavailable` when it can't be looked up.
    """
    try:
        return stat.S_ISDIR(os.lstat(join(top, name)).st_mode)
    except OSError as error:
        raise SendPlanUnavailable("can't find %r in a snapshot (%s)" % (os.fsdecode(name), error.strerror))


def kind_letter(mode):
    """
    Give the kind letter of an entry (as rsync's ``%i`` shows it).

    :param mode: Its ``st_mode``.
    :returns: One of the keys of :data:`.KIND_TESTS` (bytes).
    """
    for letter, test in KIND_TESTS.items():
        if test(mode):
            return letter
    raise SendPlanUnavailable("the new snapshot holds an entry of an unknown kind (mode %o)" % mode)


def split(path):
    """
    Split a path of the stream into names.

    :param path: A path relative to the top (bytes; empty for the top).
    :returns: A list of names (bytes).
    :raises: :exc:`SendPlanUnavailable` for an empty, ``.`` or ``..`` name.
    """
    if not path:
        return []
    if not is_clean(path):
        raise SendPlanUnavailable("the send stream names %r" % os.fsdecode(path))
    return path.split(b'/')


def join(directory, name):
    """
    Join a directory's path and a name.

    :param directory: A path (bytes; empty for the top).
    :param name: A name or path below it (bytes).
    :returns: The path (bytes).
    """
    return directory + b'/' + name if directory else name
