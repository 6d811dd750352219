"""
What the benchmark measures: one class per case, each with its floor.

Every case runs its floor (the bare commands that do the same work) and each
build of rsync-system-backup on a destination of their own, prepared the same
way. A case names the floor's commands (:meth:`Case.floor_commands()`), the
arguments for rsync-system-backup (:meth:`Case.program_arguments()`), what to
prepare before a run and clean up after it (untimed), and how to check that
the run did its job.
"""

import datetime
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time

from measure import BenchmarkError, Measurement, run_timed
from programs import this_build
from rsync_system_backup.transfer.command import build_rsync_command
from rsync_system_backup.snapshots.naming import SNAPSHOT_NAME_FORMAT

LATEST = 'latest'
"""The name of the directory that the backups go to."""

HELP_REPEATS = 5
"""How often ``--help`` (and its floor) runs per round; the round's figure is the median."""

ROTATION_START = datetime.datetime(2020, 1, 1)
"""The time of the oldest snapshot that the rotation case creates."""

EXPIRED_SNAPSHOTS = 200
"""How many snapshots the rotation case expires."""


class Floor(object):

    """The participant that runs a case's bare commands."""

    key = 'floor'
    label = 'floor'


FLOOR = Floor()
"""The one :class:`Floor` participant."""


class Case(object):

    """A measured operation (see the module documentation); subclasses fill in the details."""

    name = ''
    """The case's name in JSON (a string; SSH cases get a prefix)."""

    title = ''
    """The case's name in the table (a string)."""

    floor_title = ''
    """What the floor runs (a string)."""

    repeats = 1
    """How often each participant runs per round (the median counts)."""

    measures_memory = True
    """:data:`True` to record the peak resident set size of rsync-system-backup's own process."""

    passes_flow_options = True
    """:data:`True` to give the builds their :attr:`.Program.flow_options` (a row's snapshot method; not --help)."""

    def __init__(self, bench, transport):
        """
        Prepare a case.

        :param bench: The :class:`.Bench` with the source tree and the settings.
        :param transport: A :class:`.LocalTransport` or :class:`.SSHTransport`.
        """
        self.bench = bench
        self.transport = transport

    @property
    def key(self):
        """The case's name in JSON, with the transport's prefix (a string)."""
        return self.transport.key_prefix + self.name

    @property
    def full_title(self):
        """The case's name in the table, with the transport's suffix (a string)."""
        return self.title + self.transport.title_suffix

    def directory(self, participant):
        """
        Give the directory that a participant works in (it holds ``latest`` and the snapshots).

        :param participant: :data:`FLOOR` or a :class:`.Program`.
        :returns: A pathname (a string).
        """
        return os.path.join(self.bench.work_directory, self.key, participant.key)

    def setup(self, participants):
        """
        Prepare the participants' directories before the first round (untimed).

        :param participants: :data:`FLOOR` and the :class:`.Program` objects.
        """

    def start_round(self, number):
        """
        Prepare a round (untimed).

        :param number: The round (1, 2, ...).
        """

    def prepare(self, participant):
        """
        Prepare one run of a participant (untimed).

        :param participant: :data:`FLOOR` or a :class:`.Program`.
        """

    def floor_commands(self, directory):
        """
        Give the bare commands that do this case's work.

        :param directory: The floor's directory (a string).
        :returns: A list of command lines (lists of strings).
        """
        raise NotImplementedError()

    def program_arguments(self, directory):
        """
        Give the arguments that make rsync-system-backup do this case's work.

        :param directory: The program's directory (a string).
        :returns: A list of strings.
        """
        raise NotImplementedError()

    def check(self, participant):
        """
        Check that a run did its job.

        :param participant: :data:`FLOOR` or a :class:`.Program`.
        :raises: :exc:`.BenchmarkError` when it didn't.
        """

    def finish(self, participant):
        """
        Clean up after one run of a participant (untimed).

        :param participant: :data:`FLOOR` or a :class:`.Program`.
        """

    def teardown(self):
        """Remove the case's directories."""
        shutil.rmtree(os.path.join(self.bench.work_directory, self.key), ignore_errors=True)

    def argv(self, participant):
        """
        Build the command line of one run.

        :param participant: :data:`FLOOR` or a :class:`.Program`.
        :returns: A list of strings.
        """
        directory = self.directory(participant)
        if participant is FLOOR:
            return self.transport.wrap(combine_commands(self.floor_commands(directory)))
        arguments = self.program_arguments(directory)
        if self.passes_flow_options:
            arguments = participant.flow_options + arguments
        return self.transport.wrap(participant.argv(arguments, self.rss_report(participant)))

    def rss_report(self, participant):
        """
        Give the file that records a run's peak resident set size.

        :param participant: :data:`FLOOR` or a :class:`.Program`.
        :returns: A pathname (a string), or :data:`None` when the run's memory isn't measured.
        """
        return self.bench.rss_report if self.measures_memory and participant is not FLOOR else None

    def measure(self, participant):
        """
        Run a participant :attr:`repeats` times.

        :param participant: :data:`FLOOR` or a :class:`.Program`.
        :returns: A :class:`.Measurement` (the median times of the repeats).
        :raises: :exc:`.BenchmarkError` when a run fails.
        """
        runs = [run_timed(self.argv(participant), self.bench.environment, self.rss_report(participant),
                          self.transport.count_connections) for _ in range(self.repeats)]
        rss = [run.peak_rss_kib for run in runs if run.peak_rss_kib is not None]
        return Measurement(statistics.median(run.seconds for run in runs),
                           statistics.median(run.cpu_seconds for run in runs),
                           peak_rss_kib=max(rss) if rss else None,
                           ssh_connections=runs[-1].ssh_connections)

    def latest(self, participant):
        """The pathname of a participant's ``latest`` directory (a string)."""
        return os.path.join(self.directory(participant), LATEST)

    def snapshot_names(self, participant):
        """
        List the snapshots in a participant's directory (every name but ``latest`` and hidden files).

        :param participant: :data:`FLOOR` or a :class:`.Program`.
        :returns: A sorted list of strings.
        """
        return sorted(name for name in os.listdir(self.directory(participant))
                      if name != LATEST and not name.startswith('.'))

    def check_backup(self, participant):
        """
        Check that ``latest`` holds what the source holds at the top and that there is one snapshot.

        :param participant: :data:`FLOOR` or a :class:`.Program`.
        :raises: :exc:`.BenchmarkError` when it doesn't.
        """
        self.check_latest(participant)
        self.check_one_snapshot(participant)

    def check_latest(self, participant):
        """
        Check that ``latest`` holds what the source holds at the top.

        :param participant: :data:`FLOOR` or a :class:`.Program`.
        :raises: :exc:`.BenchmarkError` when it doesn't.
        """
        expected = sorted(os.listdir(self.bench.source))
        if sorted(os.listdir(self.latest(participant))) != expected:
            raise BenchmarkError("%s: %s doesn't match the source." % (participant.label, self.latest(participant)))

    def check_one_snapshot(self, participant):
        """
        Check that a run left exactly one snapshot.

        :param participant: :data:`FLOOR` or a :class:`.Program`.
        :raises: :exc:`.BenchmarkError` when it didn't.
        """
        names = self.snapshot_names(participant)
        if len(names) != 1:
            raise BenchmarkError("%s: expected one snapshot in %s, found %r."
                                 % (participant.label, self.directory(participant), names))

    def backup_floor_commands(self, directory):
        """
        Give the bare commands of a backup: rsync with rsync-system-backup's options, then ``cp -al``.

        :param directory: The floor's directory (a string).
        :returns: A list of command lines.
        """
        latest = os.path.join(directory, LATEST)
        rsync = build_rsync_command(self.bench.source, self.transport.location(latest),
                                    extra_options=self.transport.rsync_options + ['--stats'])
        return [rsync, self.snapshot_command(directory)]

    def backup_arguments(self, directory):
        """
        Give the arguments of a default run of rsync-system-backup (backup, snapshot and rotation).

        :param directory: The program's directory (a string).
        :returns: A list of strings.
        """
        return ['--disable-notifications', self.bench.source, self.transport.location(os.path.join(directory, LATEST))]

    def snapshot_command(self, directory):
        """
        Give the bare command that snapshots ``latest``.

        :param directory: The directory that holds ``latest`` (a string).
        :returns: A command line (a list of strings).
        """
        moment = datetime.datetime.now()
        # Like the program, never reuse the name of a snapshot made in the same second (small trees are that quick).
        while os.path.exists(os.path.join(directory, moment.strftime(SNAPSHOT_NAME_FORMAT))):
            moment += datetime.timedelta(seconds=1)
        return self.transport.on_destination(['cp', '--archive', '--link', os.path.join(directory, LATEST),
                                              os.path.join(directory, moment.strftime(SNAPSHOT_NAME_FORMAT))])


class BackupCase(Case):

    """A default run (rsync, snapshot and rotation) against rsync plus ``cp -al``; subclasses set the starting point."""

    floor_title = 'rsync with the same options + cp -al'

    def floor_commands(self, directory):
        """rsync into ``latest``, then ``cp -al``."""
        return self.backup_floor_commands(directory)

    def program_arguments(self, directory):
        """A default run."""
        return self.backup_arguments(directory)

    def check(self, participant):
        """``latest`` matches the source and there is one snapshot."""
        self.check_backup(participant)


class FullBackupCase(BackupCase):

    """The first backup into an empty directory: rsync, snapshot and rotation."""

    name = 'full'
    title = 'first full backup'

    def prepare(self, participant):
        """Start from an empty directory."""
        directory = self.directory(participant)
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory)

    def finish(self, participant):
        """Remove the directory."""
        shutil.rmtree(self.directory(participant))


class IncrementalBackupCase(BackupCase):

    """
    A backup after about 1% of the source's files changed: rsync, snapshot and rotation.

    Each build runs as it does by default: this one records the snapshot's
    manifest (see :class:`ManifestCase` for its cost against ``--no-manifest``).
    """

    name = 'incremental'
    title = 'incremental backup'

    def setup(self, participants):
        """Give each participant a first backup (made by the participant itself) with its snapshot."""
        for participant in participants:
            os.makedirs(self.directory(participant))
            run_timed(self.base_backup_argv(participant), self.bench.environment)
        self.last_seconds = dict.fromkeys((participant.key for participant in participants), int(time.time()))

    def prepare(self, participant):
        """
        Wait (untimed) until the second in which the participant's last snapshot was made is over.

        Snapshot names have a resolution of one second, and the participants
        take turns in a rotating order, so one may run again less than a
        second after its last run: this build would then wait for the next
        second itself (up to 0.3 s more at 10,000 files, in some rounds and
        not others), and version 1.1 would copy into the snapshot of the same
        second. Backups aren't made twice a second in use.
        """
        while int(time.time()) <= self.last_seconds[participant.key]:
            time.sleep(0.02)

    def base_backup_argv(self, participant):
        """
        Build the command line of a participant's first backup.

        :param participant: :data:`FLOOR` or a :class:`.Program`.
        :returns: A list of strings.
        """
        directory = self.directory(participant)
        if participant is FLOOR:
            return self.transport.wrap(combine_commands(self.backup_floor_commands(directory)))
        return self.transport.wrap(participant.argv(participant.flow_options + self.backup_arguments(directory)))

    def start_round(self, number):
        """Change about 1% of the source's files."""
        self.bench.mutate_source()

    def check(self, participant):
        """
        ``latest`` matches the source and there is a new snapshot beside the one of the run before.

        Version 1.1 (the usual ``--compare`` build) keeps the oldest snapshot of
        each hour, so its rotation may remove the snapshot it just made: one
        snapshot is enough there.
        """
        self.check_latest(participant)
        expected = (1, 2) if participant is not FLOOR and participant.key == 'compare' else (2,)
        if len(self.snapshot_names(participant)) not in expected:
            raise BenchmarkError("%s: expected %s snapshots in %s, found %r."
                                 % (participant.label, ' or '.join(map(str, expected)), self.directory(participant),
                                    self.snapshot_names(participant)))

    def finish(self, participant):
        """
        Remove every snapshot but the newest, so the next round starts from a backup of this round.

        As in real use, the snapshot of the run before is there (and with
        it, for builds that record manifests, the manifest that the next
        one is built from).
        """
        self.last_seconds[participant.key] = int(time.time())
        directory = self.directory(participant)
        names = self.snapshot_names(participant)[:-1]
        if names:
            subprocess.check_call(['rm', '-rf', '--'] + [os.path.join(directory, name) for name in names])


class ManifestCase(IncrementalBackupCase):

    """
    An incremental backup with manifests against the same build with ``--no-manifest``.

    Here the floor is this build itself, so the ratio is what recording the
    manifest costs. Builds that record manifests by default run as they are
    (the headline incremental case measures the same run against rsync);
    older builds get ``--manifest``. As in real use, the previous backup's
    snapshot and its manifest are there: each run keeps the newest snapshot
    of the run before, so the manifest is built from the previous one, with
    about 1% of the files changed since.
    """

    name = 'incremental-manifests'
    title = 'incremental backup with manifests'
    floor_title = 'the same build with --no-manifest'

    def base_backup_argv(self, participant):
        """Build the command line of a participant's first backup (with a manifest, also for the floor)."""
        program = this_build() if participant is FLOOR else participant
        return self.transport.wrap(program.argv(program.flow_options + self.manifest_options(program)
                                                + self.backup_arguments(self.directory(participant))))

    def floor_commands(self, directory):
        """This build with ``--no-manifest``."""
        program = this_build()
        return [program.argv(program.flow_options + ['--no-manifest'] + self.backup_arguments(directory))]

    def program_arguments(self, directory):
        """A default run (``--manifest`` is added in :meth:`argv()` for the builds that need it)."""
        return self.backup_arguments(directory)

    def argv(self, participant):
        """Add ``--manifest`` for the builds that need it (see :meth:`Case.argv()`)."""
        if participant is FLOOR:
            return super(ManifestCase, self).argv(participant)
        arguments = participant.flow_options + self.manifest_options(participant) + self.program_arguments(
            self.directory(participant))
        return self.transport.wrap(participant.argv(arguments, self.rss_report(participant)))

    def manifest_options(self, program):
        """
        Give the option that turns manifests on, for the builds where they are off by default.

        :param program: A :class:`.Program`.
        :returns: ``['--manifest']`` for a build that has it but not
                  ``--no-manifest``, otherwise an empty list.
        """
        return ['--manifest'] if '--manifest' in program.usage and '--no-manifest' not in program.usage else []

    def records_manifests(self, program):
        """
        Tell whether a build records manifests with entries in this case.

        :param program: A :class:`.Program`.
        :returns: :data:`True` for the builds that know manifests.
        """
        return '--manifest' in program.usage

    def check(self, participant):
        """As for :class:`IncrementalBackupCase`, and the newest snapshot has a manifest unless it is the floor's."""
        super(ManifestCase, self).check(participant)
        newest = self.snapshot_names(participant)[-1]
        pathname = os.path.join(self.directory(participant), '.rsync-system-backup.manifests',
                                '%s.manifest.gz' % newest)
        # A manifest with entries is much larger than the header alone.
        full = os.path.exists(pathname) and os.path.getsize(pathname) > 1000
        if participant is not FLOOR and full != self.records_manifests(participant):
            raise BenchmarkError("%s: the manifest of %s is not the one the build records by default."
                                 % (participant.label, newest))


class SnapshotCase(IncrementalBackupCase):

    """
    A snapshot of an existing backup, nothing else.

    As in use, the run before left its snapshot: each participant's first
    backup keeps its snapshot, and each round keeps only the newest one (for
    a build that records manifests, the one whose manifest describes
    ``latest``, so the new snapshot's manifest is a copy of it).
    """

    name = 'snapshot'
    title = 'snapshot only'
    floor_title = 'cp -al'

    def start_round(self, number):
        """Nothing changes between rounds."""

    def floor_commands(self, directory):
        """``cp -al``."""
        return [self.snapshot_command(directory)]

    def program_arguments(self, directory):
        """``--snapshot``."""
        return ['--disable-notifications', '--snapshot', self.transport.location(os.path.join(directory, LATEST))]

    def check(self, participant):
        """There is a new snapshot beside the one of the run before."""
        names = self.snapshot_names(participant)
        if len(names) != 2:
            raise BenchmarkError("%s: expected two snapshots in %s, found %r."
                                 % (participant.label, self.directory(participant), names))


class RotationCase(Case):

    """
    Rotation that expires :data:`EXPIRED_SNAPSHOTS` snapshots.

    The snapshots are hard-link copies of a smaller sample tree (see
    :attr:`.Bench.sample`). Their times make the default rotation scheme keep
    exactly two (the oldest, and the newest an hour later) in both this build
    and version 1.1.
    """

    name = 'rotation'
    title = 'rotation of %d snapshots' % EXPIRED_SNAPSHOTS
    floor_title = 'one rm -rf'

    @property
    def snapshot_names_to_create(self):
        """The names of the snapshots that each run starts with, oldest first (a list of strings)."""
        moments = [ROTATION_START + datetime.timedelta(seconds=n) for n in range(EXPIRED_SNAPSHOTS + 1)]
        moments.append(ROTATION_START + datetime.timedelta(hours=1))
        return [moment.strftime(SNAPSHOT_NAME_FORMAT) for moment in moments]

    @property
    def kept_names(self):
        """The names of the snapshots that rotation keeps (a list of strings)."""
        names = self.snapshot_names_to_create
        return [names[0], names[-1]]

    def prepare(self, participant):
        """Create ``latest`` and the snapshots."""
        directory = self.directory(participant)
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(os.path.join(directory, LATEST))
        for name in self.snapshot_names_to_create:
            subprocess.check_call(['cp', '--archive', '--link', self.bench.sample, os.path.join(directory, name)])

    def floor_commands(self, directory):
        """One ``rm -rf`` of the expired snapshots."""
        kept = set(self.kept_names)
        doomed = [os.path.join(directory, name) for name in self.snapshot_names_to_create if name not in kept]
        return [self.transport.on_destination(['rm', '-rf', '--'] + doomed)]

    def program_arguments(self, directory):
        """``--rotate``."""
        return ['--disable-notifications', '--rotate', self.transport.location(os.path.join(directory, LATEST))]

    def check(self, participant):
        """Exactly the two expected snapshots are left."""
        names = self.snapshot_names(participant)
        if names != self.kept_names:
            raise BenchmarkError("%s: rotation left %i snapshots (%s ...), expected %r."
                                 % (participant.label, len(names), ', '.join(names[:3]), self.kept_names))

    def finish(self, participant):
        """Remove the directory."""
        shutil.rmtree(self.directory(participant))


class HelpCase(Case):

    """``rsync-system-backup --help``, against a Python interpreter that does nothing."""

    name = 'help'
    title = '--help'
    floor_title = 'python -c pass'
    repeats = HELP_REPEATS
    measures_memory = False
    passes_flow_options = False

    def floor_commands(self, directory):
        """``python -c pass``."""
        return [[sys.executable, '-c', 'pass']]

    def program_arguments(self, directory):
        """``--help``."""
        return ['--help']


LOCAL_CASES = (FullBackupCase, IncrementalBackupCase, ManifestCase, SnapshotCase, RotationCase, HelpCase)
"""The cases measured on this system, in order."""

SSH_CASES = (FullBackupCase, IncrementalBackupCase, ManifestCase, SnapshotCase, RotationCase)
"""The cases measured over SSH, in order."""


def combine_commands(commands):
    """
    Turn a list of commands into one command line.

    :param commands: A list of command lines (lists of strings).
    :returns: The only command line, or an ``sh -c`` command line that runs
              them one after the other and stops at the first failure.
    """
    if len(commands) == 1:
        return commands[0]
    return ['sh', '-c', ' && '.join(' '.join(shlex.quote(argument) for argument in command) for command in commands)]
