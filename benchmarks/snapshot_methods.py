#!/usr/bin/env python3
"""
Measure each snapshot method's transfer, snapshot and rotation against bare ``cp -al`` and ``rm -rf``.

Usage: python benchmarks/snapshot_methods.py [OPTIONS]

Generates a deterministic source tree (see tree.py) and, for each snapshot
method on its filesystem (btrfs on btrfs, reflink on XFS, safe-hardlink,
link-dest and hardlink on ext4; each a loop device mounted in a private mount namespace,
see tests/support/loop_filesystems.py), makes a first backup and then, in each
round, changes about 1% of the source and times three runs of
rsync-system-backup: the transfer alone (-b), the snapshot alone (-s) and a
rotation that removes the previous snapshot (-r). After the hardlink
method's rounds, bare ``cp -al`` and ``rm -rf`` of its ``latest`` are timed
on the same filesystem, as the floor. The table shows medians over the
rounds; the caches are warm (as they are for a backup that runs right after
the system was in use). Needs root, unshare, nsenter and the mkfs programs.

Options:
  --files N      the number of files in the source tree (default 100000)
  --rounds N     the number of rounds (default 3)
  --seed N       picks the tree (default 1)
  --work-dir DIR where to create the temporary work directory (default /tmp,
                 on disk: the images are sparse files of a few GiB)
  --json FILE    also write the results to FILE as JSON
"""

import argparse
import json
import os
import pathlib
import shutil
import statistics
import sys
import tempfile

BENCHMARKS_DIRECTORY = os.path.dirname(os.path.abspath(__file__))
"""The directory holding the benchmarks."""

sys.path.insert(0, os.path.join(os.path.dirname(BENCHMARKS_DIRECTORY), 'tests'))

from support.loop_filesystems import MountedFilesystem  # noqa: E402
from measure import run_timed  # noqa: E402
from tree import TreePlan  # noqa: E402

METHODS = (('btrfs', 'btrfs'), ('reflink', 'xfs'), ('safe-hardlink', 'ext4'), ('link-dest', 'ext4'),
           ('hardlink', 'ext4'))
"""The snapshot methods measured, each with the filesystem it runs on."""

KEEP_NEWEST_ONLY = ('--hourly=1', '--prefer-recent', '--daily=0', '--weekly=0', '--monthly=0')
"""Rotation options that expire every snapshot but the newest."""

STEPS = ('transfer', 'snapshot', 'rotation')
"""The steps timed in each round, in order."""

ROW = '%-16s %-5s %-13s %-12s %-12s %-12s %-10s'
"""The layout of a line of the table."""


def parse_arguments(arguments):
    """
    Parse the command line.

    :param arguments: The arguments (a list of strings).
    :returns: An :class:`argparse.Namespace`.
    """
    parser = argparse.ArgumentParser(description="Time the snapshot methods against cp -al and rm -rf.")
    parser.add_argument('--files', type=int, default=100000)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--work-dir', default='/tmp')
    parser.add_argument('--json')
    return parser.parse_args(arguments)


def image_size(plan):
    """
    Choose a size for the images (MiB): room for the tree, the copies of changed files and the metadata.

    :param plan: The :class:`.TreePlan` of the source.
    :returns: An integer.
    """
    return max(1024, 3 * plan.statistics.bytes // (1024 * 1024) + plan.files // 50)


def program(filesystem, *arguments):
    """
    Build the command line that runs rsync-system-backup in a filesystem's namespace.

    :param filesystem: A mounted :class:`.MountedFilesystem`.
    :param arguments: The program's arguments (strings or paths).
    :returns: A list of strings.
    """
    return filesystem.command(sys.executable, '-m', 'rsync_system_backup', '--disable-notifications', *arguments)


def measure_method(method, kind, plan, source, work, rounds):
    """
    Time one snapshot method on its filesystem.

    :param method: The method's name (a string).
    :param kind: The filesystem (a string).
    :param plan: The :class:`.TreePlan` of the source.
    :param source: The source directory (a string), fresh from :meth:`.TreePlan.create()`.
    :param work: The work directory (a :class:`pathlib.Path`).
    :param rounds: The number of rounds.
    :returns: A dict from step name to a list of seconds (one per round):
              the steps, ``overhead`` (a run that has nothing to do),
              ``first backup`` and, for the hardlink method, the floor's
              ``cp -al`` and ``rm -rf``.
    """
    environment = dict(os.environ, COLOREDLOGS_SYSLOG='false')
    environment.pop('RSYNC_MODULE_PATH', None)
    option = '--snapshot-method=%s' % method
    times = {step: [] for step in STEPS + ('overhead',)}
    with MountedFilesystem(kind, work / method, size=image_size(plan)) as filesystem:
        latest = filesystem.mount_point / 'backups' / 'latest'
        times['first backup'] = [run_timed(program(filesystem, option, '-b', '-s', source, latest),
                                           environment).seconds]
        for round_number in range(1, rounds + 1):
            plan.mutate(source, round_number)
            for step, flag in zip(STEPS, ('-b', '-s', '-r')):
                extra = KEEP_NEWEST_ONLY if step == 'rotation' else ()
                command = program(filesystem, option, flag, *(extra + (source, latest)))
                times[step].append(run_timed(command, environment).seconds)
            # The same rotation again, with nothing left to remove: what a run costs before any work.
            times['overhead'].append(run_timed(command, environment).seconds)
        if method == 'hardlink':
            times['cp -al'] = []
            times['rm -rf'] = []
            for number in range(rounds):
                copy = filesystem.mount_point / 'backups' / ('copy-%i' % number)
                times['cp -al'].append(run_timed(filesystem.command('cp', '-al', latest, copy), environment).seconds)
                times['rm -rf'].append(run_timed(filesystem.command('rm', '-rf', copy), environment).seconds)
    return times


def format_table(results, files):
    """
    Render the medians as a table.

    :param results: A dict from method name to what :func:`measure_method()` returned.
    :param files: The number of files in the tree.
    :returns: A string.
    """
    def median(values):
        return '%.2f s' % statistics.median(values) if values else ''
    lines = ['Medians at %i files (warm caches):' % files, '',
             ROW % ('method', 'fs', 'first backup', 'transfer -b', 'snapshot -s', 'rotation -r', 'no-op run')]
    for method, kind in METHODS:
        times = results[method]
        lines.append(ROW % (method, kind, median(times['first backup']), median(times['transfer']),
                            median(times['snapshot']), median(times['rotation']), median(times['overhead'])))
    floor = results['hardlink']
    lines.append(ROW % ('cp -al / rm -rf', 'ext4', '', '', median(floor['cp -al']), median(floor['rm -rf']), ''))
    return '\n'.join(lines)


def main(arguments=None):
    """
    Run the benchmark and print the table.

    :param arguments: The command line arguments (defaults to ``sys.argv[1:]``).
    """
    options = parse_arguments(sys.argv[1:] if arguments is None else arguments)
    plan = TreePlan(files=options.files, seed=options.seed)
    work = pathlib.Path(tempfile.mkdtemp(prefix='snapshot-methods-', dir=options.work_dir))
    try:
        results = {}
        for method, kind in METHODS:
            source = str(work / 'source')
            shutil.rmtree(source, ignore_errors=True)
            plan.create(source)
            sys.stderr.write("Measuring the %s method on %s ..\n" % (method, kind))
            results[method] = measure_method(method, kind, plan, source, work, options.rounds)
    finally:
        shutil.rmtree(str(work), ignore_errors=True)
    print(format_table(results, options.files))
    if options.json:
        with open(options.json, 'w') as handle:
            json.dump(dict(files=options.files, rounds=options.rounds, results=results), handle, indent=2)


if __name__ == '__main__':
    main()
