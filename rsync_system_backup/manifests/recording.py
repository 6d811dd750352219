"""
Recording a manifest for each new snapshot, while the snapshot is being made.

By default the manifest has every entry: a snapshot is a copy of ``latest``
made under the lock, so its manifest is built from ``latest`` in a thread
of its own while the snapshot method copies it, and says what was backed
up (a copy that came out different is what ``--verify`` is for). With
``--no-manifest`` the manifest is the header alone, which records the
snapshot method for ``--list``. Either is written (see
:func:`.write_manifest()`) before the snapshot gets its final name; when the
copy fails, it is removed again. A manifest that can't be written costs a
warning, never the backup.

Describing every entry of ``latest`` afresh costs an ``lstat()`` of every
entry in Python (nearly half again the time of an incremental backup of
100,000 files on tmpfs). So when the snapshot method knows what this run's
transfer changed (see :attr:`.SnapshotMethod.changes`), the manifest is
built from the previous one and those changes (see
:mod:`.manifests.incremental`), provided that the previous manifest
described ``latest`` when the transfer began: the run takes
:data:`.LATEST_RECORD` away before anything writes to ``latest`` (see
:func:`take_latest_description()`), and a manifest built from ``latest``
writes it again. Anything else walks all of ``latest``. The program that
builds it starts before the transfer (see :class:`ManifestBuilder`), so
that reading the previous manifest costs no time, and gets the changes
when the transfer ends, so that it describes them while the snapshot is
made; only writing the file waits for the snapshot's name.
"""

import logging
import posixpath
import threading

from rsync_system_backup.manifests.format import LATEST_RECORD, MANIFEST_DIRECTORY, manifest_name, orphaned_manifests
from rsync_system_backup.manifests.incremental import encode_changes, encode_name
from rsync_system_backup.manifests.remote import StartedAgent
from rsync_system_backup.snapshots.naming import INCOMPLETE_SUFFIX
from rsync_system_backup.backup_set.operations import list_directory, remove_trees, take_file

logger = logging.getLogger(__name__)


class ManifestBuilder(object):

    """
    The manifests' program that builds the next snapshot's manifest, started before the transfer.

    Started early, it reads the manifest that described ``latest`` (the
    part of the work that doesn't depend on the transfer) while rsync works,
    then waits for the transfer's changes (see :meth:`give_changes()`) and
    the snapshot's name (see :meth:`finish()`).
    """

    def __init__(self, context, parent_directory, tree, method, described, sudo=False, ionice=None):
        """
        Start the program (see :func:`.agent.manifests.build_manifest()`).

        :param context: The destination's execution context.
        :param parent_directory: The directory that holds the snapshots (a string).
        :param tree: ``latest`` (a string), or an empty string for a manifest without entries.
        :param method: The snapshot method's name, for the manifest's header (a string).
        :param described: The snapshot whose manifest describes ``latest`` (a
                          string, see :func:`take_latest_description()`), or :data:`None`.
        :param sudo: :data:`True` to read and write with superuser privileges.
        :param ionice: The I/O scheduling class of its reads and writes.
        """
        self.agent = StartedAgent(context, 'build', parent_directory, tree, method, described or '', sudo=sudo,
                                  ionice=ionice)
        self.pending = True
        self.feeder = None
        """The thread that gives the program the changes (see :meth:`give_changes()`), once started."""
        self.uses_changes = bool(tree and described)
        """
        :data:`True` when the manifest is built from the previous one and
        what the transfer changed, if the snapshot method knows that (see
        :attr:`.SnapshotMethod.changes`): it has entries, and a manifest
        described ``latest`` before the transfer.
        """

    def give_changes(self, changes):
        """
        Tell the program what the transfer changed, as soon as the transfer is done.

        :param changes: See :meth:`finish()`.

        The program then describes the changes and compresses the manifest
        while the snapshot is made, and waits for the snapshot's name. The
        changes are written by a thread of their own, so that this thread
        never waits for the program to read them.
        """
        if self.feeder is None:
            self.feeder = threading.Thread(target=self.agent.feed, args=(encode_changes(changes),),
                                           name='manifest changes')
            self.feeder.start()

    def finish(self, name, changes):
        """
        Give the program the snapshot's name (and the transfer's changes, unless given already), and wait for it.

        :param name: The snapshot's name (a string).
        :param changes: What this run's transfer changed in ``latest``: a
                        tuple of the names it touched and those it deleted
                        (bytes, see :attr:`.SnapshotMethod.changes`; two
                        empty lists when this run transferred nothing), or
                        :data:`None` when that isn't known.
        :returns: The program's answer (see :func:`.agent.manifests.build_manifest()`).
        :raises: As :func:`.run_agent()`.
        """
        self.pending = False
        if self.feeder is None:
            self.agent.feed(encode_changes(changes))
        else:
            self.feeder.join()
        return self.agent.finish(encode_name(name))

    def stop(self):
        """Stop the program when no snapshot came (it writes nothing then), and wait for it."""
        if self.pending:
            self.pending = False
            if self.feeder is not None:
                self.feeder.join()
            self.agent.stop()


class ManifestRecorder(object):

    """Wraps a snapshot method's ``copy_tree`` so that the copy gets a manifest."""

    def __init__(self, context, parent_directory, copy_tree, builder, changes, sudo=False):
        """
        Prepare to record manifests.

        :param context: The destination's execution context.
        :param parent_directory: The directory that holds the snapshots (a string).
        :param copy_tree: The snapshot method's :meth:`~.SnapshotMethod.copy_tree()`.
        :param builder: The :class:`ManifestBuilder` of this run.
        :param changes: See :meth:`ManifestBuilder.finish()`.
        :param sudo: :data:`True` to remove a manifest with superuser privileges.
        """
        self.context = context
        self.parent_directory = parent_directory
        self.copy_tree = copy_tree
        self.builder = builder
        self.changes = changes
        self.sudo = sudo

    def __call__(self, directory, target):
        """
        Copy a tree into a snapshot (see :meth:`.SnapshotMethod.copy_tree()`) and record its manifest meanwhile.

        :param directory: The tree to copy (``latest``, a string).
        :param target: The temporary pathname of the snapshot (ending in :data:`.INCOMPLETE_SUFFIX`).
        :raises: What the copy raises.
        """
        name = posixpath.basename(target)[:-len(INCOMPLETE_SUFFIX)]
        outcome = {}
        worker = threading.Thread(target=self.build, args=(name, outcome), name='manifest')
        worker.start()
        try:
            self.copy_tree(directory, target)
        except BaseException:
            worker.join()
            self.remove([name])
            raise
        worker.join()
        if 'error' in outcome:
            self.remove([name])
            logger.warning("Couldn't write the manifest of the snapshot %s (the snapshot itself is complete, but "
                           "--verify can't check it and --list doesn't know its method): %s", name, outcome['error'])

    def build(self, name, outcome):
        """
        Build a manifest (in the worker thread).

        :param name: The snapshot's name (a string).
        :param outcome: A dict that gets the ``error`` (a string) when the build fails.
        """
        try:
            built = self.builder.finish(name, self.changes)
            if built['source'] == 'changes':
                logger.debug("Built the manifest of %s from the previous one and %i changed name(s).", name,
                             len(self.changes[0]))
            elif built['source'] == 'walk':
                logger.debug("Built the manifest of %s by reading all of latest.", name)
        except Exception as e:
            outcome['error'] = str(e) or e.__class__.__name__

    def remove(self, names):
        """
        Remove the manifests of snapshots.

        :param names: The snapshots' names (strings).
        """
        remove_trees(self.context, [posixpath.join(self.parent_directory, manifest_name(name)) for name in names],
                     sudo=self.sudo)


def remove_orphaned_manifests(context, directory, names, sudo=False):
    """
    Remove the manifests whose snapshot is gone (removed by rotation or by hand, or never finished).

    :param context: The destination's execution context.
    :param directory: The directory that holds the snapshots (a string).
    :param names: The names in that directory now (strings).
    :param sudo: :data:`True` to remove them with superuser privileges.
    :returns: The removed names in :data:`.MANIFEST_DIRECTORY` (a list of strings).
    """
    if MANIFEST_DIRECTORY not in names:
        return []
    manifests = posixpath.join(directory, MANIFEST_DIRECTORY)
    try:
        orphans = orphaned_manifests(list_directory(context, manifests, sudo=sudo), names)
    except NotADirectoryError:
        # Something else has the name; writing a manifest warns about it.
        return []
    remove_trees(context, [posixpath.join(manifests, filename) for filename in orphans], sudo=sudo)
    return orphans


def take_latest_description(context, directory, sudo=False):
    """
    Find which snapshot's manifest describes ``latest`` as it is, and forget it, before ``latest`` changes.

    :param context: The destination's execution context.
    :param directory: The directory that holds the snapshots (a string).
    :param sudo: :data:`True` to read and remove :data:`.LATEST_RECORD` with superuser privileges.
    :returns: The snapshot's name (a string), or :data:`None` when no manifest is known to describe ``latest``.

    :data:`.LATEST_RECORD` is removed, so that a run that dies after
    changing ``latest`` leaves no record that would claim otherwise; the
    next manifest built from ``latest`` writes it again.
    """
    return take_file(context, posixpath.join(directory, MANIFEST_DIRECTORY, LATEST_RECORD), sudo=sudo).strip() or None
