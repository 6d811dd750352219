"""
Running a program of this package on the destination's side, the one way there is (this process's side).

A program is a module (standard library only) with a function
``main(arguments, stdin, stdout, stderr, shield)``: `arguments` are its
command line's arguments (strings), `stdin` and `stdout` binary streams,
`stderr` a text stream for its messages, and `shield` a function that gives
a context manager for a block that a signal must not cut short (the signal
takes effect when the block is done). ``main()`` returns the exit code; it
leaves the signal handlers alone, since it may run in this process.

:func:`run_program()` runs a program in one of two ways, with the same
:class:`Finished` result:

- **In this process**, for a local destination that needs no ``sudo`` and
  no I/O scheduling class (see :func:`.runs_in_process()`): ``main()`` reads
  its input from memory and writes into memory, and its shield is
  :func:`.cleanup()`, so this process's own handling of signals (see
  :mod:`.processes.signals`) stays in place. An exception that escapes
  ``main()`` ends it as it ends ``python3``: exit code 1, the traceback on
  its standard error.
- **As one command** in the destination's execution context, elsewhere:
  ``python3 -I -S -c`` :data:`BOOTSTRAP` (the source of
  :mod:`.agent.bootstrap`; isolated from the environment,
  without the site module), whose standard input holds the source of every
  module the program needs, each behind a header line with its name and size
  (see :func:`ship_modules()`), an empty line, and then the program's own
  input. The bootstrap creates the modules under their own names, in order,
  and hands over to :func:`.standalone.run()`, which gives ``main()`` the
  process's streams and signals. So the destination needs ``python3`` and
  nothing of this package installed, and no name or datum passes through a
  shell.

:func:`start_program()` starts a program that runs alongside this process's
work (the snapshot's copy while rsync plans the transfer; the manifest's
build, which reads the previous manifest meanwhile), which is stopped, or
told that its input is complete, by closing its standard input: in a thread
of this process where :func:`run_program()` would run it here
(:class:`ProgramThread`; no ``python3`` starts, and its messages and those
of the commands it starts go to a temporary file), otherwise as a command of
its own, which falls back to a shell command where the destination has no
``python3`` (:class:`StartedProgram`).
"""

import contextlib
import importlib
import inspect
import io
import os
import sys
import tempfile
import threading
import traceback

from executor.contexts import LocalContext

from rsync_system_backup.agent import bootstrap
from rsync_system_backup.backup_set.operations import runs_in_process
from rsync_system_backup.exceptions import RemoteCommandError
from rsync_system_backup.processes.signals import cleanup
from rsync_system_backup.processes.waiting import wait_for_exit

PYTHON_OPTIONS = ('-I', '-S')
"""How the destination's ``python3`` runs: isolated from the environment, without the site module."""

BOOTSTRAP = inspect.getsource(bootstrap)
"""What ``python3 -c`` runs: the source of :mod:`.agent.bootstrap` (it loads the shipped modules and the program)."""

FALLBACK_SCRIPT = 'if command -v "$0" > /dev/null 2>&1; then exec "$0" %s -c "$@"; fi; shift 2; ' % \
    ' '.join(PYTHON_OPTIONS)
"""
The start of :func:`start_program()`'s shell code: where ``python3`` (``$0``)
is installed it runs the program; otherwise the fallback's shell code, which
follows, runs with the program's arguments as its positional parameters.
"""

EXIT_NOT_FOUND = 127
"""The exit code of a command that isn't installed."""

MISSING_PYTHON = ("%s needs python3 on the system that holds the backups, and it isn't installed there: install "
                  "python3 (python3-minimal on Debian).")
"""The message when the destination has no ``python3`` (after what needs it)."""

STDERR_ERRORS = 'backslashreplace'
"""How a program's messages in this process encode what UTF-8 can't (as ``python3`` does on its standard error)."""


class Finished(object):

    """How a program ended, run either way."""

    def __init__(self, returncode, stdout, stderr):
        """
        Record the outcome.

        :param returncode: The exit code (an integer).
        :param stdout: What it wrote on its standard output (bytes).
        :param stderr: What it wrote on its standard error (bytes; empty when that wasn't captured).
        """
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    @property
    def messages(self):
        """The lines of its standard error (a list of strings, without empty ones)."""
        return [line for line in self.stderr.decode('utf-8', 'replace').splitlines() if line.strip()]

    @property
    def problem(self):
        """Its last message, or its exit code when it gave none (a string, for a message about a failure)."""
        messages = self.messages
        return messages[-1].strip() if messages else "exit code %i" % self.returncode


class StartedProgram(object):

    """A program that :func:`start_program()` started: it runs until it is done, or until it is stopped."""

    def __init__(self, command):
        """
        Follow a started command.

        :param command: The :class:`~executor.ExternalCommand`, started with a pipe for its standard input.
        """
        self.command = command
        self.finished = None

    @property
    def is_running(self):
        """:data:`True` while the command runs."""
        return self.command.is_running

    def feed(self, data):
        """
        Write the program's modules on its standard input, which stays open.

        :param data: What :func:`ship_modules()` gives (bytes).

        A command that has ended already (its fallback doesn't read) gets
        nothing; its exit code says how it went.
        """
        stream = self.command.subprocess.stdin
        try:
            stream.write(data)
            stream.flush()
        except BrokenPipeError:
            pass

    def stop(self):
        """Close the program's standard input: a program that watches it stops (see :mod:`.agent.link_copy`)."""
        process = self.command.subprocess
        if process is not None and not process.stdin.closed:
            try:
                process.stdin.close()
            except BrokenPipeError:
                pass

    def wait(self):
        """
        Wait until the program ends (at once when it ended before).

        :returns: A :class:`Finished` object.
        """
        if self.finished is None:
            process = self.command.subprocess
            if process is not None:
                process.wait()
                self.stop()
            wait_for_exit(self.command)
            self.finished = Finished(self.command.returncode, self.command.stdout or b'', self.command.stderr or b'')
        return self.finished


class ProgramThread(object):

    """
    A program that :func:`start_program()` runs in a thread of this process (``feed()``, ``stop()`` and ``wait()``).

    Its standard input is a pipe that stays open until it is stopped or
    waited for; its standard output is kept in memory; its standard error
    is a temporary file, whose file descriptor the commands it starts may
    write their messages to (see :mod:`.agent.link_copy`). Its shield does nothing: signals reach this
    process's main thread, never a block of this thread.
    """

    def __init__(self, name, arguments):
        """
        Start the program.

        :param name: The program's module (a string).
        :param arguments: Its arguments (strings).
        """
        reading, self.writing = os.pipe()
        self.stdin = os.fdopen(reading, 'rb')
        self.stdout = io.BytesIO()
        self.messages = tempfile.TemporaryFile()
        self.returncode = None
        self.finished = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, args=(name, list(arguments)), daemon=True)
        self.thread.start()

    def run(self, name, arguments):
        """
        Run the program's ``main()`` (in the thread).

        :param name: See :meth:`__init__()`.
        :param arguments: See :meth:`__init__()`.

        See :func:`call_main()` for an exception that escapes ``main()``.
        """
        stderr = io.TextIOWrapper(io.BufferedWriter(io.FileIO(os.dup(self.messages.fileno()), 'wb')),
                                  encoding='utf-8', errors=STDERR_ERRORS)
        try:
            self.returncode = call_main(name, arguments, self.stdin, self.stdout, stderr, contextlib.nullcontext)
        finally:
            stderr.close()
            # What is fed from now on fails at once (a broken pipe), instead of waiting for a reader.
            self.stdin.close()
            self.done.set()

    @property
    def is_running(self):
        """:data:`True` while the program runs."""
        return not self.done.is_set()

    def feed(self, data):
        """
        Write on the program's standard input, which stays open.

        :param data: Bytes. A program that has ended gets nothing; its exit code says how it went.
        """
        view = memoryview(data)
        try:
            while view and self.writing is not None:
                view = view[os.write(self.writing, view):]
        except BrokenPipeError:
            pass

    def stop(self):
        """Close the program's standard input: a program that watches it stops (see :mod:`.agent.link_copy`)."""
        if self.writing is not None:
            os.close(self.writing)
            self.writing = None

    def wait(self):
        """
        Wait until the program ends (at once when it ended before).

        :returns: A :class:`Finished` object.

        When the wait is cut short (a signal raises :exc:`.Interrupted` in
        this thread), the program is stopped and waited for before the
        exception goes on, so that none of its commands outlives the wait.
        (It waits for an event: an interrupted :meth:`threading.Thread.join()`
        takes the thread for ended.)
        """
        if self.finished is None:
            try:
                self.done.wait()
            except BaseException:
                self.stop()
                self.done.wait()
                self.collect()
                raise
            self.collect()
        return self.finished

    def collect(self):
        """Once the program has ended, close its input and read its messages into :attr:`finished`."""
        self.thread.join()
        self.stop()
        self.stdin.close()
        self.messages.seek(0)
        self.finished = Finished(self.returncode, self.stdout.getvalue(), self.messages.read())
        self.messages.close()


def ship_modules(names):
    """
    Give the modules a program needs, as the bootstrap reads them.

    :param names: The modules' names, each after the modules it imports, the
                  program last (strings; :data:`.bootstrap.ENTRY_MODULE` comes first by itself).
    :returns: Bytes: a header line for each package that holds them (which
              is created empty), a header line and the source of each
              module, then an empty line.
    """
    names = (bootstrap.ENTRY_MODULE,) + tuple(names)
    parts, packages = [], []
    for name in names:
        package = name.rpartition('.')[0]
        while package and package not in packages:
            packages.append(package)
            package = package.rpartition('.')[0]
    for package in sorted(packages, key=lambda package: package.count('.')):
        parts.append(('%s 0 package\n' % package).encode())
    for name in names:
        with open(importlib.import_module(name).__file__, 'rb') as handle:
            source = handle.read()
        parts.append(('%s %i module\n' % (name, len(source))).encode())
        parts.append(source)
    parts.append(b'\n')
    return b''.join(parts)


def python_command(context, names, arguments):
    """
    Give the command line that runs a program with the destination's ``python3``.

    :param context: The destination's execution context.
    :param names: The program's modules (see :func:`ship_modules()`).
    :param arguments: Its arguments (strings).
    :returns: A tuple of strings: this process's interpreter for a local
              context, ``python3`` elsewhere, with :data:`PYTHON_OPTIONS`,
              :data:`BOOTSTRAP`, the program's name and its arguments.
    """
    interpreter = sys.executable if isinstance(context, LocalContext) else 'python3'
    return (interpreter,) + PYTHON_OPTIONS + ('-c', BOOTSTRAP, names[-1]) + tuple(arguments)


def run_program(context, purpose, names, arguments, data=b'', sudo=False, ionice=None, capture_stderr=True):
    """
    Run a program on the destination's side: in this process where it can, otherwise as one command.

    :param context: The destination's execution context.
    :param purpose: What needs it, for the message when ``python3`` is missing (a string).
    :param names: The modules it needs, the program's own last (see :func:`ship_modules()`).
    :param arguments: Its arguments (strings).
    :param data: Its standard input (bytes).
    :param sudo: :data:`True` to run it with superuser privileges.
    :param ionice: The I/O scheduling class to run it with, or :data:`None`.
    :param capture_stderr: :data:`False` to let its messages through to this
                           process's standard error (progress, say) instead
                           of into :attr:`Finished.stderr`.
    :returns: A :class:`Finished` object.
    :raises: :exc:`.RemoteCommandError` when ``python3`` isn't installed there.
    """
    if runs_in_process(context, sudo) and not ionice:
        return run_here(names[-1], arguments, data, capture_stderr)
    command = context.execute(*python_command(context, names, arguments), input=ship_modules(names) + data,
                              capture=True, capture_stderr=capture_stderr, check=False, sudo=sudo, ionice=ionice,
                              shell=False, tty=False)
    if command.returncode == EXIT_NOT_FOUND:
        raise RemoteCommandError(MISSING_PYTHON % purpose)
    return Finished(command.returncode, command.stdout or b'', (command.stderr or b'') if capture_stderr else b'')


def run_here(name, arguments, data, capture_stderr):
    """
    Run a program in this process.

    :param name: The program's module (a string).
    :param arguments: Its arguments (strings).
    :param data: Its standard input (bytes).
    :param capture_stderr: See :func:`run_program()`.
    :returns: A :class:`Finished` object.
    """
    stdout = io.BytesIO()
    stderr = io.TextIOWrapper(io.BytesIO(), encoding='utf-8', errors=STDERR_ERRORS) if capture_stderr else sys.stderr
    try:
        returncode = call_main(name, list(arguments), io.BytesIO(data), stdout, stderr, cleanup)
        stderr.flush()
        return Finished(returncode, stdout.getvalue(), stderr.buffer.getvalue() if capture_stderr else b'')
    finally:
        if capture_stderr:
            stderr.close()


def call_main(name, arguments, stdin, stdout, stderr, shield):
    """
    Call a program's ``main()`` in this process, ending it as ``python3`` would end it.

    :param name: The program's module (a string).
    :param arguments: Its arguments (a list of strings).
    :param stdin: See the module documentation (and the other streams and `shield` as well).
    :param stdout: Its standard output.
    :param stderr: Its standard error.
    :param shield: Its shield.
    :returns: The exit code: ``main()``'s, or 1 after an exception that
              escapes it (its traceback goes to `stderr`). Exceptions that
              don't derive from :exc:`Exception` (this process's
              :exc:`.Interrupted`, say) pass through.
    """
    try:
        return importlib.import_module(name).main(arguments, stdin, stdout, stderr, shield)
    except Exception:
        traceback.print_exc(file=stderr)
        return 1


def start_program(context, names, arguments, fallback, sudo=False, ionice=None):
    """
    Start a program on the destination's side that runs alongside this process's work.

    :param context: The destination's execution context.
    :param names: The modules it needs, the program's own last (see :func:`ship_modules()`).
    :param arguments: Its arguments (strings).
    :param fallback: Shell code that does the work where there is no
                     ``python3``, with the program's arguments as its
                     positional parameters (``"$1"`` ...).
    :param sudo: :data:`True` to run it with superuser privileges.
    :param ionice: The I/O scheduling class to run it with, or :data:`None`.
    :returns: A :class:`ProgramThread` where :func:`run_program()` would
              run the program in this process, otherwise a
              :class:`StartedProgram`. Its standard input stays open
              (after the modules) until it is stopped or waited for.
    """
    if runs_in_process(context, sudo) and not ionice:
        return ProgramThread(names[-1], arguments)
    command = python_command(context, names, arguments)
    command = ('sh', '-c', FALLBACK_SCRIPT + fallback, command[0]) + command[len(PYTHON_OPTIONS) + 2:]
    started = StartedProgram(context.execute(*command, input=True, asynchronous=True, capture=True,
                                             capture_stderr=True, check=False, sudo=sudo, ionice=ionice,
                                             shell=False, tty=False))
    started.feed(ship_modules(names))
    return started
