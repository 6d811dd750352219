"""
The benchmark's results: collected round by round, summarised, printed as a table and saved as JSON.

Each case records, per round, one :class:`.Measurement` for the floor and for
each build. A build's ratio is its time divided by the floor's time *in the
same round*, so slow moments of a busy machine hit both sides of a ratio;
the table shows the medians of the times and of the ratios.
"""

import json
import statistics

from cases import FLOOR


class CaseResults(object):

    """The measurements of one case."""

    def __init__(self, case):
        """
        Start recording a case.

        :param case: The :class:`.Case`.
        """
        self.key = case.key
        self.title = case.full_title
        self.floor_title = case.floor_title
        self.rounds = []

    def add_round(self, measurements):
        """
        Record a round.

        :param measurements: A dict from participant key to :class:`.Measurement`.
        """
        self.rounds.append(measurements)

    def summarise(self, key):
        """
        Summarise a participant's measurements.

        :param key: The participant's key (``'floor'``, ``'this'`` or ``'compare'``).
        :returns: A dict for JSON: the wall and CPU times, their medians,
                  the ratios to the floor and their medians, and the peak
                  resident set sizes and SSH connection counts when they were
                  measured.
        """
        runs = [measurements[key] for measurements in self.rounds]
        summary = dict(seconds=[run.seconds for run in runs],
                       median_seconds=statistics.median(run.seconds for run in runs),
                       cpu_seconds=[run.cpu_seconds for run in runs],
                       median_cpu_seconds=statistics.median(run.cpu_seconds for run in runs))
        if key != FLOOR.key:
            floors = [measurements[FLOOR.key] for measurements in self.rounds]
            ratios = [run.seconds / floor.seconds for run, floor in zip(runs, floors)]
            cpu_ratios = [run.cpu_seconds / floor.cpu_seconds if floor.cpu_seconds else None
                          for run, floor in zip(runs, floors)]
            summary.update(ratios=ratios, median_ratio=statistics.median(ratios), cpu_ratios=cpu_ratios,
                           median_cpu_ratio=median_or_none(cpu_ratios))
        rss = [run.peak_rss_kib for run in runs if run.peak_rss_kib is not None]
        if rss:
            summary.update(peak_rss_kib=rss)
        connections = [run.ssh_connections for run in runs if run.ssh_connections is not None]
        if connections:
            summary.update(ssh_connections=connections)
        return summary


class Results(object):

    """Everything a benchmark run measured, with its settings."""

    def __init__(self, settings, tree, programs):
        """
        Start recording.

        :param settings: The benchmark's settings (a dict for JSON).
        :param tree: The source tree's statistics (a dict for JSON).
        :param programs: The measured builds (:class:`.Program` objects).
        """
        self.settings = settings
        self.tree = tree
        self.programs = programs
        self.cases = []

    def start_case(self, case):
        """
        Start recording a case.

        :param case: The :class:`.Case`.
        :returns: Its :class:`CaseResults`.
        """
        results = CaseResults(case)
        self.cases.append(results)
        return results

    def participant_keys(self):
        """The keys of the floor and the builds, in table order (a list of strings)."""
        return [FLOOR.key] + [program.key for program in self.programs]

    def peak_rss_kib(self, key):
        """
        Find the largest peak resident set size of a build's own process over all cases.

        :param key: The build's key.
        :returns: KiB (an integer), or :data:`None` when it wasn't measured.
        """
        values = [value for case in self.cases for value in case.summarise(key).get('peak_rss_kib', [])]
        return max(values) if values else None

    def as_dict(self):
        """Everything, as a dict for JSON."""
        return dict(
            settings=self.settings,
            tree=self.tree,
            programs={program.key: dict(label=program.label, command=program.command) for program in self.programs},
            cases={case.key: dict(title=case.title, floor=case.floor_title,
                                  results={key: case.summarise(key) for key in self.participant_keys()})
                   for case in self.cases},
            peak_rss_kib={program.key: self.peak_rss_kib(program.key) for program in self.programs},
        )

    def save(self, pathname):
        """
        Write :meth:`as_dict()` to a JSON file.

        :param pathname: The file (a string).
        """
        with open(pathname, 'w') as handle:
            json.dump(self.as_dict(), handle, indent=2, sort_keys=True)
            handle.write('\n')

    def table(self):
        """
        Render the medians as a text table, with notes and the floors below it.

        :returns: A string.
        """
        with_ssh = any('ssh_connections' in case.summarise(FLOOR.key) for case in self.cases)
        header = ['case', 'floor'] + (['ssh'] if with_ssh else [])
        for program in self.programs:
            header.extend([program.label, 'x floor', 'cpu x'] + (['ssh'] if with_ssh else []))
        rows = [header]
        for case in self.cases:
            row = [case.title]
            for key in self.participant_keys():
                summary = case.summarise(key)
                row.append(format_time(summary['median_seconds']))
                if key != FLOOR.key:
                    row.append('%.2fx' % summary['median_ratio'])
                    row.append(format_ratio(summary['median_cpu_ratio']))
                if with_ssh:
                    row.append('%i' % max(summary['ssh_connections']) if 'ssh_connections' in summary else '')
            rows.append(row)
        rss_row = ['peak RSS of its own process', ''] + ([''] if with_ssh else [])
        for program in self.programs:
            rss_row.extend([format_size(self.peak_rss_kib(program.key)), '', ''] + ([''] if with_ssh else []))
        rows.append(rss_row)
        widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
        lines = ['  '.join(cell.ljust(width) if column == 0 else cell.rjust(width)
                           for column, (cell, width) in enumerate(zip(row, widths))).rstrip() for row in rows]
        lines.insert(1, '  '.join('-' * width for width in widths))
        floors = []
        for case in self.cases:
            line = '%s: %s' % (case.title.replace(' over SSH', ''), case.floor_title)
            if line not in floors:
                floors.append(line)
        notes = ['', 'Times and ratios are medians of %i rounds; a ratio is the time over the floor of the same round.'
                 % len(self.cases[0].rounds),
                 'x floor: wall time; cpu x: user + system CPU time of all processes (less disturbed by other load).']
        if with_ssh:
            notes.append('ssh: the SSH connections that one run opened (logins in the sshd log).')
        notes.extend('%s: %s' % (program.label, ' '.join(program.command)) for program in self.programs)
        notes.append('Floors (the bare commands, with the same options):')
        return '\n'.join(lines + notes + ['  ' + line for line in floors]) + '\n'


def median_or_none(values):
    """
    Take the median of the values that are known.

    :param values: Numbers or :data:`None` (a list).
    :returns: A number, or :data:`None` when no value is known.
    """
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None


def format_ratio(ratio):
    """
    Render a ratio.

    :param ratio: A number, or :data:`None`.
    :returns: For example ``1.02x``, or ``-`` when unknown.
    """
    return '-' if ratio is None else '%.2fx' % ratio


def format_time(seconds):
    """
    Render a duration.

    :param seconds: A float.
    :returns: Milliseconds below one second, else seconds (a string).
    """
    return '%.1f ms' % (seconds * 1000) if seconds < 1 else '%.2f s' % seconds


def format_size(kib):
    """
    Render a memory size.

    :param kib: KiB (an integer), or :data:`None`.
    :returns: MiB (a string), or ``'-'`` when unknown.
    """
    return '-' if kib is None else '%.1f MiB' % (kib / 1024.0)
