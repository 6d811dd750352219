#!/usr/bin/env python3
"""
Measure what rsync-system-backup adds to the work of rsync, cp and rm.

Usage: python benchmarks/run.py [OPTIONS]

Generates a deterministic source tree (see tree.py) in a work directory on
tmpfs and measures, in each of several rounds, the bare commands (the floor)
and rsync-system-backup doing the same work, on destinations of their own:
a first full backup, an incremental backup after about 1% of the files
changed, a snapshot alone, a rotation that expires 200 snapshots, --help
(against python -c pass), and the backup cases again over SSH to a loopback
sshd (with the number of SSH connections each run opens). The order of the
participants changes from round to round. Ratios are taken round by round
against the floor of the same round, for the wall time and for the CPU time
of all processes (which other load on the machine disturbs less); the table
shows medians. Each build runs as a user gets it by default (this build's
auto snapshot method: safe-hardlink on tmpfs); --methods adds rows for this
build with other snapshot methods (hardlink is the floor's own flow: rsync
updates latest in place, cp -al snapshots it).

Options:
  --files N           the number of files in the source tree (default 100000)
  --rounds N          the number of rounds (default 5)
  --rotation-files N  the number of files in each snapshot that rotation
                      removes (default: a twentieth of --files, at least 10)
  --seed N            picks the tree (default 1)
  --compare EXE       also measure another build, for example version 1.1's
                      rsync-system-backup command, in the same rounds
  --methods NAMES     also measure this build with each of these snapshot
                      methods (comma-separated --snapshot-method values, for
                      example hardlink,link-dest), in the same rounds
  --work-dir DIR      where to create the temporary work directory
                      (default /dev/shm, a tmpfs); it is removed at the end
  --skip-ssh          leave out the cases over SSH (they need root, sshd and unshare)
  --json FILE         also write the results to FILE as JSON
  --case NAME         measure only the case NAME (its name in the JSON:
                      full, incremental, incremental-manifests, snapshot,
                      rotation, help; locally and over SSH), or only its
                      case over SSH (ssh-NAME, its name in the JSON then);
                      can be repeated
"""

import argparse
import os
import shutil
import sys
import tempfile

from cases import FLOOR, LOCAL_CASES, SSH_CASES
from loopback_ssh import LoopbackSSH
from programs import MethodProgram, Program, this_build
from report import Results, format_time
from transports import LocalTransport, SSHTransport
from tree import TreePlan

DEFAULT_WORK_PARENT = '/dev/shm'
"""Where the work directory goes by default (tmpfs, so the disk doesn't set the pace)."""

UNWANTED_VARIABLES = ('RSYNC_MODULE_PATH', 'RSYNC_EXIT_STATUS', 'RSYNC_PASSWORD', 'RSYNC_RSH',
                      'PYTHONDONTWRITEBYTECODE')
"""
Environment variables that the measured commands don't get: the ones that
change what rsync-system-backup or rsync do, and ``PYTHONDONTWRITEBYTECODE``,
so that every build's modules are byte-compiled once and then loaded from
the cache, as an installed package's are (without it, a build whose modules
have no cached byte code would compile them on every run).
"""


class Bench(object):

    """The shared material of a benchmark run: the work directory, the trees and the environment."""

    def __init__(self, work_directory, files, rotation_files, seed):
        """
        Plan the trees.

        :param work_directory: The directory to work in (a string, which exists).
        :param files: The number of files in the source tree.
        :param rotation_files: The number of files in each snapshot that rotation removes.
        :param seed: Picks the trees (an integer).
        """
        self.work_directory = work_directory
        self.plan = TreePlan(files, seed=seed)
        self.sample_plan = TreePlan(rotation_files, seed=seed + 1)
        self.source = os.path.join(work_directory, 'source')
        self.sample = os.path.join(work_directory, 'sample')
        self.rss_report = os.path.join(work_directory, 'peak-rss')
        self.mutations = 0
        self.environment = dict(os.environ, COLOREDLOGS_SYSLOG='false')
        for name in UNWANTED_VARIABLES:
            self.environment.pop(name, None)

    def create_trees(self):
        """Create the source tree and the rotation sample."""
        self.plan.create(self.source)
        self.sample_plan.create(self.sample)

    def mutate_source(self):
        """Change about 1% of the source's files (a new change each time)."""
        self.mutations += 1
        self.plan.mutate(self.source, self.mutations)


def parse_arguments(arguments):
    """
    Parse the command line.

    :param arguments: The arguments (a list of strings).
    :returns: An :class:`argparse.Namespace`.
    """
    parser = argparse.ArgumentParser(description="Measure what rsync-system-backup adds to rsync, cp and rm.")
    parser.add_argument('--files', type=positive, default=100000, help="files in the source tree (default 100000)")
    parser.add_argument('--rounds', type=positive, default=5, help="rounds (default 5)")
    parser.add_argument('--rotation-files', type=positive, help="files in each snapshot that rotation removes")
    parser.add_argument('--seed', type=int, default=1, help="picks the tree (default 1)")
    parser.add_argument('--compare', metavar='EXE', help="another rsync-system-backup command to measure")
    parser.add_argument('--methods', metavar='NAMES', help="snapshot methods to measure this build with too")
    parser.add_argument('--work-dir', metavar='DIR', help="where to create the work directory (default /dev/shm)")
    parser.add_argument('--skip-ssh', action='store_true', help="leave out the cases over SSH")
    parser.add_argument('--json', metavar='FILE', help="write the results to FILE as JSON")
    parser.add_argument('--case', metavar='NAME', action='append',
                        help="measure only this case (a name in the JSON, such as incremental, locally and over "
                             "SSH, or ssh-incremental for the SSH case alone; can be repeated)")
    return parser.parse_args(arguments)


def positive(value):
    """
    Parse a whole number of 1 or more.

    :param value: A string.
    :returns: An integer.
    :raises: :exc:`argparse.ArgumentTypeError` for anything else.
    """
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError("%r is not a whole number of 1 or more" % value)
    return int(value)


def run_case(case, participants, rounds, results):
    """
    Measure one case: set up, run every participant in every round (in a rotating order), tear down.

    :param case: A :class:`.Case`.
    :param participants: :data:`.FLOOR` and the :class:`.Program` objects.
    :param rounds: The number of rounds.
    :param results: The :class:`.Results` to record in.
    """
    record = results.start_case(case)
    progress("%s: setting up ..." % case.full_title)
    case.setup(participants)
    for number in range(1, rounds + 1):
        case.start_round(number)
        shift = (number - 1) % len(participants)
        measurements = {}
        for participant in participants[shift:] + participants[:shift]:
            case.prepare(participant)
            measurements[participant.key] = case.measure(participant)
            case.check(participant)
            case.finish(participant)
        record.add_round(measurements)
        progress("%s: round %i/%i: %s" % (case.full_title, number, rounds, ', '.join(
            '%s %s' % (participant.key, format_time(measurements[participant.key].seconds))
            for participant in participants)))
    case.teardown()


def progress(message):
    """
    Report progress on standard error.

    :param message: A string.
    """
    sys.stderr.write(message + '\n')
    sys.stderr.flush()


def main(arguments=None):
    """
    Run the benchmark (see the module documentation).

    :param arguments: The command line arguments (defaults to ``sys.argv[1:]``).
    """
    arguments = sys.argv[1:] if arguments is None else arguments
    options = parse_arguments(arguments)
    rotation_files = options.rotation_files or max(10, options.files // 20)
    parent = options.work_dir or (DEFAULT_WORK_PARENT if os.path.isdir(DEFAULT_WORK_PARENT) else None)
    work_directory = tempfile.mkdtemp(prefix='rsync-system-backup-benchmark-', dir=parent)
    try:
        bench = Bench(work_directory, options.files, rotation_files, options.seed)
        programs = [this_build()]
        programs.extend(MethodProgram(programs[0], name) for name in (options.methods or '').split(',') if name)
        if options.compare:
            programs.append(Program.from_executable('compare', 'compare', options.compare))
        settings = dict(files=options.files, rounds=options.rounds, rotation_files=rotation_files, seed=options.seed,
                        work_directory=work_directory, python=sys.version.split()[0], cpus=os.cpu_count(),
                        ssh=not options.skip_ssh, command=['benchmarks/run.py'] + arguments)
        results = Results(settings, bench.plan.statistics.as_dict(), programs)
        progress("Creating the source tree (%i files) in %s ..." % (options.files, work_directory))
        bench.create_trees()
        participants = [FLOOR] + programs
        for case_class in LOCAL_CASES:
            if not options.case or case_class.name in options.case:
                run_case(case_class(bench, LocalTransport()), participants, options.rounds, results)
        # A case's name takes it locally and over SSH; its JSON name over SSH (ssh-NAME) takes that one alone.
        ssh_cases = [case_class for case_class in SSH_CASES if not options.case or case_class.name in options.case
                     or SSHTransport.key_prefix + case_class.name in options.case]
        if ssh_cases and not options.skip_ssh:
            with LoopbackSSH(os.path.join(work_directory, 'sshd')) as ssh:
                for case_class in ssh_cases:
                    run_case(case_class(bench, SSHTransport(ssh)), participants, options.rounds, results)
    finally:
        shutil.rmtree(work_directory, ignore_errors=True)
    sys.stdout.write(results.table())
    if options.json:
        results.save(options.json)


if __name__ == '__main__':
    main()
