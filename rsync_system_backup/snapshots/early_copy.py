"""
The safe-hardlink snapshot, copied while rsync plans the transfer and brought up to date after it.

rsync's dry run (the plan, see :mod:`.transfer.plan`) reads ``latest`` and
the source and keeps about one processor busy; the snapshot's ``cp --archive
--link`` only needs ``latest``. So :class:`EarlyCopy` starts the copy of
``latest`` as it is (see :func:`.link_copy()`) when the transfer starts, and
the copy and the dry run share the time. The protect step waits for the copy
(it changes ``latest``). After the apply, :data:`UPDATE_SCRIPT` makes the
copy equal ``latest`` again for every name that the transfer touched: what
``latest`` lost goes, what it has gets linked in its place (the same inode),
directories get their attributes and times. That is what ``cp --archive
--link`` of ``latest`` would make then, and the snapshot step only renames
the copy.

The copy lives under a private name beside ``latest`` (see
:mod:`.private_directory`) until the snapshot step renames it, so a run that
dies leaves it to the next run to remove. When anything goes wrong with it
(a cp or the update fails, say at the link limit) it is removed and the
snapshot step makes its copy as if there had been none.
"""

import logging
import os
import posixpath

from rsync_system_backup.processes.waiting import wait_for_exit
from rsync_system_backup.snapshots.parallel_copy import DIRECTORY_CODE, link_copy
from rsync_system_backup.snapshots.protection import PYTHON
from rsync_system_backup.backup_set.operations import remove_trees, rename_directory
from rsync_system_backup.backup_set.private_directory import PRIVATE_PREFIX

UPDATE_SCRIPT = DIRECTORY_CODE + r'''
import shutil, tempfile

class Tree(object):
    # Directories below a top directory, opened one component at a time without following symbolic links.

    def __init__(self, top):
        self.top = top
        self.opened = {b'': top}

    def forget(self, path):
        # Close what was opened at and below path (which was removed or replaced).
        for known in [k for k in self.opened if k == path or k.startswith(path + b'/')]:
            if self.opened[known] is not None:
                os.close(self.opened[known])
            del self.opened[known]

    def reset(self):
        # Close everything but the top.
        for known in [k for k in self.opened if k]:
            self.forget(known)

    def directory(self, path):
        # The open directory at path (bytes, relative), or None when it isn't one.
        if path not in self.opened:
            if len(self.opened) > 200:
                self.reset()
            parent, _, name = path.rpartition(b'/')
            above = self.directory(parent)
            try:
                self.opened[path] = None if above is None else os.open(name, FLAGS, dir_fd=above)
            except OSError:
                self.opened[path] = None
        return self.opened[path]

    def lstat(self, path):
        # (open parent directory, name, lstat result or None), or None when the parent isn't there.
        parent, _, name = path.rpartition(b'/')
        above = self.directory(parent)
        if above is None:
            return None
        try:
            return above, name, os.lstat(name, dir_fd=above)
        except FileNotFoundError:
            return above, name, None

def remove(directory, name, info):
    # Remove an entry, and a directory with everything in it, without following symbolic links.
    if stat.S_ISDIR(info.st_mode):
        below = os.open(name, FLAGS, dir_fd=directory)
        try:
            for entry in os.listdir(below):
                remove(below, entry, os.lstat(entry, dir_fd=below))
        finally:
            os.close(below)
        os.rmdir(name, dir_fd=directory)
    else:
        os.unlink(name, dir_fd=directory)

def update(latest, copy, private, names):
    directories = set([b''])
    for path in sorted(set(names), key=lambda path: (path.count(b'/'), path)):
        parts = path.split(b'/')
        if path.startswith(b'/') or b'..' in parts or b'.' in parts or b'' in parts:
            continue
        made = copy.lstat(path)
        if made is None:
            continue
        above, name, info = made
        directories.add(path.rpartition(b'/')[0])
        original = latest.lstat(path)
        wanted = original[2] if original else None
        if info is not None and wanted is not None and not stat.S_ISDIR(wanted.st_mode) \
                and (info.st_dev, info.st_ino) == (wanted.st_dev, wanted.st_ino):
            continue
        # An entry that is gone, or whose kind (directory or not) changed, is removed; another one is renamed over.
        if info is not None and (wanted is None or stat.S_ISDIR(info.st_mode) != stat.S_ISDIR(wanted.st_mode)):
            remove(above, name, info)
            copy.forget(path)
            info = None
        if wanted is None:
            continue
        if stat.S_ISDIR(wanted.st_mode):
            if info is None:
                os.mkdir(name, 0o700, dir_fd=above)
            directories.add(path)
        else:
            os.link(name, b'link', src_dir_fd=original[0], dst_dir_fd=private, follow_symlinks=False)
            os.rename(b'link', name, src_dir_fd=private, dst_dir_fd=above)
    for path in sorted(directories, key=lambda path: path.count(b'/'), reverse=True):
        original, made = latest.directory(path), copy.directory(path)
        if original is not None and made is not None:
            copy_attributes(original, made)

latest_path, copy_path = os.fsencode(sys.argv[1]), os.fsencode(sys.argv[2])
try:
    names = [name for name in sys.stdin.buffer.read().split(b'\0') if name]
    private_path = tempfile.mkdtemp(prefix=os.fsencode(sys.argv[3]), dir=os.path.dirname(copy_path))
    private = os.open(private_path, FLAGS)
    try:
        update(Tree(os.open(latest_path, FLAGS)), Tree(os.open(copy_path, FLAGS)), private, names)
    finally:
        os.close(private)
        shutil.rmtree(private_path, ignore_errors=True)
except (OSError, RecursionError) as error:
    sys.stderr.write('Failed to bring %s up to date: %s\n' % (sys.argv[2], error))
    sys.exit(1)
'''
"""
The update as one Python program (run as ``python3 -c UPDATE_SCRIPT LATEST
COPY PREFIX``, with the names that the transfer touched on standard input,
each relative to ``latest`` and ended by a NUL byte). It goes through the
names parents first and makes each entry of COPY what it is in LATEST: gone
when it is gone (a directory with everything in it), a new directory where
LATEST has one, and otherwise a hard link to LATEST's inode, made in a
private directory (named PREFIX and a random part, beside COPY) and renamed
over the old entry. Then every directory it touched, and the top, gets the
attributes and times of its original, the deepest first. It follows no
symbolic link, and exits with 1 and a message when something fails.
"""

logger = logging.getLogger(__name__)


class EarlyCopy(object):

    """A snapshot copy of ``latest`` made while the transfer is planned (see the module documentation)."""

    def __init__(self, context, directory, remove=remove_trees, sudo=False, ionice=None):
        """
        Start copying ``latest``.

        :param context: The destination's execution context.
        :param directory: ``latest`` (a string, without a trailing slash).
        :param remove: The function that removes trees (see :meth:`.SnapshotMethod.remove_trees()`).
        :param sudo: :data:`True` to work with superuser privileges.
        :param ionice: The I/O scheduling class for the copy.
        """
        self.context = context
        self.directory = directory
        self.remove = remove
        self.sudo = sudo
        self.ionice = ionice
        parent_directory = posixpath.dirname(directory) or '.'
        self.pathname = posixpath.join(parent_directory, PRIVATE_PREFIX + os.urandom(8).hex())
        self.copy = link_copy(context, directory, self.pathname, sudo=sudo, ionice=ionice, spare=1,
                              asynchronous=True)
        self.usable = None

    def wait(self):
        """
        Wait until the copy is made (before anything changes ``latest``).

        :returns: :data:`True` when it was made; otherwise it is removed.
        """
        if self.usable is None:
            self.finish()
            self.usable = self.copy.returncode == 0
            if not self.usable:
                self.discard("copying %s failed: %s" % (self.directory, describe_failure(self.copy)))
        return self.usable

    def update(self, names, top=False):
        """
        Bring the copy up to date with ``latest`` after the transfer.

        :param names: The names that the transfer touched (bytes, relative to ``latest``).
        :param top: :data:`True` when the transfer touched the top directory itself.
        :returns: :data:`True` when the copy is up to date; otherwise it is removed.
        """
        if not self.wait():
            return False
        if names or top:
            command = self.context.execute(*(PYTHON + ('-c', UPDATE_SCRIPT, self.directory, self.pathname,
                                                       PRIVATE_PREFIX)),
                                           input=b''.join(name + b'\0' for name in names), capture_stderr=True,
                                           check=False, sudo=self.sudo, ionice=self.ionice, shell=False, tty=False)
            if command.returncode != 0:
                self.discard("bringing it up to date failed: %s" % describe_failure(command))
                return False
        return True

    def take(self, target):
        """
        Give the copy its snapshot name.

        :param target: The snapshot's pathname (a string, which must not exist).
        """
        rename_directory(self.context, self.pathname, target, sudo=self.sudo)
        self.usable = False

    def finish(self, stop=False):
        """
        Wait until the copy ends.

        :param stop: :data:`True` to stop it first (its program stops its cp
                     processes when its standard input is closed).
        """
        process = self.copy.subprocess
        if process is not None:
            if stop:
                process.stdin.close()
            process.wait()
            process.stdin.close()
        wait_for_exit(self.copy)

    def discard(self, reason=None):
        """
        Remove the copy (after stopping it, so that no cp still writes there).

        :param reason: Why, for the log (a string), or :data:`None` when the
                       run fails anyway.
        """
        self.finish(stop=True)
        if reason:
            logger.info("Making the snapshot afresh after the transfer: the copy made during the transfer is "
                        "gone because %s", reason)
        self.usable = False
        self.remove(self.context, [self.pathname], sudo=self.sudo, ionice=self.ionice)


def describe_failure(command):
    """
    Describe why a command of this module failed.

    :param command: A finished command whose standard error was captured.
    :returns: Its last line of error output, or its exit code (a string).
    """
    lines = (command.stderr or b'').decode('utf-8', 'replace').strip().splitlines()
    return lines[-1] if lines else "exit code %i" % command.returncode
