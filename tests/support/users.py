"""
A real unprivileged user for the tests: commands run as ``nobody`` with ``setpriv``, in a directory she can reach.

The tests run as root, and their own directories (pytest's ``tmp_path``)
are closed to other users; :func:`shared_directory()` gives a directory on
``/dev/shm`` that ``nobody`` (:data:`NOBODY`) can enter, and
:func:`run_as_nobody()` runs shell code there as her, with no supplementary
groups, as a user of the backed-up system would.
"""

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile

NOBODY = (65534, 65534)
"""The user and group id of ``nobody`` (a tuple of integers)."""

AS_NOBODY = ('setpriv', '--reuid=%i' % NOBODY[0], '--regid=%i' % NOBODY[1], '--clear-groups')
"""The prefix of a command that runs as :data:`NOBODY`."""


@contextlib.contextmanager
def shared_directory(prefix='rsb-shared-'):
    """
    Have a directory on tmpfs that an unprivileged user can reach, for the duration of a ``with`` block.

    :param prefix: The start of its name (a string).
    :returns: A context manager that gives its pathname (a string). The
              directory (mode 0755, owned by root) and everything in it,
              also what the user closed, are removed when the block ends.
    """
    directory = tempfile.mkdtemp(prefix=prefix, dir='/dev/shm')
    os.chmod(directory, 0o755)
    try:
        yield directory
    finally:
        subprocess.run(['chmod', '-R', 'u+rwx', directory], check=False, stdin=subprocess.DEVNULL,
                       capture_output=True)
        shutil.rmtree(directory)


def run_as_nobody(script, *arguments, cwd=None, check=True):
    """
    Run shell code as :data:`NOBODY`.

    :param script: The shell code (a string; ``set -eu`` is put first).
    :param arguments: Its positional parameters (strings or paths).
    :param cwd: Its working directory (a string or path), or :data:`None`.
    :param check: :data:`True` to fail the test when it exits with another code than 0.
    :returns: A :class:`subprocess.CompletedProcess` with text output.
    """
    command = list(AS_NOBODY) + ['sh', '-c', 'set -eu\n' + script, 'nobody'] + [str(a) for a in arguments]
    result = subprocess.run(command, cwd=None if cwd is None else str(cwd), stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=120)
    if check:
        assert result.returncode == 0, result
    return result


def for_nobody(environment):
    """
    Fit a command's environment for a program that runs as :data:`NOBODY`.

    :param environment: The environment (a dict, see
                        :func:`support.cli.command_environment()`).
    :returns: A copy without the variables that make a Python program
              measure its coverage: she can't write the data files into the
              project's folder, and the failure to do so would end her run
              with a traceback.
    """
    return {name: value for name, value in environment.items() if not name.startswith('COVERAGE_PROCESS_')}


def python_runs_as_nobody():
    """
    Check whether this Python (and the package) can be run by :data:`NOBODY`.

    :returns: :data:`True` when ``import rsync_system_backup`` works as her
              (pyenv's shared-library builds, say, load libpython from below
              ``/root``, which is closed to others).
    """
    command = list(AS_NOBODY) + [sys.executable, '-c', 'import rsync_system_backup']
    return subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True).returncode == 0
