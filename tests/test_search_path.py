"""
Tests of ``processes/search_path.py``: the programs a command names are found on PATH and in the system directories.

The runs of the command under cron's ``PATH`` (with ``-c``, here and on an
SSH destination) are in ``test_unlock_and_mount.py``; these test the
pieces: the search path, this system's commands and the shell code that
SSH destinations run each command through.
"""

import subprocess

from rsync_system_backup.processes.search_path import REMOTE_SEARCH_SCRIPT, search_path
from rsync_system_backup.processes.sessions import create_local_context


def test_search_path_adds_the_missing_system_directories():
    """The directories that PATH lacks come after it, in their order; those it has stay where they are."""
    assert search_path('/usr/bin:/bin') == '/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin'
    assert search_path('/usr/sbin:/usr/bin') == '/usr/sbin:/usr/bin:/usr/local/sbin:/sbin'
    assert search_path('') == '/usr/local/sbin:/usr/sbin:/sbin'


def test_commands_of_this_system_search_the_system_directories(monkeypatch):
    """Under cron's PATH a command of this system (and what it starts) gets the system directories too."""
    monkeypatch.setenv('PATH', '/usr/bin:/bin')
    output = create_local_context().capture('sh', '-c', 'printf %s "$PATH"', shell=False, tty=False)
    assert output == '/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin'


def run_remote_script(*command, path='/usr/bin:/bin'):
    """Run a command through :data:`REMOTE_SEARCH_SCRIPT` with a real ``sh`` and a given PATH."""
    return subprocess.run(['sh', '-c', REMOTE_SEARCH_SCRIPT, command[0]] + list(command), env={'PATH': path},
                          stdin=subprocess.DEVNULL, capture_output=True, text=True)


def test_remote_script_adds_the_system_directories():
    """The shell code before each command on an SSH destination adds the directories that the login's PATH lacks."""
    result = run_remote_script('sh', '-c', 'printf %s "$PATH"', path='/usr/sbin:/usr/bin:/bin')
    assert (result.returncode, result.stdout, result.stderr) == (0, '/usr/sbin:/usr/bin:/bin:/usr/local/sbin:/sbin', '')


def test_remote_script_reports_a_missing_program():
    """A program found nowhere: one message with where it was looked for, and exit code 127."""
    result = run_remote_script('rsb-no-such-program', '--version')
    assert result.returncode == 127
    assert result.stderr == 'rsb-no-such-program not found (looked in /usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin)\n'
