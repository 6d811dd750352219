"""
The protect step of a planned transfer, on the destination's side.

A snapshot made with hard links shares its files' inodes with ``latest``.
The apply writes every regular file it transfers anew (see
:data:`rsync_system_backup.transfer.plan.APPLY_OPTIONS`), but rsync changes
the owner and times of a symbolic link, and the mode, owner and times of a
device or special file, on the inode itself, so in every snapshot that
shares it; and some changes of a transfer can't be handed to the apply at
all. Before the apply, :func:`Protection.run()` prepares ``latest``:

1. **Copies**: every inode of a symbolic link, device or special file that
   the apply transfers, and that something outside the apply shares (a
   snapshot, mostly), gets one copy with the same attributes in a private
   directory beside ``latest``; the other names of the apply that share the
   inode get links to that copy. Anything that fails here (no space or
   inodes left, say, or a signal) leaves
   ``latest`` as it was: the private directory is removed and nothing else
   was touched. An entry that can't be read is reported and left out of
   the transfer.
2. **Changes**, with signals held back until they are done: the planned
   deletions (a directory with everything in it), entries whose kind changes
   between a directory and anything else (rsync would remove them in the
   same pass as it makes the new entry), the copies renamed over their
   names, and the new hard links to entries that the transfer leaves alone
   (made here as rsync would make them: a link to ``latest``'s entry,
   renamed into place, in new directories closed to others until the apply
   gives them their attributes). None of these writes into an inode that a
   snapshot shares.

Everything happens below directories opened one at a time without
following symbolic links (see :mod:`.agent.tree`).

The step reads its orders as records (see :func:`read_orders()`) and answers
with records: ``F`` and a name for an entry that it couldn't prepare (the
apply must leave it out; the backup is incomplete then) and ``U`` and a name
for a deletion that failed.
"""

import errno
import os
import shutil
import stat
import tempfile

from rsync_system_backup.agent.kinds import kind_of
from rsync_system_backup.agent.standalone import held_signals
from rsync_system_backup.agent.tree import Tree, copy_entry, remove_entry

DONE = 0
"""The exit code after everything was done."""

FAILED = 1
"""The exit code after a failure that left ``latest`` as it was."""

INCOMPLETE = 3
"""The exit code after everything but the entries reported with ``F`` or ``U``."""

IN_PLACE_KINDS = (b'L', b'D', b'S')
"""The kinds of entries whose attributes rsync changes in place although the apply has ``--ignore-times``."""

SKIPPED_ERRORS = (errno.EACCES, errno.EPERM, errno.ESTALE, errno.ENOENT, errno.ENOTDIR)
"""Errors that leave one entry out of the transfer; any other error fails the whole step."""


class Orders(object):

    """What the protect step does, as the transfer plan says."""

    def __init__(self):
        """Start with nothing to do."""
        self.deletions = []
        """Names to delete (bytes)."""

        self.kinds = {}
        """Names the apply transfers -> the kind of the source's entry (a letter of ``%i``: ``f``, ``d``, ``L`` ...)."""

        self.links = []
        """Pairs of names (bytes): a new hard link, and the entry it links to."""


class Failure(Exception):

    """Raised when the step can't go on; ``latest`` is as it was."""

    def __init__(self, message, exit_code=FAILED):
        """
        Describe the failure.

        :param message: What went wrong (a string).
        :param exit_code: The exit code that goes with it.
        """
        super(Failure, self).__init__(message)
        self.exit_code = exit_code


def read_orders(data):
    """
    Read the step's orders.

    :param data: NUL-terminated records (bytes), each a tag and a name
                 relative to ``latest``: ``D`` a deletion; ``K`` a name the
                 apply transfers, after the letter of its kind; ``H`` a new
                 hard link, whose record is followed by one holding the
                 name it links to.
    :returns: An :class:`Orders` object.
    """
    orders = Orders()
    records = iter(data.split(b'\0'))
    for record in records:
        tag, name = record[:1], record[1:]
        if tag == b'D':
            orders.deletions.append(name)
        elif tag == b'K':
            orders.kinds[name[1:]] = name[:1]
        elif tag == b'H':
            orders.links.append((name, next(records)))
    return orders


def encode_orders(orders):
    """
    Write orders as :func:`read_orders()` reads them.

    :param orders: An :class:`Orders` object.
    :returns: Bytes.
    """
    records = [b'D' + name for name in orders.deletions]
    records.extend(b'K' + kind + name for name, kind in sorted(orders.kinds.items()))
    for name, leader in orders.links:
        records.extend((b'H' + name, leader))
    return b''.join(record + b'\0' for record in records)


class Protection(object):

    """One run of the protect step on one ``latest``."""

    def __init__(self, latest, prefix):
        """
        Prepare to work on ``latest``.

        :param latest: Its pathname (bytes).
        :param prefix: The start of the private directory's name (bytes).
        """
        self.latest = latest
        self.prefix = prefix
        self.tree = Tree(latest)
        self.failed = []
        self.undeleted = []
        self.messages = []

    def report(self, name, problem):
        """
        Leave an entry out of the transfer.

        :param name: Its name (bytes).
        :param problem: Why (a string).
        """
        self.failed.append(name)
        self.messages.append("Can't protect %s in %s: %s" % (describe(name), os.fsdecode(self.latest), problem))

    def find_shared(self, kinds):
        """
        Find the inodes that rsync may change in place and that something outside the apply shares.

        :param kinds: The names the apply transfers and their kinds (see :attr:`Orders.kinds`).
        :returns: A list of tuples of an :func:`os.lstat()` result and the
                  names that share its inode: symbolic links, devices and
                  special files that have the same kind in ``latest``.
        """
        groups = {}
        for name, kind in sorted(kinds.items()):
            if kind not in IN_PLACE_KINDS:
                continue
            try:
                info = self.tree.lstat(name)
            except OSError as error:
                self.report(name, error.strerror)
                continue
            if info is not None and kind_of(info) == kind:
                groups.setdefault((info.st_dev, info.st_ino), (info, []))[1].append(name)
        return [(info, paths) for info, paths in groups.values() if info.st_nlink > len(paths)]

    def make_copies(self, shared, private):
        """
        Copy each shared inode once into the private directory, and link its other names to the copy there.

        :param shared: What :meth:`find_shared()` found.
        :param private: The open private directory.
        :returns: A list of tuples of a name in the private directory, the
                  name in ``latest`` it replaces and the inode it replaces there.
        """
        renames = []
        for number, (info, paths) in enumerate(shared):
            place = self.tree.locate(paths[0])
            copy = b'%i' % number
            try:
                copy_entry(place[0], place[1], info, private, copy)
            except OSError as error:
                problem = error.strerror or str(error)
                if error.errno not in SKIPPED_ERRORS:
                    raise Failure("Failed to copy %s in %s: %s"
                                  % (describe(paths[0]), os.fsdecode(self.latest), problem))
                for path in paths:
                    self.report(path, problem)
                continue
            renames.append((copy, paths[0], info))
            for index, path in enumerate(paths[1:]):
                link = b'%i.%i' % (number, index)
                os.link(copy, link, src_dir_fd=private, dst_dir_fd=private, follow_symlinks=False)
                renames.append((link, path, info))
        return renames

    def delete(self, name):
        """
        Delete an entry (a directory with everything in it), if it's there.

        :param name: Its name (bytes).
        """
        try:
            info = self.tree.lstat(name)
            if info is not None:
                place = self.tree.locate(name)
                self.tree.forget(name)
                remove_entry(place[0], place[1], info)
        except OSError as error:
            self.undeleted.append(name)
            self.messages.append("Failed to delete %s from %s: %s" % (describe(name), os.fsdecode(self.latest),
                                                                      error.strerror or error))

    def change(self, orders, renames, private):
        """
        Carry out the changes of the second part (see the module documentation).

        :param orders: The :class:`Orders`.
        :param renames: What :meth:`make_copies()` made.
        :param private: The open private directory.
        """
        for name in sorted(orders.deletions, key=lambda name: name.count(b'/')):
            self.delete(name)
        for name, kind in sorted(orders.kinds.items(), key=lambda item: item[0].count(b'/')):
            try:
                info = self.tree.lstat(name)
            except OSError:
                continue
            if info is not None and stat.S_ISDIR(info.st_mode) != (kind == b'd'):
                self.delete(name)
        for copy, name, info in renames:
            place = self.tree.locate(name)
            current = os.lstat(place[1], dir_fd=place[0])
            if (current.st_dev, current.st_ino) != (info.st_dev, info.st_ino):
                self.report(name, "it changed while it was copied")
                continue
            os.rename(copy, place[1], src_dir_fd=private, dst_dir_fd=place[0])
        for name, leader in orders.links:
            self.link(name, leader, private)

    def link(self, name, leader, private):
        """
        Make a new hard link to an entry of ``latest``, replacing what has the name (a directory with what it holds).

        :param name: The link's name (bytes).
        :param leader: The name of the entry it links to (bytes).
        :param private: The open private directory.
        """
        try:
            found = self.tree.locate(leader)
            info = self.tree.lstat(leader)
            if info is None or stat.S_ISDIR(info.st_mode):
                raise OSError(errno.ENOENT, "%s isn't there to link to" % describe(leader))
            parent = name.rpartition(b'/')[0]
            above = self.tree.make_directories(parent)
            if above is None:
                raise OSError(errno.ENOTDIR, "something else is in the way of its directory")
            existing = self.tree.lstat(name)
            if existing is not None and stat.S_ISDIR(existing.st_mode):
                # A directory became this link: rsync would remove it with what it holds too.
                self.delete(name)
            os.link(found[1], b'link', src_dir_fd=found[0], dst_dir_fd=private, follow_symlinks=False)
            os.rename(b'link', name.rpartition(b'/')[2], src_dir_fd=private, dst_dir_fd=above)
        except OSError as error:
            self.report(name, error.strerror or str(error))

    def run(self, orders, shield=held_signals):
        """
        Carry out the orders.

        :param orders: The :class:`Orders`.
        :param shield: A function that gives a context manager that keeps
                       signals from stopping the changes.
        :returns: An exit code: :data:`DONE` or :data:`INCOMPLETE`.
        :raises: :exc:`Failure` when nothing was changed (see the module documentation).
        """
        shared = self.find_shared(orders.kinds)
        needs_private = shared or orders.links
        private_path = tempfile.mkdtemp(prefix=self.prefix, dir=os.path.dirname(self.latest.rstrip(b'/')) or b'.') \
            if needs_private else None
        try:
            private = os.open(private_path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW) if needs_private else None
            try:
                renames = self.make_copies(shared, private)
                with shield():
                    self.change(orders, renames, private)
            finally:
                if private is not None:
                    os.close(private)
        finally:
            if private_path is not None:
                shutil.rmtree(private_path, ignore_errors=True)
            self.tree.close()
        return INCOMPLETE if self.failed or self.undeleted else DONE

    def answer(self):
        """
        Give the step's answer.

        :returns: Records (bytes): ``F`` and each name left out, ``U`` and each failed deletion.
        """
        return b''.join(tag + name + b'\0' for tag, names in ((b'F', self.failed), (b'U', self.undeleted))
                        for name in names)


def describe(name):
    """
    Show a name in a message.

    :param name: A name (bytes).
    :returns: A string that shows every byte (:func:`repr()` of the decoded name).
    """
    return repr(os.fsdecode(name))


def main(arguments, stdin, stdout, stderr, shield):
    """
    Run the step as a program: ``protect LATEST PREFIX``, with the orders on standard input.

    :param arguments: The command line's arguments (strings).
    :param stdin: The orders (a binary stream).
    :param stdout: For the answer (a binary stream).
    :param stderr: For the messages (a text stream).
    :param shield: Keeps signals from cutting the changes short (see :meth:`Protection.run()`).
    :returns: The exit code (see :meth:`Protection.run()`, and :data:`FAILED`).
    """
    latest, prefix = (os.fsencode(argument) for argument in arguments)
    orders = read_orders(stdin.read())
    try:
        protection = Protection(latest, prefix)
        exit_code = protection.run(orders, shield)
    except Failure as failure:
        stderr.write("%s.\n" % failure)
        return failure.exit_code
    except OSError as error:
        stderr.write("Failed to prepare %s: %s.\n" % (os.fsdecode(latest), error))
        return FAILED
    for message in protection.messages:
        stderr.write(message + "\n")
    stdout.write(protection.answer())
    return exit_code
