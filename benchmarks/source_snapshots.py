#!/usr/bin/env python3
"""
Measure incremental backups from a btrfs source (planned from its snapshots) and an ext4 source (rsync's walk).

Usage: python benchmarks/source_snapshots.py [OPTIONS]

Runs itself again in a private mount namespace (``unshare --mount``), where
it mounts four loop images: a btrfs source (the tree in a subvolume, so
the run snapshots it and plans from ``btrfs send``; each destination gets
a subvolume of its own, as the kept parent snapshot belongs to the
source), an ext4 source (rsync's dry run plans), both mounted ``noatime``
(see :data:`SOURCE_MOUNT_OPTIONS`), and a btrfs and an ext4
destination. Each source is backed up to each destination (btrfs: the btrfs method; ext4:
safe-hardlink), with the default options, manifests included. Each round
changes about 1% of both sources (see tree.py), then times, for every
pair, one run of rsync-system-backup and its floor on the same destination
filesystem: ``rsync -aHAX --numeric-ids --delete`` in place and the
snapshot the filesystem does best (``btrfs subvolume snapshot -r`` on
btrfs, ``cp -al`` on ext4), one right after the other. Before the run
and before the floor, what earlier commands left to write is written back
(``sync``), so that neither pays for the other's writes, and each pays
for its own: the run's snapshot writes back its transfer, and the
floor's ``btrfs subvolume snapshot`` commits what its rsync wrote. With
``--cold`` the page cache is dropped there too
(``/proc/sys/vm/drop_caches``: this slows the whole machine down for a
moment). As in run.py's incremental case, the snapshots
but the newest are removed before each round (untimed), so that the run's
rotation removes none: the floor removes nothing either, and run.py
measures rotation as a case of its own. The table shows the medians, the ratio
to the floor, and the peak resident set size of rsync-system-backup's own
Python process (see peak_rss.py). When the namespace ends, its mounts go
and the loop devices detach themselves. Needs root, unshare and the mkfs
programs.

Options:
  --files N      the number of files in each source tree (default 100000)
  --rounds N     the number of rounds (default 3)
  --seed N       picks the tree (default 1)
  --cold         drop the page cache before the run and before the floor
  --pairs LIST   which sources and destinations (default
                 btrfs:btrfs,btrfs:ext4,ext4:btrfs,ext4:ext4); each pair
                 holds two copies of the tree, so at 1,000,000 files (about
                 7 GB) fewer pairs keep the images within the disk
  --work-dir DIR where to create the temporary work directory (default
                 /tmp; the images are sparse files)
  --json FILE    also write the results to FILE as JSON
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

BENCHMARKS_DIRECTORY = os.path.dirname(os.path.abspath(__file__))
"""The directory holding the benchmarks."""

sys.path.insert(0, BENCHMARKS_DIRECTORY)

from measure import run_timed  # noqa: E402
from tree import TreePlan  # noqa: E402

INSIDE_FLAG = '--inside-namespace'
"""The hidden option with which the script runs itself in its mount namespace."""

SOURCES = ('btrfs', 'ext4')
"""The filesystems of the sources."""

DESTINATIONS = ('btrfs', 'ext4')
"""The filesystems of the destinations."""

DEFAULT_PAIRS = 'btrfs:btrfs,btrfs:ext4,ext4:btrfs,ext4:ext4'
"""The sources and destinations measured by default (``SOURCE:DESTINATION``, comma-separated)."""

HOLDER = '.rsync-system-backup.source-snapshots'
"""The directory of a btrfs source's kept snapshot, which the floor's rsync leaves out as the backup does."""

MKFS = {'btrfs': ['mkfs.btrfs', '-q', '-f'], 'ext4': ['mkfs.ext4', '-q', '-F', '-i', '4096']}
"""How each image is made (ext4 with an inode per 4 KiB: the trees are mostly small files)."""

SOURCE_MOUNT_OPTIONS = 'loop,noatime'
"""
How the sources are mounted: without access times. The floor's rsync reads
the live source, and under relatime its first read of a file sets the
file's access time, which the next ``btrfs send`` lists as a change of that
file (after the first backups, of every file: the first round took 103 s
instead of 18 at 1,000,000 files). rsync-system-backup itself reads the
read-only snapshot, whose access times never change.
"""

ROW = '%-22s %10s %10s %8s %10s'
"""The layout of a line of the table."""

SNAPSHOT_NAME = re.compile(r'^\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}$')
"""The name of a snapshot that the program made."""


def parse_arguments(arguments):
    """
    Parse the command line.

    :param arguments: The arguments (a list of strings).
    :returns: An :class:`argparse.Namespace`.
    """
    parser = argparse.ArgumentParser(description="Time backups of btrfs and ext4 sources against their floors.")
    parser.add_argument('--files', type=int, default=100000)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--cold', action='store_true')
    parser.add_argument('--pairs', default=DEFAULT_PAIRS, type=check_pairs)
    parser.add_argument('--work-dir', default='/tmp')
    parser.add_argument('--json')
    parser.add_argument(INSIDE_FLAG, dest='inside', help=argparse.SUPPRESS)
    return parser.parse_args(arguments)


def check_pairs(value):
    """
    Check the value of ``--pairs``.

    :param value: ``SOURCE:DESTINATION`` pairs, comma-separated (a string), each filesystem btrfs or ext4.
    :returns: The value.
    :raises: :exc:`argparse.ArgumentTypeError` for anything else, or a pair given twice.
    """
    pairs = value.split(',')
    known = set('%s:%s' % (source, destination) for source in SOURCES for destination in DESTINATIONS)
    if not pairs or any(pair not in known for pair in pairs) or len(set(pairs)) != len(pairs):
        raise argparse.ArgumentTypeError("give SOURCE:DESTINATION pairs of btrfs and ext4, each once, such as %s"
                                         % DEFAULT_PAIRS)
    return value


def image_megabytes(plan):
    """
    Choose the size of each image: room for the tree, its snapshots' changes and the metadata.

    :param plan: The :class:`.TreePlan` of the sources.
    :returns: MiB (an integer).
    """
    return max(1024, 3 * plan.statistics.bytes // (1024 * 1024) + plan.files // 100)


def run(*command):
    """
    Run an untimed command, failing loudly.

    :param command: The command line (strings).
    """
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def mount_image(work, name, kind, megabytes, options='loop'):
    """
    Make and mount one loop image (in this process's private mount namespace).

    :param work: The work directory (a string).
    :param name: The image's name (a string).
    :param kind: ``btrfs`` or ``ext4``.
    :param megabytes: Its size (MiB).
    :param options: The mount options (a string).
    :returns: Its mount point (a string).
    """
    image = os.path.join(work, name + '.img')
    mount_point = os.path.join(work, name)
    os.mkdir(mount_point)
    with open(image, 'wb') as handle:
        handle.truncate(megabytes * 1024 * 1024)
    run(*(MKFS[kind] + [image]))
    run('mount', '-n', '-o', options, image, mount_point)
    return mount_point


def settle(cold):
    """
    Write back what earlier commands left to write, and with `cold` drop the caches too, before the run or the floor.

    Without it, the run's own ``sync -f`` (before it names a snapshot) would
    also write what the floor's rsync of the round before left in the page
    cache on the same filesystem. Not between the floor's commands: a sync
    there would write back the floor's rsync untimed, which the run's
    snapshot pays for its own transfer (measured at 100,000 files, btrfs:
    the commit after an apply of 1% took 0.38 s, after the floor's rsync 0.21 s).

    :param cold: :data:`True` to drop the page cache, dentries and inodes (a cold-cache measurement).
    """
    run('sync')
    if cold:
        with open('/proc/sys/vm/drop_caches', 'w') as handle:
            handle.write('3\n')


class Pair(object):

    """One source backed up to one destination, with the floor's copy beside it."""

    def __init__(self, source, source_kind, destination_root, destination_kind):
        """
        Prepare the pair's directories.

        :param source: The source directory (a string).
        :param source_kind: The source's filesystem (a string).
        :param destination_root: The destination filesystem's mount point (a string).
        :param destination_kind: Its filesystem (a string).
        """
        self.source = source
        self.source_kind = source_kind
        self.name = '%s -> %s' % (source_kind, destination_kind)
        self.destination_kind = destination_kind
        base = os.path.join(destination_root, 'from-' + source_kind)
        self.latest = os.path.join(base, 'backups', 'latest')
        self.floor = os.path.join(base, 'floor')
        self.floor_latest = os.path.join(self.floor, 'latest')
        os.makedirs(self.floor)
        self.times = dict(tool=[], floor=[], rss=[])

    def tool_command(self, rss_report):
        """
        Build the command line of one default run of rsync-system-backup.

        :param rss_report: Where :mod:`peak_rss` writes the peak (a string).
        :returns: A list of strings.
        """
        return [sys.executable, os.path.join(BENCHMARKS_DIRECTORY, 'peak_rss.py'), rss_report, '-m',
                'rsync_system_backup', '--disable-notifications', '-q', self.source, self.latest]

    def floor_commands(self, number):
        """
        Build the floor's commands: rsync in place, then the filesystem's snapshot.

        :param number: The round (an integer, for the snapshot's name).
        :returns: A list of command lines.
        """
        transfer = ['rsync', '-aHAX', '--numeric-ids', '--delete', '--exclude=/%s/' % HOLDER,
                    self.source + '/', self.floor_latest + '/']
        snapshot = os.path.join(self.floor, 'snapshot-%i' % number)
        if self.destination_kind == 'btrfs':
            return [transfer, ['btrfs', '-q', 'subvolume', 'snapshot', '-r', self.floor_latest, snapshot]]
        return [transfer, ['cp', '-al', self.floor_latest, snapshot]]

    def first_backup(self, environment, rss_report):
        """
        Make the first backup and the floor's first copy (untimed).

        :param environment: The environment (a dict).
        :param rss_report: See :meth:`tool_command()`.
        """
        run_timed(self.tool_command(rss_report), environment)
        if self.destination_kind == 'btrfs':
            run('btrfs', '-q', 'subvolume', 'create', self.floor_latest)
        for command in self.floor_commands(0):
            run(*command)

    def keep_newest_snapshot(self):
        """
        Remove the run's snapshots but the newest (untimed), so that the next run's rotation removes none.

        On btrfs the kernel frees a deleted subvolume's blocks in the
        background, after the delete returns: ``btrfs subvolume sync`` waits
        for that, so that it doesn't compete with the timed run.
        """
        backups = os.path.dirname(self.latest)
        names = sorted(name for name in os.listdir(backups) if SNAPSHOT_NAME.match(name))[:-1]
        for name in names:
            if self.destination_kind == 'btrfs':
                run('btrfs', '-q', 'subvolume', 'delete', os.path.join(backups, name))
            else:
                run('rm', '-rf', '--', os.path.join(backups, name))
        if names and self.destination_kind == 'btrfs':
            run('btrfs', '-q', 'subvolume', 'sync', backups)

    def measure(self, number, environment, rss_report, cold):
        """
        Time one run and its floor.

        :param number: The round (an integer).
        :param environment: The environment (a dict).
        :param rss_report: See :meth:`tool_command()`.
        :param cold: :data:`True` to drop the caches before each timed command.
        """
        self.keep_newest_snapshot()
        settle(cold)
        measurement = run_timed(self.tool_command(rss_report), environment, rss_report=rss_report)
        self.times['tool'].append(measurement.seconds)
        self.times['rss'].append(measurement.peak_rss_kib)
        if self.source_kind == 'btrfs':
            # The run removed the source's older snapshot: its blocks are freed before the floor reads the source.
            run('btrfs', '-q', 'subvolume', 'sync', self.source)
        # The floor's commands run back to back, as the run's steps do: its snapshot commits (btrfs) or
        # competes with (ext4) what its rsync left to write, as the run's snapshot does with its transfer's.
        settle(cold)
        seconds = 0.0
        for command in self.floor_commands(number):
            seconds += run_timed(command, environment).seconds
        self.times['floor'].append(seconds)


def measure(options):
    """
    Set the scene up in this (private) mount namespace and time every pair.

    :param options: The parsed options.
    :returns: A list of :class:`Pair` objects with their times.
    """
    work = options.inside
    plan = TreePlan(files=options.files, seed=options.seed)
    megabytes = image_megabytes(plan)
    environment = dict(os.environ, COLOREDLOGS_SYSLOG='false')
    environment.pop('RSYNC_MODULE_PATH', None)
    wanted = [tuple(pair.split(':')) for pair in options.pairs.split(',')]
    sources = {}
    for kind in SOURCES:
        targets = [destination for source, destination in wanted if source == kind]
        if not targets:
            continue
        top = mount_image(work, 'source-' + kind, kind, megabytes, options=SOURCE_MOUNT_OPTIONS)
        first = os.path.join(top, 'src-1')
        if kind == 'btrfs':
            run('btrfs', '-q', 'subvolume', 'create', first)
        else:
            os.mkdir(first)
        sys.stderr.write("Creating %i files on %s ..\n" % (plan.files, kind))
        plan.create(os.path.join(first, 'tree'))
        sources[kind] = dict((destination, first) for destination in targets)
        if kind == 'btrfs':
            # The kept parent snapshot belongs to the source, so each destination gets a source of its own:
            # a writable snapshot of the first, which costs nothing.
            for number, destination in enumerate(targets[1:], 2):
                copy = os.path.join(top, 'src-%i' % number)
                run('btrfs', '-q', 'subvolume', 'snapshot', first, copy)
                sources[kind][destination] = copy
    destinations = dict((kind, mount_image(work, 'destination-' + kind, kind, megabytes * 2))
                        for kind in DESTINATIONS if any(destination == kind for _, destination in wanted))
    pairs = [Pair(sources[source][destination], source, destinations[destination], destination)
             for source, destination in wanted]
    rss_report = os.path.join(work, 'rss')
    for pair in pairs:
        sys.stderr.write("First backup %s ..\n" % pair.name)
        pair.first_backup(environment, rss_report)
    for number in range(1, options.rounds + 1):
        for source in sorted(set(pair.source for pair in pairs)):
            plan.mutate(os.path.join(source, 'tree'), number)
        for pair in pairs:
            sys.stderr.write("Round %i: %s ..\n" % (number, pair.name))
            pair.measure(number, environment, rss_report, options.cold)
    return pairs


def format_table(pairs, options):
    """
    Render the medians as a table.

    :param pairs: The measured :class:`Pair` objects.
    :param options: The parsed options.
    :returns: A string.
    """
    cache = 'cold' if options.cold else 'warm'
    lines = ['Medians of %i rounds at %i files, 1%% changed, %s cache:' % (options.rounds, options.files, cache),
             '', ROW % ('source -> destination', 'floor', 'this build', 'x floor', 'peak RSS')]
    for pair in pairs:
        floor, tool = statistics.median(pair.times['floor']), statistics.median(pair.times['tool'])
        peaks = [peak for peak in pair.times['rss'] if peak]
        lines.append(ROW % (pair.name, '%.2f s' % floor, '%.2f s' % tool, '%.2fx' % (tool / floor),
                            '%.0f MiB' % (max(peaks) / 1024.0) if peaks else ''))
    return '\n'.join(lines)


def main(arguments=None):
    """
    Run the benchmark (in a private mount namespace) and print the table.

    :param arguments: The command line arguments (defaults to ``sys.argv[1:]``).
    """
    arguments = sys.argv[1:] if arguments is None else arguments
    options = parse_arguments(arguments)
    if options.inside:
        pairs = measure(options)
        results = dict((pair.name, pair.times) for pair in pairs)
        print(format_table(pairs, options))
        if options.json:
            with open(options.json, 'w') as handle:
                json.dump(dict(files=options.files, rounds=options.rounds, cold=options.cold, results=results),
                          handle, indent=2)
        return
    work = tempfile.mkdtemp(prefix='source-snapshots-', dir=options.work_dir)
    try:
        command = ['unshare', '--mount', '--propagation', 'private', sys.executable, os.path.abspath(__file__)]
        status = subprocess.call(command + arguments + [INSIDE_FLAG, work])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(status)


if __name__ == '__main__':
    main()
