"""
The builds of rsync-system-backup that a benchmark measures, and how to run them.

A :class:`Program` is a command line prefix: an installed ``rsync-system-backup``
script or ``python -m rsync_system_backup``. When the program is Python, it
runs under :mod:`peak_rss` so that the peak resident set size of its own
process is recorded too.
"""

import os
import shutil
import subprocess
import sys

BENCHMARKS_DIRECTORY = os.path.dirname(os.path.abspath(__file__))
"""The directory holding the benchmarks."""

PEAK_RSS_SCRIPT = os.path.join(BENCHMARKS_DIRECTORY, 'peak_rss.py')
"""The wrapper that records a Python program's peak resident set size."""

PROGRAM_NAME = 'rsync-system-backup'
"""The name of the installed command."""


class Program(object):

    """One build of rsync-system-backup."""

    def __init__(self, key, label, command, interpreter=None):
        """
        Describe a build.

        :param key: A short name for JSON (a string, ``'this'`` or ``'compare'``).
        :param label: A name for the table (a string).
        :param command: The command line prefix that runs it (a list of strings).
        :param interpreter: The Python interpreter of a Python script (a list
                            of strings, :data:`None` for ``python -m`` or a
                            program that isn't Python).
        """
        self.key = key
        self.label = label
        self.command = command
        self.interpreter = interpreter
        self.cached_usage = None

    @classmethod
    def from_executable(cls, key, label, pathname):
        """
        Describe a build by its installed command.

        :param key: See :class:`Program`.
        :param label: See :class:`Program`.
        :param pathname: The ``rsync-system-backup`` executable (a string).
        :returns: A :class:`Program`.
        """
        pathname = os.path.abspath(pathname)
        return cls(key, label, [pathname], interpreter=python_interpreter(pathname))

    @property
    def measures_memory(self):
        """:data:`True` when :meth:`argv()` can record the peak resident set size."""
        return self.interpreter is not None or self.command[1:2] == ['-m']

    @property
    def usage(self):
        """The build's ``--help`` text (a string; it runs once, the first time this is asked for)."""
        if self.cached_usage is None:
            self.cached_usage = subprocess.run(self.command + ['--help'], stdin=subprocess.DEVNULL,
                                               stdout=subprocess.PIPE,
                                               stderr=subprocess.DEVNULL).stdout.decode('utf-8', 'replace')
        return self.cached_usage

    @property
    def flow_options(self):
        """
        The options a build runs with (a list of strings): none, so the headline is what a user gets by default.

        :class:`MethodProgram` adds rows for other snapshot methods (``run.py --methods``).
        """
        return []

    def argv(self, arguments, rss_report=None):
        """
        Build the command line that runs this build.

        :param arguments: The arguments for rsync-system-backup (a list of strings).
        :param rss_report: A file to write the peak resident set size to (a
                           string), or :data:`None` to run the program directly.
        :returns: A list of strings.
        """
        if rss_report is None or not self.measures_memory:
            return self.command + arguments
        if self.interpreter is not None:
            return self.interpreter + [PEAK_RSS_SCRIPT, rss_report] + self.command + arguments
        return [self.command[0], PEAK_RSS_SCRIPT, rss_report] + self.command[1:] + arguments


def this_build():
    """
    Describe the build that the benchmark belongs to.

    :returns: A :class:`Program` for the ``rsync-system-backup`` command next
              to this Python interpreter, or ``python -m rsync_system_backup``
              when there is none.
    """
    from rsync_system_backup import __version__
    label = 'this build (%s)' % __version__
    installed = shutil.which(PROGRAM_NAME, path=os.path.dirname(sys.executable))
    if installed:
        return Program.from_executable('this', label, installed)
    return Program('this', label, [sys.executable, '-m', 'rsync_system_backup'])


def python_interpreter(pathname):
    """
    Read the interpreter of a Python script from its ``#!`` line.

    :param pathname: The script (a string).
    :returns: The interpreter's command line (a list of strings), or
              :data:`None` when the file isn't a Python script.
    """
    try:
        with open(pathname, 'rb') as handle:
            first_line = handle.readline(1024).decode('utf-8', 'replace')
    except OSError:
        return None
    if first_line.startswith('#!') and 'python' in first_line:
        return first_line[2:].split()
    return None


class MethodProgram(Program):

    """This build with a snapshot method of its choice instead of the default (``run.py --methods``)."""

    def __init__(self, program, method):
        """
        Describe the build with a snapshot method.

        :param program: The :class:`Program` of this build.
        :param method: A ``--snapshot-method`` value (a string; ``auto`` is the default).
        """
        super(MethodProgram, self).__init__('%s-%s' % (program.key, method), '%s, %s' % (program.label, method),
                                            program.command, interpreter=program.interpreter)
        self.method = method

    @property
    def flow_options(self):
        """The ``--snapshot-method`` option (a list of strings)."""
        return ['--snapshot-method=%s' % self.method]
