"""
The safe-hardlink snapshot, copied while rsync plans the transfer and brought up to date after it.

rsync's dry run (the plan, see :mod:`.transfer.plan`) reads ``latest`` and
the source and keeps about one processor busy; the snapshot's ``cp --archive
--link`` only needs ``latest``. So :class:`EarlyCopy` starts the copy of
``latest`` as it is (see :func:`.parallel_copy.link_copy()`) when the
transfer starts, and the copy and the dry run share the time. The protect
step waits for the copy (it changes ``latest``). After the apply, the
program :mod:`.agent.update` makes the copy equal ``latest`` again for every
name that the transfer touched (in this process, or as one command, see
:func:`.run_program()`): what ``latest`` lost goes, what it has gets linked
in its place (the same inode), directories get their attributes and times.
That is what ``cp --archive --link`` of ``latest`` would make then, and the
snapshot step only renames the copy.

The copy lives under a private name beside ``latest`` (see
:mod:`.private_directory`) until the snapshot step renames it, so a run that
dies leaves it to the next run to remove. When anything goes wrong with it
(a cp or the update fails, say at the link limit) it is removed and the
snapshot step makes its copy as if there had been none.
"""

import logging
import os
import posixpath

from rsync_system_backup.agent.shipping import run_program
from rsync_system_backup.snapshots.parallel_copy import link_copy
from rsync_system_backup.backup_set.operations import remove_trees, rename_directory
from rsync_system_backup.backup_set.private_directory import PRIVATE_PREFIX

UPDATE_MODULES = ('rsync_system_backup.agent.tree', 'rsync_system_backup.agent.update')
"""The modules of the update's program (see :mod:`.agent.update`), the program last."""

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
            copied = self.copy.wait()
            self.usable = copied.returncode == 0
            if not self.usable:
                self.discard("copying %s failed: %s" % (self.directory, copied.problem))
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
            updated = run_program(self.context, "The safe-hardlink snapshot method", UPDATE_MODULES,
                                  [self.directory, self.pathname, PRIVATE_PREFIX],
                                  b''.join(name + b'\0' for name in names), sudo=self.sudo, ionice=self.ionice)
            if updated.returncode != 0:
                self.discard("bringing it up to date failed: %s" % updated.problem)
                return False
        return True

    def take(self, target):
        """
        Give the copy its snapshot name.

        :param target: The snapshot's pathname (a string, which must not exist).
        """
        rename_directory(self.context, self.pathname, target, sudo=self.sudo)
        self.usable = False

    def discard(self, reason=None):
        """
        Remove the copy (after stopping it, so that no cp still writes there).

        :param reason: Why, for the log (a string), or :data:`None` when the
                       run fails anyway.
        """
        self.copy.stop()
        self.copy.wait()
        if reason:
            logger.info("Making the snapshot afresh after the transfer: the copy made during the transfer is "
                        "gone because %s", reason)
        self.usable = False
        self.remove(self.context, [self.pathname], sudo=self.sudo, ionice=self.ionice)
