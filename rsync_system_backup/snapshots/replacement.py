"""
Replacing the destination directory (``latest``) as a whole.

Some snapshot methods build a new ``latest`` beside the old one and then
swap them: the link-dest method does it on every transfer, the reflink and
btrfs methods once, to stop sharing files with older snapshots or to become a
subvolume. The new tree is built under :data:`NEW_NAME` in the directory that
holds ``latest``; when it is complete, ``latest`` is renamed to
:data:`OLD_NAME`, the new tree to ``latest``, and the old tree is removed.

Both names start with ``.rsync-system-backup``, so rotation never looks at
them and a backup stored inside its own source leaves them out. What an
interrupted run leaves behind is put right by :meth:`Replacement.recover()`
before the next run touches ``latest``: the old tree goes back into place if
the swap was cut in half, and everything else is removed.
"""

import logging
import posixpath

from rsync_system_backup.backup_set.operations import flush_filesystem, list_directory, rename_directory
from rsync_system_backup.backup_set.private_directory import remove_stale_private_directories

NEW_NAME = '.rsync-system-backup.new'
"""The name of a new ``latest`` while it is being built."""

OLD_NAME = '.rsync-system-backup.old'
"""The name of the old ``latest`` between the swap and its removal."""

logger = logging.getLogger(__name__)


class Replacement(object):

    """Replacing a destination directory (``latest``) with a tree built beside it, and recovering from crashes."""

    def __init__(self, context, directory, remove, sudo=False, ionice=None):
        """
        Prepare to replace a directory.

        :param context: The execution context of the directory.
        :param directory: The directory to replace (``latest``, a string).
        :param remove: The function that removes trees (with the signature of
                       :func:`.operations.remove_trees()`).
        :param sudo: :data:`True` to work with superuser privileges.
        :param ionice: The I/O scheduling class for removals (a string or :data:`None`).
        """
        self.context = context
        self.directory = directory.rstrip('/') or '/'
        self.remove = remove
        self.sudo = sudo
        self.ionice = ionice

    @property
    def parent_directory(self):
        """The directory that holds :attr:`directory` and the temporary trees (a string)."""
        return posixpath.dirname(self.directory) or '.'

    @property
    def new_pathname(self):
        """Where the new tree is built (a string)."""
        return posixpath.join(self.parent_directory, NEW_NAME)

    @property
    def old_pathname(self):
        """Where the old tree waits for its removal (a string)."""
        return posixpath.join(self.parent_directory, OLD_NAME)

    def directory_exists(self):
        """
        Check whether :attr:`directory` exists.

        :returns: :data:`True` when it does.
        """
        return posixpath.basename(self.directory) in self.list_parent()

    def list_parent(self):
        """
        List the names in :attr:`parent_directory`.

        :returns: A list of strings.
        """
        return list_directory(self.context, self.parent_directory, sudo=self.sudo)

    def discard(self, pathname):
        """
        Remove one tree.

        :param pathname: The tree (a string).
        """
        self.remove(self.context, [pathname], sudo=self.sudo, ionice=self.ionice)

    parent_names = ()
    """The names in :attr:`parent_directory` when :meth:`recover()` looked (a list of strings)."""

    def recover(self):
        """
        Put right what an interrupted replacement left behind (see the module documentation).

        Private directories that an interrupted run left beside ``latest``
        (see :mod:`.private_directory`) are removed too.

        :returns: :data:`True` when :attr:`directory` exists (afterwards).
        """
        names = self.parent_names = self.list_parent()
        remove_stale_private_directories(self.context, self.parent_directory, names, sudo=self.sudo,
                                         ionice=self.ionice)
        exists = posixpath.basename(self.directory) in names
        if OLD_NAME in names:
            if exists:
                logger.warning("Removing %s, the previous %s left behind by an interrupted run.",
                               self.old_pathname, self.directory)
                self.discard(self.old_pathname)
            else:
                logger.warning("Putting %s back in place of its interrupted replacement.", self.directory)
                rename_directory(self.context, self.old_pathname, self.directory, sudo=self.sudo)
                exists = True
        if NEW_NAME in names:
            if exists:
                logger.warning("Removing %s, left behind by an interrupted run.", self.new_pathname)
                self.discard(self.new_pathname)
            else:
                # Only an interrupted first backup leaves a new tree without latest (see keep_first_backup()).
                logger.info("Going on with the first backup that an earlier run began in %s.", self.new_pathname)
        return exists

    def keep_first_backup(self, existed, pathname):
        """
        Keep or remove a new tree after its transfer failed or was interrupted.

        :param existed: :data:`True` when :attr:`directory` existed when the transfer began.
        :param pathname: The new tree (a string).

        A first backup's tree shares no files with anything, so it is kept,
        and the next run goes on from there instead of starting from 0%
        (rsync skips what is there already). Any other tree is removed:
        it may share files with ``latest`` and the snapshots (``--link-dest``),
        which a later transfer into it could change.
        """
        if existed:
            self.discard(pathname)
        else:
            logger.warning("Keeping what the first backup transferred so far in %s: the next run goes on "
                           "from there.", pathname)

    def adopt_first_backup(self):
        """
        Make the tree of an interrupted first backup :attr:`directory`, for a method that writes in place.

        :returns: :data:`True` when there was such a tree.
        """
        names = self.list_parent()
        if posixpath.basename(self.directory) in names or NEW_NAME not in names:
            return False
        logger.info("Going on with the first backup that an earlier run began in %s.", self.new_pathname)
        rename_directory(self.context, self.new_pathname, self.directory, sudo=self.sudo)
        return True

    def swap(self, existed):
        """
        Put the new tree in place of :attr:`directory` and remove the old tree.

        :param existed: :data:`True` when :attr:`directory` exists.

        The new tree's filesystem is flushed first (see :func:`.flush_filesystem()`).
        """
        flush_filesystem(self.context, self.new_pathname, sudo=self.sudo)
        if existed:
            rename_directory(self.context, self.directory, self.old_pathname, sudo=self.sudo)
        rename_directory(self.context, self.new_pathname, self.directory, sudo=self.sudo)
        if existed:
            self.discard(self.old_pathname)
