"""
Running a program of this package on the destination's ``python3`` (this process's side).

A program is a module of :mod:`rsync_system_backup.agent` with a
``main(arguments)`` function that reads standard input, writes standard
output and returns an exit code. :func:`run_program()` runs it as one
command in the destination's execution context: ``python3 -I -S -c``
:data:`BOOTSTRAP`, whose standard input holds the source of every module the
program needs (each behind a header line with its name and size), an empty
line, and then the program's own input as bytes. The bootstrap creates the
modules under their own names, in order, and calls the program's ``main()``
with the rest of the command line. So the destination needs ``python3`` and
nothing of this package installed, and no name or datum ever passes through
a shell.
"""

import sys

from executor.contexts import LocalContext

from rsync_system_backup.exceptions import RemoteCommandError

PYTHON_OPTIONS = ('-I', '-S')
"""How the destination's ``python3`` runs: isolated from the environment, without the site module."""

BOOTSTRAP = '''\
import sys, types
stream = sys.stdin.buffer
header = stream.readline().split()
while header:
    module = types.ModuleType(header[0].decode())
    sys.modules[module.__name__] = module
    if header[2] == b'package':
        module.__path__ = []
    exec(compile(stream.read(int(header[1])), module.__name__, 'exec'), module.__dict__)
    header = stream.readline().split()
sys.exit(sys.modules[sys.argv[1]].main(sys.argv[2:]))
'''
"""The program that ``python3 -c`` runs: it loads the shipped modules and runs the program's ``main()``."""

EXIT_NOT_FOUND = 127
"""The exit code of a command that isn't installed."""


def ship_modules(names):
    """
    Give the modules a program needs, as the bootstrap reads them.

    :param names: The modules' names, each after the modules it imports (strings).
    :returns: Bytes: a header line and the source of each module, and of
              the packages that hold them (empty), then an empty line.
    """
    parts, packages = [], []
    for name in names:
        package = name.rpartition('.')[0]
        while package and package not in packages:
            packages.append(package)
            package = package.rpartition('.')[0]
    for package in sorted(packages, key=lambda package: package.count('.')):
        parts.append(('%s 0 package\n' % package).encode())
    for name in names:
        __import__(name)
        with open(sys.modules[name].__file__, 'rb') as handle:
            source = handle.read()
        parts.append(('%s %i module\n' % (name, len(source))).encode())
        parts.append(source)
    parts.append(b'\n')
    return b''.join(parts)


def run_program(context, purpose, names, arguments, data, sudo=False, ionice=None):
    """
    Run a program on the destination.

    :param context: The destination's execution context.
    :param purpose: What needs it, for the message when ``python3`` is missing (a string).
    :param names: The modules it needs, the program's own last (see :func:`ship_modules()`).
    :param arguments: Its arguments (strings).
    :param data: Its standard input (bytes).
    :param sudo: :data:`True` to run it with superuser privileges.
    :param ionice: The I/O scheduling class to run it with, or :data:`None`.
    :returns: The finished command (its ``returncode``, and as bytes its ``stdout`` and ``stderr``).
    :raises: :exc:`.RemoteCommandError` when ``python3`` isn't installed there.
    """
    interpreter = sys.executable if isinstance(context, LocalContext) else 'python3'
    command = context.execute(interpreter, *(PYTHON_OPTIONS + ('-c', BOOTSTRAP, names[-1]) + tuple(arguments)),
                              input=ship_modules(names) + data, capture=True, capture_stderr=True, check=False,
                              sudo=sudo, ionice=ionice, shell=False, tty=False)
    if command.returncode == EXIT_NOT_FOUND:
        raise RemoteCommandError("%s needs python3 on the system that holds the backups, and it isn't installed "
                                 "there: install python3 (python3-minimal on Debian)." % purpose)
    return command
