"""
Run a Python program in this process and report its peak resident set size.

Usage::

    python peak_rss.py REPORT SCRIPT [ARGUMENT...]
    python peak_rss.py REPORT -m MODULE [ARGUMENT...]

The program runs as if started directly (``sys.argv``, ``__main__``, exit
code). When it exits, the peak resident set size of this process, in KiB,
is written to the file REPORT. Only the Python process counts: rsync, cp and
the other commands it starts have processes of their own.

The peak is ``VmHWM`` from ``/proc/self/status``, which belongs to this
program's memory alone. (``getrusage()``'s ``ru_maxrss`` is no good here:
Linux carries it over from the process that forked this one, so it would
report the benchmark's own size.)
"""

import atexit
import os
import runpy
import sys


def peak_rss_kib():
    """
    Read the peak resident set size of this process.

    :returns: KiB (an integer).
    """
    with open('/proc/self/status') as handle:
        for line in handle:
            if line.startswith('VmHWM:'):
                return int(line.split()[1])
    raise RuntimeError("/proc/self/status has no VmHWM line")


def write_peak_rss(report):
    """
    Write the peak resident set size of this process to a file.

    :param report: The file's pathname (a string).
    """
    with open(report, 'w') as handle:
        handle.write('%d\n' % peak_rss_kib())


def main():
    """Run the program named on the command line (see the module documentation)."""
    report = sys.argv[1]
    atexit.register(write_peak_rss, report)
    if sys.argv[2] == '-m':
        module = sys.argv[3]
        sys.argv = [module] + sys.argv[4:]
        sys.path[0] = os.getcwd()
        runpy.run_module(module, run_name='__main__', alter_sys=True)
    else:
        script = sys.argv[2]
        sys.argv = sys.argv[2:]
        sys.path[0] = os.path.dirname(os.path.abspath(script))
        runpy.run_path(script, run_name='__main__')


if __name__ == '__main__':
    main()
