"""
Running the real command: its environment, in the foreground, in the background and on a terminal.

The fixtures ``run_cli`` and ``start_cli`` in ``conftest.py`` use these
functions with the test's ``fake_bin`` directory; the tests of remote
destinations run the command through :meth:`support.remote.ClientHome.run`.
"""

import errno
import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time


class CommandResult(object):

    """The outcome of running the command: exit code and output."""

    def __init__(self, returncode, stdout, stderr):
        """Store the exit code and the decoded output streams."""
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    @property
    def output(self):
        """Standard output and standard error together (a string)."""
        return self.stdout + self.stderr

    def __repr__(self):
        """Show everything, so a failing assertion explains itself."""
        return 'CommandResult(returncode=%r, stdout=%r, stderr=%r)' % (self.returncode, self.stdout, self.stderr)


def assert_failed(result, *messages):
    """
    Check that a run failed with one ``Aborting due to error`` line containing every message.

    :param result: A :class:`CommandResult` (or one of its subclasses).
    :param messages: Strings that the error line must contain.
    """
    assert result.returncode == 1, result
    errors = [line for line in result.stderr.splitlines() if 'Aborting due to error: ' in line]
    assert len(errors) == 1, result
    for message in messages:
        assert message in errors[0], result
    assert 'Traceback' not in result.stderr, result


def command_line(*arguments):
    """
    Build the command line of ``python -m rsync_system_backup ARGUMENTS``.

    :param arguments: The command line arguments (strings or paths).
    :returns: A list of strings.
    """
    return [sys.executable, '-m', 'rsync_system_backup'] + [str(a) for a in arguments]


def command_environment(fake_bin=None, **overrides):
    """
    Build the command's environment: stand-ins first on ``$PATH``, no system log, nothing from rsync or systemd.

    :param fake_bin: The directory of stand-ins for system programs (a
                     path), or :data:`None` to leave ``$PATH`` as it is.
    :param overrides: Environment variables to set (strings).
    :returns: A dict: this process's environment without the variables an
              rsync daemon or systemd would set and without ``$RSYNC_PASSWORD``.
    """
    environment = dict(os.environ)
    for name in ('RSYNC_MODULE_PATH', 'RSYNC_EXIT_STATUS', 'RSYNC_PASSWORD', 'JOURNAL_STREAM'):
        environment.pop(name, None)
    environment.update(COLOREDLOGS_SYSLOG='false')
    if fake_bin is not None:
        environment.update(PATH='%s:%s' % (fake_bin, os.environ['PATH']))
    environment.update(overrides)
    return environment


def run_command(arguments, environment, timeout=120, stdin=subprocess.DEVNULL, cwd=None):
    """
    Run the command and wait for it.

    :param arguments: The command line arguments (strings or paths).
    :param environment: The environment (see :func:`command_environment()`).
    :param timeout: Seconds before the test fails.
    :param stdin: The standard input (``/dev/null`` by default, so the command sees no terminal).
    :param cwd: The working directory (a string), or :data:`None` for this process's.
    :returns: A :class:`CommandResult`.
    """
    process = subprocess.run(command_line(*arguments), stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=environment, timeout=timeout, cwd=cwd)
    return CommandResult(process.returncode, process.stdout.decode('utf-8', 'replace'),
                         process.stderr.decode('utf-8', 'replace'))


def start_command(arguments, environment):
    """
    Start the command in the background, in a session of its own, with standard error on standard output.

    :param arguments: The command line arguments (strings or paths).
    :param environment: The environment (see :func:`command_environment()`).
    :returns: A :class:`subprocess.Popen` object (see :func:`finish()`).
    """
    return subprocess.Popen(command_line(*arguments), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=environment, start_new_session=True)


def finish(process, timeout=60):
    """
    Wait for a command started by :func:`start_command()`.

    :param process: The :class:`subprocess.Popen` object.
    :param timeout: Seconds before the test fails.
    :returns: A tuple of the exit code and the output (a string).
    """
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output.decode('utf-8', 'replace')


def run_in_terminal(arguments, environment, columns=200, timeout=120):
    """
    Run the command with a pseudo-terminal as its standard input, output and error.

    :param arguments: The command line arguments (strings or paths).
    :param environment: The environment (see :func:`command_environment()`).
    :param columns: The width of the terminal.
    :param timeout: Seconds before the test fails.
    :returns: The exit code and everything written to the terminal (with
              the terminal's CR LF line endings turned back into LF).
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack('HHHH', 50, columns, 0, 0))
    process = subprocess.Popen(command_line(*arguments), stdin=slave, stdout=slave, stderr=slave, env=environment,
                               start_new_session=True)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 1)[0]:
                continue
            try:
                data = os.read(master, 65536)
            except OSError as e:
                if e.errno != errno.EIO:
                    raise
                break
            if not data:
                break
            chunks.append(data)
        returncode = process.wait(timeout=max(1, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    return returncode, b''.join(chunks).decode('utf-8', 'replace').replace('\r\n', '\n')
