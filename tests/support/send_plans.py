#!/usr/bin/env python3
"""
The walk-free plan on real btrfs snapshots, next to rsync's plan, and applied as a backup run applies it.

``btrfs send`` finds a snapshot by its path in the mount table, so the plan
is made inside the mount namespace of a :class:`support.loop_filesystems.MountedFilesystem`:
this module, run as a program there (:func:`plan_in_namespace()`), writes
the plan as records that the test process reads back into a
:class:`~rsync_system_backup.transfer.send_plan.SendPlan`. The test process
then applies it with the run's own protect and apply steps
(:func:`apply_plan()`) and compares it with rsync's dry run
(:func:`rsync_plan()`).

:class:`SendPlanSeed` is the randomised check: a random tree (the
differential harness's :class:`support.differential.TreeBuilder`) in a
subvolume, a read-only snapshot ``OLD``, a copy of it as ``latest``, random
changes (its :class:`support.differential.Mutator`, and renames of whole
directories), a read-only snapshot ``NEW``; then the send plan must name
everything rsync's plan names (see :func:`uncovered_names()`), and after the
apply, ``rsync --dry-run`` from ``NEW`` to ``latest`` must find nothing to do.
"""

import os
import random
import subprocess
import sys

if __name__ == '__main__':
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from executor.contexts import LocalContext  # noqa: E402

from rsync_system_backup.snapshots.protection import protect  # noqa: E402
from rsync_system_backup.transfer.command import ARCHIVE_OPTIONS, build_rsync_command  # noqa: E402
from rsync_system_backup.transfer.output import TransferStatistics  # noqa: E402
from rsync_system_backup.transfer.plan import (  # noqa: E402
    APPLY_OPTIONS,
    PLAN_ENVIRONMENT,
    PLAN_OPTIONS,
    ROOT_OPTIONS,
    SourceView,
    files_from,
    read_plan,
)
from rsync_system_backup.transfer.send_plan import SendPlan, SendPlanUnavailable, plan_from_snapshots  # noqa: E402

UNAVAILABLE = 3
"""The program's exit code when the snapshots can't give a plan (the reason is on standard error)."""

COPY_OPTIONS = ('-aHAX', '--numeric-ids') + tuple(option for option in ARCHIVE_OPTIONS if option.startswith('--filter'))
"""
How rsync copies here: as the run does, with its filters of XFS's copies of
the ACLs (without any xattr filter, ``rsync -aAX`` gives some directories an
ACL that differs from the source's, see :data:`support.differential.ORACLE_OPTIONS`).
"""

COMPARE_OPTIONS = COPY_OPTIONS + ('--dry-run', '--delete', '--itemize-changes')
"""The options of the final comparison: rsync's dry run from ``NEW`` to ``latest``, which must print nothing."""


def encode_plan(plan):
    """
    Write a plan as records.

    :param plan: A :class:`SendPlan`.
    :returns: NUL-terminated records (bytes): ``E``, the kind and a planned
              name; ``C`` and a name with new content; ``D`` and a deletion;
              ``R`` when the top directory changed.
    """
    records = [b'E' + kind + name for name, kind in sorted(plan.entries.items())]
    records.extend(b'C' + name for name in sorted(plan.content_changes))
    records.extend(b'D' + name for name in sorted(plan.deletions))
    records.extend([b'R'] if plan.root_changed else [])
    return b''.join(record + b'\0' for record in records)


def decode_plan(data):
    """
    Read a plan written by :func:`encode_plan()`.

    :param data: The records (bytes).
    :returns: A :class:`SendPlan`.
    """
    plan = SendPlan()
    for record in data.split(b'\0')[:-1]:
        tag, rest = record[:1], record[1:]
        if tag == b'E':
            plan.entries[rest[1:]] = rest[:1]
        elif tag == b'C':
            plan.content_changes.add(rest)
        elif tag == b'D':
            plan.deletions.add(rest)
        else:
            plan.root_changed = True
    return plan


def plan_in_namespace(filesystem, old, new, *filter_options):
    """
    Make the send plan inside a filesystem's namespace.

    :param filesystem: A mounted :class:`support.loop_filesystems.MountedFilesystem`.
    :param old: The older read-only snapshot (a path in the namespace).
    :param new: The newer read-only snapshot (a path in the namespace).
    :param filter_options: rsync filter options (strings).
    :returns: A :class:`SendPlan`.
    :raises: :exc:`SendPlanUnavailable` with the program's reason.
    """
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    result = subprocess.run(filesystem.command(sys.executable, os.path.abspath(__file__), old, new, *filter_options),
                            stdin=subprocess.DEVNULL, capture_output=True, env=environment, timeout=300)
    if result.returncode == UNAVAILABLE:
        raise SendPlanUnavailable(result.stderr.decode().strip())
    assert result.returncode == 0, result
    return decode_plan(result.stdout)


def rsync_plan(filesystem, new, latest, *options):
    """
    Make rsync's plan, as a planned transfer makes it.

    :param filesystem: The mounted :class:`support.loop_filesystems.MountedFilesystem`
                       (rsync runs in its namespace: it won't follow ``/proc/PID/root``).
    :param new: The source (a path in the namespace).
    :param latest: The destination (a path in the namespace).
    :param options: More rsync options (filters).
    :returns: A checked :class:`.TransferPlan`.
    """
    command = ['rsync'] + list(COPY_OPTIONS) + ['--delete'] + list(options) + list(PLAN_OPTIONS) + \
        ['%s/' % new, '%s/' % latest]
    rsync = subprocess.Popen(filesystem.command(*command), env=dict(os.environ, **PLAN_ENVIRONMENT),
                             stdout=subprocess.PIPE)
    plan = read_plan(rsync.stdout, TransferStatistics())
    # 23: the dry run couldn't look below an entry that becomes a directory (see .transfer.errors.BLIND_SPOT_PREFIX);
    # its plan misses what lies there, which only makes the comparison weaker.
    assert rsync.wait() in (0, 23)
    plan.check_names(SourceView(filesystem.view(new)))
    return plan


def apply_plan(filesystem, plan, new, latest, *exclude_list):
    """
    Carry out a checked plan as a planned transfer does: protect, apply, the top directory.

    :param filesystem: See :func:`rsync_plan()`.
    :param plan: A checked :class:`.TransferPlan`.
    :param new: The source (a path in the namespace).
    :param latest: The destination (a path in the namespace).
    :param exclude_list: The run's exclude patterns (strings).
    """
    left_out, undeleted = protect(LocalContext(), filesystem.view(latest), plan)
    assert not left_out and not undeleted
    names = plan.apply_names()

    def command(options):
        return filesystem.command(*build_rsync_command(str(new), str(latest), excluded_roots=(),
                                                       exclude_list=exclude_list, extra_options=list(options),
                                                       delete=False))
    if names:
        subprocess.run(command(APPLY_OPTIONS), input=files_from(names), check=True, capture_output=True)
    if plan.touches_root():
        subprocess.run(command(ROOT_OPTIONS), check=True, capture_output=True)


def remaining_differences(filesystem, new, latest, *options):
    """
    List what rsync would still change from ``NEW`` to ``latest``.

    :param filesystem: See :func:`rsync_plan()`.
    :param new: The source (a path in the namespace).
    :param latest: The destination (a path in the namespace).
    :param options: More rsync options (filters).
    :returns: rsync's itemized lines (a list of strings), empty when the trees are equal.
    """
    command = ['rsync'] + list(COMPARE_OPTIONS) + list(options) + ['%s/' % new, '%s/' % latest]
    result = subprocess.run(filesystem.command(*command), check=True, capture_output=True,
                            env=dict(os.environ, LC_ALL='C'))
    return result.stdout.decode('ascii', 'backslashreplace').splitlines()


def uncovered_names(send, rsync):
    """
    Find what rsync's plan does that the send plan doesn't.

    :param send: The send plan (a :class:`SendPlan`).
    :param rsync: rsync's checked :class:`.TransferPlan`.
    :returns: A sorted list of strings: rsync's names that the send plan
              neither plans nor deletes, nor deletes a directory above
              (the protect step deletes a directory with everything in it,
              so the send plan names only the top of a deleted tree).
    """
    def deleted(name):
        while name:
            if name in send.deletions:
                return True
            name = os.path.dirname(name)
        return False
    missing = ['entry %r' % name for name in rsync.entries if name not in send.entries]
    missing.extend('link %r' % name for name in rsync.links if name not in send.entries)
    missing.extend('deletion %r' % name for name in rsync.deletions if not deleted(name))
    if rsync.root_changed and not send.touches_root():
        missing.append('the top directory')
    return sorted(missing)


def rename_directory(rng, builder):
    """
    Move a whole directory to another name, maybe into another directory.

    :param rng: The run's :class:`random.Random`.
    :param builder: The tree's :class:`support.differential.TreeBuilder`.
    :returns: What was done (a string), or :data:`None`.
    """
    directories = builder.of_kind('directory')
    if not directories:
        return None
    moved = rng.choice(directories)
    parent = rng.choice([directory for directory in builder.directories()
                         if directory != moved and not directory.startswith(moved + b'/')])
    name = builder.names.any(b'm', builder.path(parent))
    destination = builder.join(parent, name)
    os.rename(builder.path(moved), builder.path(destination))
    return 'moved the directory %r to %r' % (moved, destination)


class SendPlanSeed(object):

    """One randomised check of the send plan on a mounted btrfs (see the module's documentation)."""

    def __init__(self, seed, filesystem, changes=None, excludes=False):
        """
        Prepare a check.

        :param seed: The seed of its :class:`random.Random`.
        :param filesystem: A mounted btrfs :class:`support.loop_filesystems.MountedFilesystem`.
        :param changes: How many random changes (default: 1 to 40).
        :param excludes: :data:`True` to give the run random exclude patterns
                         (see :func:`support.differential.choose_excludes()`).
        """
        self.seed = seed
        self.rng = random.Random(seed)
        self.filesystem = filesystem
        self.changes = changes or self.rng.randint(1, 40)
        self.with_excludes = excludes
        self.excludes = []
        self.top = filesystem.mount_point / ('seed-%d' % seed)
        self.log = []

    def path(self, name):
        """
        Give a pathname of the check in the namespace.

        :param name: ``source``, ``old``, ``new`` or ``latest``.
        :returns: A path.
        """
        return self.top / name

    def view(self, name):
        """
        Give a pathname of the check for this process (see :meth:`.MountedFilesystem.view`).

        :param name: See :meth:`path()`.
        :returns: A string.
        """
        return self.filesystem.view(self.path(name))

    def run(self):
        """
        Build, snapshot, change, snapshot, plan, compare and apply.

        :returns: A list of problems (strings), empty when the plan was right.
        """
        from support.differential import Mutator, TreeBuilder, choose_excludes
        self.filesystem.run('mkdir', self.top)
        self.filesystem.run('btrfs', '-q', 'subvolume', 'create', self.path('source'))
        # The random tree goes one level down: the subvolume's own top directory can't be made anew.
        builder = TreeBuilder(self.rng, os.path.join(self.view('source'), 'tree'))
        self.log.extend(builder.build())
        patterns = []
        while self.with_excludes and not patterns:
            patterns = choose_excludes(self.rng, builder, choose_excludes(self.rng, builder, []))
        # The patterns are the tree's own: the top of the tree is one level down.
        self.excludes = ['--exclude=%s' % ('/tree' + pattern if pattern.startswith('/') else pattern)
                         for pattern in patterns]
        self.log.extend(self.excludes)
        self.snapshot('old')
        self.filesystem.run('rsync', *(COPY_OPTIONS + tuple(self.excludes) + ('%s/' % self.path('old'),
                                                                              '%s/' % self.path('latest'))))
        mutator = Mutator(builder)
        self.log.extend(mutator.mutate(self.changes))
        for _ in range(self.rng.randint(0, 2)):
            self.log.append(rename_directory(self.rng, builder))
        builder.settle_directories(changed_only=True)
        self.snapshot('new')
        send = plan_in_namespace(self.filesystem, self.path('old'), self.path('new'), *self.excludes)
        rsync = rsync_plan(self.filesystem, self.path('new'), self.path('latest'), *self.excludes)
        problems = ['the send plan misses %s' % name for name in uncovered_names(send, rsync)]
        apply_plan(self.filesystem, send, self.path('new'), self.path('latest'),
                   *[option.split('=', 1)[1] for option in self.excludes])
        problems.extend('after the apply, rsync would still change %s' % line for line in
                        remaining_differences(self.filesystem, self.path('new'), self.path('latest'), *self.excludes))
        return problems

    def snapshot(self, name):
        """
        Take a read-only snapshot of the source.

        :param name: ``old`` or ``new``.
        """
        self.filesystem.run('btrfs', '-q', 'subvolume', 'snapshot', '-r', self.path('source'), self.path(name))


def main(arguments=None):
    """
    Make a send plan and write it to standard output (see :func:`encode_plan()`).

    :param arguments: ``OLD NEW [FILTER-OPTION ...]`` (strings).
    :returns: The exit code: 0, or :data:`UNAVAILABLE`.
    """
    arguments = sys.argv[1:] if arguments is None else arguments
    try:
        plan = plan_from_snapshots(LocalContext(), arguments[0], arguments[1], arguments[2:])
    except SendPlanUnavailable as unavailable:
        sys.stderr.write(unavailable.reason + '\n')
        return UNAVAILABLE
    sys.stdout.buffer.write(encode_plan(plan))
    return 0


if __name__ == '__main__':
    sys.exit(main())
