"""
A real unprivileged user for the tests: commands run as ``nobody`` with ``setpriv``, in a directory she can reach.

The tests run as root, and their own directories (pytest's ``tmp_path``)
are closed to other users; :func:`shared_directory()` gives a directory on
``/dev/shm`` that ``nobody`` (:data:`NOBODY`) can enter, and
:func:`run_as_nobody()` runs shell code there as her, with no supplementary
groups, as a user of the backed-up system would.

Whether she may use sudo is up to the test: :func:`with_sudoers()` runs a
command in a private mount namespace whose ``/etc/sudoers.d`` holds only a
drop-in of the test's (:func:`write_sudoers_drop_in()`), which lets her, or
no one, become root without a password; the host's sudoers files stay as
they are.
"""

import contextlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile

from support.servers import find_program

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


SUDOERS_DROP_IN = 'rsync-system-backup-test'
"""The name of a test's sudoers drop-in (no dot, or sudo would skip it)."""

SUDOERS_MOUNT = '''
set -eu
mount -t tmpfs -o mode=755 rsb-sudoers /etc/sudoers.d
cp -p -- "$1" /etc/sudoers.d/
shift
exec "$@"
'''
"""Shell code that puts a tmpfs with one drop-in (``$1``) on ``/etc/sudoers.d``, then runs the command after it."""


def write_sudoers_drop_in(directory, rules=(), defaults=()):
    """
    Write a sudoers drop-in, checked with ``visudo``.

    :param directory: Where to write it (a string or path; its name is :data:`SUDOERS_DROP_IN`).
    :param rules: User specifications (strings, such as ``'backup ALL=(root) NOPASSWD: ALL'``).
    :param defaults: ``Defaults`` settings (strings, such as ``'!syslog'``).
    :returns: Its pathname (a string).
    """
    pathname = os.path.join(str(directory), SUDOERS_DROP_IN)
    lines = ['Defaults %s' % setting for setting in defaults] + list(rules)
    with open(pathname, 'w') as handle:
        handle.write(''.join(line + '\n' for line in lines))
    os.chmod(pathname, 0o440)
    subprocess.run([find_program('visudo', 'sudo'), '-c', '-q', '-f', pathname], check=True)
    return pathname


def with_sudoers(command, directory, sudo=False):
    """
    Build the command line that runs a command where sudo knows only a test's rules.

    :param command: The command (a list of strings or paths), such as one that starts with :data:`AS_NOBODY`.
    :param directory: A directory of the test's, for the drop-in and sudo's
                      timestamps (a string or path; it must be root's and
                      closed to others, as sudo wants).
    :param sudo: :data:`True` to let :data:`NOBODY` run anything as root
                 without a password, a program's pathname to let her run
                 that one alone so, or :data:`False` to let no one in
                 through ``/etc/sudoers.d``.
    :returns: A list of strings: ``unshare`` with a private mount
              namespace whose ``/etc/sudoers.d`` holds only the drop-in,
              which also keeps sudo's timestamps and messages off the host
              (no system log, no mail).
    """
    rules = ['%s ALL=(root) NOPASSWD: %s' % (pwd.getpwuid(NOBODY[0]).pw_name, 'ALL' if sudo is True else sudo)]
    drop_in = write_sudoers_drop_in(directory, rules=rules if sudo else [], defaults=[
        'timestampdir=%s' % os.path.join(str(directory), 'sudo-timestamps'),
        '!syslog', '!mail_badpass', '!mail_no_user', '!lecture',
    ])
    return ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', SUDOERS_MOUNT, 'sudoers',
            drop_in] + [str(argument) for argument in command]


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
