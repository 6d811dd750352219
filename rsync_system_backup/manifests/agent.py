"""
The work on the destination's side: building, verifying and comparing manifests, and measuring snapshots.

Each verb of :func:`dispatch()` takes strings and returns a JSON-friendly
dict, so that it runs the same in this process (a local destination) and on
another system (see :mod:`.manifests.remote`, which runs :func:`main()` there
with ``python3`` and reads its JSON answer).
"""

import json
import os
import sys

from rsync_system_backup.manifests.compare import COMPARED_FIELDS, compare_trees
from rsync_system_backup.manifests.format import (
    list_manifests,
    manifest_name,
    read_checksums,
    read_manifest,
    read_method,
    write_manifest,
)
from rsync_system_backup.manifests.scan import ChangedDuringWalk, build_lines, scan_tree
from rsync_system_backup.backup_set.exclusive_sizes import measure_exclusive_sizes

PROGRESS_FORMAT = '\rVerifying %s: %i entries, %.1f MiB read '
"""The progress line of :func:`verify_snapshot()` on a terminal."""


class AgentError(Exception):
    """Raised for a known problem, which the other side reports in one line."""


def build_manifest(directory, tree, name, method):
    """
    Write the manifest of snapshot `name` from a tree that holds exactly what it holds.

    :param directory: The directory that holds the snapshots (a string).
    :param tree: The tree to describe: the snapshot or the ``latest`` it copies (a pathname),
                 or an empty string for a manifest without entries (which records the method).
    :param name: The snapshot's name (a string).
    :param method: The snapshot method that makes it (a string).
    :returns: A dict with the manifest's ``pathname``.

    The newest manifest of an older snapshot that still exists lends its
    checksums (see :func:`.build_lines()`).
    """
    if not tree:
        return dict(pathname=write_manifest(directory, name, method))
    checksums = None
    previous = max((other for other in list_manifests(directory)
                    if other < name and os.path.isdir(os.path.join(directory, other))), default=None)
    if previous:
        try:
            checksums = read_checksums(os.path.join(directory, manifest_name(previous)))
        except (OSError, ValueError, EOFError):
            # A damaged or missing earlier manifest costs time, not correctness.
            checksums = None
    return dict(pathname=write_manifest(directory, name, method, build_lines(tree, checksums)))


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


def show_progress(name):
    """
    Make the progress function of :func:`verify_snapshot()`.

    :param name: The snapshot's name (a string).
    :returns: A function that takes the entries and bytes so far and shows them on standard error.
    """
    def report(count, read):
        sys.stderr.write(PROGRESS_FORMAT % (name, count, read / 1048576.0))
        sys.stderr.flush()
    return report


def verify_snapshot(directory, name, progress=False):
    """
    Read a whole snapshot and compare it with its manifest.

    :param directory: The directory that holds the snapshots (a string).
    :param name: The snapshot's name (a string).
    :param progress: :data:`True` to show progress on standard error.
    :returns: A dict with the ``entries`` checked and the ``differences``
              (see :meth:`.Differences.to_dict()`; added entries are extra,
              removed ones missing); ``entries`` is :data:`None` for a
              manifest without entries (a snapshot made without ``--manifest``).
    """
    manifest = load_manifest(directory, name)
    if not manifest.complete:
        return dict(entries=None, differences=None)
    try:
        differences = compare_trees(manifest.entries, scan_tree(os.path.join(directory, name),
                                                                progress=show_progress(name) if progress else None))
    except (OSError, ChangedDuringWalk) as e:
        raise AgentError("Can't read %s: %s" % (os.path.join(directory, name), e))
    finally:
        if progress:
            sys.stderr.write('\r\x1b[K')
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
"""The functions that :func:`dispatch()` runs, by name."""


def dispatch(verb, *arguments, **options):
    """
    Run one verb.

    :param verb: A key of :data:`VERBS`.
    :param arguments: Its arguments (strings).
    :param options: Its keyword arguments.
    :returns: The verb's result (a JSON-friendly dict).
    :raises: :exc:`AgentError` for known problems.
    """
    return VERBS[verb](*arguments, **options)


def main(arguments):
    """
    Run a verb from a command line and print its result as JSON on standard output.

    :param arguments: The verb, then ``--progress`` where wanted, then its arguments (strings).
    :returns: The exit code: 0, or 2 after a known problem (printed as ``{"error": MESSAGE}``).
    """
    verb, arguments = arguments[0], list(arguments[1:])
    options = {}
    if arguments[:1] == ['--progress']:
        options['progress'] = True
        arguments.pop(0)
    try:
        result, code = dispatch(verb, *arguments, **options), 0
    except AgentError as e:
        result, code = dict(error=str(e)), 2
    sys.stdout.write(json.dumps(result))
    return code
