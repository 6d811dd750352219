"""
The manifests' program on the destination's side: building, verifying and comparing manifests, and measuring snapshots.

Each verb of :data:`VERBS` takes strings and gives a JSON-friendly dict;
:func:`main()` runs one and answers with the dict as JSON on standard
output, or after a known problem with exit code :data:`KNOWN_PROBLEM` and
``{"error": MESSAGE}``. :func:`.manifests.remote.run_agent()` runs it (in this
process, or as one command, see :func:`.run_program()`) and reads the answer.
Besides this module it needs :mod:`.manifests.format`, :mod:`.manifests.scan`,
:mod:`.manifests.incremental`, :mod:`.manifests.compare` and
:mod:`.backup_set.exclusive_sizes`, which use the standard library only too.
"""

import json
import os

from rsync_system_backup.manifests.compare import COMPARED_FIELDS, compare_trees
from rsync_system_backup.manifests.format import (
    compress_parts,
    copy_manifest,
    list_manifests,
    manifest_name,
    read_checksums,
    read_entry_lines,
    read_manifest,
    read_method,
    write_latest_record,
    write_manifest,
)
from rsync_system_backup.manifests.incremental import InstructionReader, build_from_changes
from rsync_system_backup.manifests.scan import ChangedDuringWalk, build_lines, scan_tree
from rsync_system_backup.backup_set.exclusive_sizes import measure_exclusive_sizes

PROGRESS_FORMAT = '\rVerifying %s: %i entries, %.1f MiB read '
"""The progress line of :func:`verify_snapshot()` on a terminal."""

KNOWN_PROBLEM = 2
"""The exit code after a known problem (an :exc:`AgentError`)."""


class AgentError(Exception):
    """Raised for a known problem, which the other side reports in one line."""


def build_manifest(directory, tree, method, described, instructions):
    """
    Write the manifest of a new snapshot from a tree that holds exactly what it holds.

    :param directory: The directory that holds the snapshots (a string).
    :param tree: The tree to describe: ``latest``, which the snapshot copies (a pathname),
                 or an empty string for a manifest without entries (which records the method).
    :param method: The snapshot method that makes it (a string).
    :param described: The snapshot whose manifest described ``latest``
                      before this run changed it (a string, see
                      :func:`.take_latest_description()`; empty when none did).
    :param instructions: A binary stream that gives what the transfer
                         changed (when it ends) and then the snapshot's
                         name (when the snapshot is made, see
                         :func:`.encode_instructions()`): the program may
                         start while rsync works, and meanwhile reads the
                         manifest of `described`; it describes the changes
                         and compresses the result while the snapshot is made.
    :returns: A dict with the manifest's ``pathname`` and how it was built
              (``source``: ``changes``, ``walk`` or ``none`` for the header alone).
    :raises: :exc:`AgentError` when the instructions end early (nothing is written then).

    With the changes, the manifest is built from the previous one (see
    :func:`.build_from_changes()`) when that one described ``latest`` before
    the changes: it is the manifest of the newest snapshot that has one
    (see :func:`newest_snapshot()`), with entries, of the same method, and
    `described` names it. Otherwise all of the tree is walked, and that
    newest manifest lends its checksums (see :func:`.build_lines()`). Either
    way the manifest then describes ``latest``, and :data:`.LATEST_RECORD` says so.
    """
    lines = read_described(directory, described, method) if tree and described else None
    reader = InstructionReader(instructions)
    changes = read_instructions(reader.read_changes)
    if not tree:
        return dict(pathname=write_manifest(directory, read_instructions(reader.read_name), method), source='none')
    previous = newest_snapshot(directory)
    usable = lines is not None and changes is not None and previous == described
    compressed = None
    if usable and changes:
        encoded = build_from_previous(tree, lines, changes, os.path.join(directory, previous))
        compressed = compress_parts(encoded) if encoded is not None else None
    name = read_instructions(reader.read_name)
    if usable and not changes:
        # Nothing has written to latest since that manifest described it (a snapshot alone): the same file serves.
        pathname, source = copy_manifest(directory, name, described), 'changes'
    elif compressed is not None:
        pathname, source = write_manifest(directory, name, method, compressed=compressed), 'changes'
    else:
        pathname, source = write_manifest(directory, name, method, build_lines(tree, read_previous_checksums(
            directory, previous))), 'walk'
    write_latest_record(directory, name)
    return dict(pathname=pathname, source=source)


def read_instructions(read):
    """
    Read a part of the instructions of :func:`build_manifest()`.

    :param read: A method of an :class:`.InstructionReader`.
    :returns: What it gives.
    :raises: :exc:`AgentError` when the instructions end early.
    """
    try:
        return read()
    except ValueError as e:
        raise AgentError("No manifest was written: %s." % e)


def newest_snapshot(directory):
    """
    Find the newest snapshot that has a manifest (before this run's snapshot is made).

    :param directory: The directory that holds the snapshots (a string).
    :returns: Its name (a string), or :data:`None`.
    """
    return max((other for other in list_manifests(directory) if os.path.isdir(os.path.join(directory, other))),
               default=None)


def read_described(directory, described, method):
    """
    Read the manifest that described ``latest`` before this run changed it.

    :param directory: The directory that holds the snapshots (a string).
    :param described: Its snapshot's name (a string).
    :param method: The snapshot method of the new snapshot (a string).
    :returns: Its entry lines (see :func:`.read_entry_lines()`), or
              :data:`None` when it can't serve: it has no entries, another
              method made it, or it can't be read.
    """
    try:
        previous_method, complete, lines = read_entry_lines(os.path.join(directory, manifest_name(described)))
    except (OSError, ValueError, EOFError):
        return None
    return lines if complete and previous_method == method else None


def build_from_previous(tree, lines, changes, previous):
    """
    Build the entry lines of a manifest from the previous snapshot's manifest and the transfer's changes.

    :param tree: ``latest`` (a string).
    :param lines: The previous manifest's entry lines (see :func:`read_described()`).
    :param changes: The changes (see :meth:`.InstructionReader.read_changes()`).
    :param previous: The previous snapshot (a pathname).
    :returns: The lines (see :func:`.build_from_changes()`), each ending in
              a line feed and joined (bytes), or :data:`None` when
              ``latest`` can't be read that way: all of it is walked then.
    """
    try:
        lines = build_from_changes(tree, lines, changes, previous)
    except (OSError, ValueError, ChangedDuringWalk):
        return None
    lines.append(b'')
    return b'\n'.join(lines)


def read_previous_checksums(directory, previous):
    """
    Read the checksums of the previous snapshot's manifest (see :func:`.read_checksums()`).

    :param directory: The directory that holds the snapshots (a string).
    :param previous: The previous snapshot's name (a string), or :data:`None`.
    :returns: A dict, or :data:`None` when there is no previous manifest or it can't be read.
    """
    if not previous:
        return None
    try:
        return read_checksums(os.path.join(directory, manifest_name(previous)))
    except (OSError, ValueError, EOFError):
        # A damaged or missing earlier manifest costs time, not correctness.
        return None


def load_manifest(directory, name):
    """
    Read a snapshot's manifest.

    :param directory: The directory that holds the snapshots (a string).
    :param name: The snapshot's name (a string).
    :returns: A :class:`.Manifest`.
    :raises: :exc:`AgentError` when it is missing or unreadable.
    """
    pathname = os.path.join(directory, manifest_name(name))
    try:
        return read_manifest(pathname)
    except FileNotFoundError:
        raise AgentError("%s has no manifest (%s is missing)" % (name, pathname))
    except (OSError, ValueError, EOFError) as e:
        raise AgentError("Can't read the manifest %s: %s" % (pathname, e))


def show_progress(name, stream):
    """
    Make the progress function of :func:`verify_snapshot()`.

    :param name: The snapshot's name (a string).
    :param stream: Where to show it (a text stream).
    :returns: A function that takes the entries and bytes so far and shows them.
    """
    def report(count, read):
        stream.write(PROGRESS_FORMAT % (name, count, read / 1048576.0))
        stream.flush()
    return report


def verify_snapshot(directory, name, progress=None):
    """
    Read a whole snapshot and compare it with its manifest.

    :param directory: The directory that holds the snapshots (a string).
    :param name: The snapshot's name (a string).
    :param progress: A text stream (a terminal's) to show progress on, or :data:`None`.
    :returns: A dict with the ``entries`` checked and the ``differences``
              (see :meth:`.Differences.to_dict()`; added entries are extra,
              removed ones missing); ``entries`` is :data:`None` for a
              manifest without entries (a snapshot made with ``--no-manifest``).
    """
    manifest = load_manifest(directory, name)
    if not manifest.complete:
        return dict(entries=None, differences=None)
    try:
        differences = compare_trees(manifest.entries, scan_tree(os.path.join(directory, name),
                                                                progress=show_progress(name, progress)
                                                                if progress else None))
    except (OSError, ChangedDuringWalk) as e:
        raise AgentError("Can't read %s: %s" % (os.path.join(directory, name), e))
    finally:
        if progress:
            progress.write('\r\x1b[K')
    return dict(entries=len(manifest.entries), differences=differences.to_dict())


def diff_snapshots(directory, old, new):
    """
    Compare two snapshots: from their manifests when both have one, otherwise by walking them.

    :param directory: The directory that holds the snapshots (a string).
    :param old: The older snapshot's name (a string).
    :param new: The newer snapshot's name (a string).
    :returns: A dict with the ``differences`` (see
              :meth:`.Differences.to_dict()`) and ``source`` (``manifests``
              or ``walk``).

    Directories count as changed for their mode and owner, not for their
    modification time, which changes whenever an entry is added or removed.
    Walking compares the metadata without reading content: a file whose
    size and modification time are the same counts as unchanged (rsync's
    quick check).
    """
    manifests = [load_manifest(directory, name) if os.path.isfile(os.path.join(directory, manifest_name(name)))
                 else None for name in (old, new)]
    if all(manifest and manifest.complete for manifest in manifests):
        expected = manifests[0].entries
        actual = manifests[1].entries.values()
        fields, source = COMPARED_FIELDS, 'manifests'
    else:
        try:
            expected = {entry.path: entry for entry in scan_tree(os.path.join(directory, old), checksums=False)}
            actual = list(scan_tree(os.path.join(directory, new), checksums=False))
        except (OSError, ChangedDuringWalk) as e:
            raise AgentError("Can't read the snapshots to compare: %s" % e)
        fields, source = COMPARED_FIELDS[:-1], 'walk'
    differences = compare_trees(expected, actual, fields, directory_times=False)
    return dict(differences=differences.to_dict(), source=source)


def measure_snapshots(directory, *names):
    """
    Measure the exclusive size of the trees in a backup set and read the method of each snapshot.

    :param directory: The directory that holds the snapshots (a string).
    :param names: Every tree in it (``latest``, snapshots and leftovers).
    :returns: A dict with ``sizes`` (name to bytes) and ``methods`` (name to
              the method in its manifest, for the snapshots that have one).
    """
    present = list_manifests(directory)
    manifests = {name: [manifest_name(name)] for name in names if name in present}
    methods = {}
    for name, files in manifests.items():
        try:
            methods[name] = read_method(os.path.join(directory, files[0]))
        except (OSError, ValueError, EOFError):
            methods[name] = ''
    try:
        sizes = measure_exclusive_sizes(directory, names, manifests)
    except (OSError, ChangedDuringWalk) as e:
        raise AgentError("The backup set in %s changed while it was measured (%s): try again" % (directory, e))
    return dict(sizes=sizes, methods=methods)


VERBS = {'build': build_manifest, 'verify': verify_snapshot, 'diff': diff_snapshots, 'usage': measure_snapshots}
"""The functions that :func:`main()` runs, by name."""


def main(arguments, stdin, stdout, stderr, shield):
    """
    Run a verb as a program: ``manifests VERB [--progress] ARGUMENT...``.

    :param arguments: The verb, then ``--progress`` where wanted (for
                      ``verify``), then its arguments (strings).
    :param stdin: For ``build``, its instructions (a binary stream, see :func:`build_manifest()`).
    :param stdout: For the answer (a binary stream): the verb's result as JSON, or ``{"error": MESSAGE}``.
    :param stderr: For the progress (a text stream).
    :param shield: Unused: the verbs only read, apart from a manifest that is renamed into place when it is complete.
    :returns: The exit code: 0, or :data:`KNOWN_PROBLEM`.
    """
    verb, arguments = arguments[0], list(arguments[1:])
    options = {}
    if arguments[:1] == ['--progress']:
        options['progress'] = stderr
        arguments.pop(0)
    if verb == 'build':
        options['instructions'] = stdin
    try:
        result, code = VERBS[verb](*arguments, **options), 0
    except AgentError as e:
        result, code = dict(error=str(e)), KNOWN_PROBLEM
    stdout.write(json.dumps(result).encode('utf-8'))
    return code
