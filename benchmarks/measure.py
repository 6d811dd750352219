"""
Timed runs of one command, and what they measured.

:func:`run_timed()` runs a command line to completion and returns a
:class:`Measurement`: the wall time, the CPU time of all its processes
(which a busy machine disturbs less than the wall time), the peak resident
set size of the program's own process (when it ran under :mod:`peak_rss`)
and the number of SSH logins it caused (when it used the loopback SSH
server).
"""

import os
import resource
import subprocess
import time


class BenchmarkError(Exception):

    """Raised when a measured command fails or leaves an unexpected result."""


class Measurement(object):

    """What one run of a command measured."""

    def __init__(self, seconds, cpu_seconds, peak_rss_kib=None, ssh_connections=None):
        """
        Record a run.

        :param seconds: The wall time (a float).
        :param cpu_seconds: The user and system CPU time of the command and
                            every process it waited for (a float).
        :param peak_rss_kib: The peak resident set size of the program's own
                             process in KiB (an integer), or :data:`None`.
        :param ssh_connections: The number of SSH logins (an integer), or :data:`None`.
        """
        self.seconds = seconds
        self.cpu_seconds = cpu_seconds
        self.peak_rss_kib = peak_rss_kib
        self.ssh_connections = ssh_connections


def run_timed(argv, environment, rss_report=None, count_connections=None):
    """
    Run a command and measure it.

    :param argv: The command line (a list of strings).
    :param environment: The environment variables (a dict).
    :param rss_report: The file that :mod:`peak_rss` writes (a string), or :data:`None`.
    :param count_connections: A function that returns the number of SSH
                              logins so far, or :data:`None`.
    :returns: A :class:`Measurement`.
    :raises: :exc:`BenchmarkError` when the command exits with a nonzero code.
    """
    if rss_report and os.path.exists(rss_report):
        os.unlink(rss_report)
    before = count_connections() if count_connections else None
    cpu_before = children_cpu_seconds()
    started = time.perf_counter()
    process = subprocess.run(argv, env=environment, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - started
    cpu_seconds = children_cpu_seconds() - cpu_before
    if process.returncode != 0:
        raise BenchmarkError("%s exited with code %i:\n%s%s" % (
            ' '.join(argv), process.returncode, process.stdout.decode('utf-8', 'replace'),
            process.stderr.decode('utf-8', 'replace')))
    return Measurement(seconds, cpu_seconds,
                       peak_rss_kib=read_peak_rss(rss_report) if rss_report else None,
                       ssh_connections=count_connections() - before if count_connections else None)


def children_cpu_seconds():
    """The user and system CPU time of the child processes that this process waited for so far (a float)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def read_peak_rss(report):
    """
    Read the file that :mod:`peak_rss` wrote.

    :param report: Its pathname (a string).
    :returns: The peak resident set size in KiB (an integer), or :data:`None` when the file is missing.
    """
    try:
        with open(report) as handle:
            return int(handle.read())
    except (OSError, ValueError):
        return None
