"""
Where the commands of a run find the programs that they name: ``$PATH``, then the system directories.

cron starts a command with ``PATH=/usr/bin:/bin``, but ``cryptdisks_start``
and ``cryptdisks_stop`` live in ``/usr/sbin``, and on some systems ``mount``,
``umount`` or ``btrfs`` do too. So every command of a run looks for the
programs it names in ``$PATH`` and then in the :data:`SYSTEM_DIRECTORIES`
that ``$PATH`` lacks (:func:`search_path()`), on the system where it runs:

- On this system, :class:`SearchPathOption` gives each command that search
  path as its ``$PATH`` (for the shell code of a command and the programs
  that a program starts, too), and :func:`require_program()` refuses a
  program that isn't there before it would start, with
  :exc:`.ProgramNotFoundError` (see :class:`.SessionLocalContext`).
- On an SSH destination, :class:`RemoteSearchPath` starts each command
  through :data:`REMOTE_SEARCH_SCRIPT`, which adds the directories to the
  ``$PATH`` of the login there and ends with exit code 127 when the program
  isn't found (see :func:`program_not_found()`).

A command that runs with sudo is looked for by sudo itself: in the
``secure_path`` of the sudoers file when it sets one (Debian, Ubuntu and
Fedora set one that holds the system directories), otherwise in the search
path that sudo is given.
"""

import os
import shutil

from executor import COMMAND_NOT_FOUND_STATUS, ExternalCommand

from rsync_system_backup.exceptions import ProgramNotFoundError

SYSTEM_DIRECTORIES = ('/usr/local/sbin', '/usr/sbin', '/sbin')
"""The directories of system programs that a command searches after ``$PATH`` (when ``$PATH`` lacks them)."""

REMOTE_SEARCH_SCRIPT = '''for directory in %s; do
    case ":$PATH:" in *":$directory:"*) ;; *) PATH=${PATH:+$PATH:}$directory ;; esac
done
export PATH
command -v -- "$0" > /dev/null || { printf '%%s not found (looked in %%s)\\n' "$0" "$PATH" >&2; exit 127; }
exec "$@"
''' % ' '.join(SYSTEM_DIRECTORIES)
"""
Shell code that runs a command (its positional parameters) on an SSH
destination, with :data:`SYSTEM_DIRECTORIES` added to ``$PATH``: when the
program that the command names (``$0``) isn't found, it says so and exits
with 127, the exit code of a command that isn't installed.
"""


def search_path(path=None):
    """
    Add the system directories that a ``$PATH`` lacks to its end.

    :param path: The value of ``$PATH`` (a string), or :data:`None` for this process's.
    :returns: The search path (a string).
    """
    if path is None:
        path = os.environ.get('PATH', os.defpath)
    directories = [directory for directory in path.split(os.pathsep) if directory]
    return os.pathsep.join(directories + [directory for directory in SYSTEM_DIRECTORIES
                                          if directory not in directories])


def find_on_search_path(name):
    """
    Find a program of this system on the search path (see :func:`search_path()`).

    :param name: The program's name (a string).
    :returns: Its pathname (a string), or :data:`None` when it isn't there.
    """
    return shutil.which(name, path=search_path())


def require_program(name):
    """
    Check that a program that a command of this system names can be found.

    :param name: The program's name (a string). A pathname (with a ``/``)
                 is left to the command to start, as the search path
                 doesn't apply to it.
    :raises: :exc:`.ProgramNotFoundError` when the program is nowhere on
             the search path.
    """
    if '/' not in name and find_on_search_path(name) is None:
        raise ProgramNotFoundError(describe_missing_program(name, search_path()))


def describe_missing_program(name, path, host=None):
    """
    Say that a program isn't installed where a command looked for it, in one line.

    :param name: The program's name (a string).
    :param path: Where it was looked for (a string).
    :param host: The SSH destination where it was looked for, or :data:`None` for this system.
    :returns: The message, with the fix (a string).
    """
    if host:
        return "%s not found on %s (looked in %s there): install it there." % (name, host, path)
    return "%s not found (looked in %s): install it, or add its directory to PATH." % (name, path)


def program_not_found(command):
    """
    Tell whether a command on an SSH destination failed because its program isn't installed there.

    :param command: An :class:`~executor.ExternalCommand` that has run.
    :returns: The message (a string, see :func:`describe_missing_program()`)
              when :data:`REMOTE_SEARCH_SCRIPT` didn't find the program
              (exit code 127), otherwise :data:`None`. A shell whose code
              runs a program that isn't installed exits with 127 as well:
              its own message says which program, so shell code gets
              :data:`None`, and so does a command of this system, whose
              program :func:`require_program()` found before it started.
    """
    host = getattr(command, 'ssh_alias', None)
    if not host or command.returncode != COMMAND_NOT_FOUND_STATUS or command.command[0] == 'sh':
        return None
    return describe_missing_program(command.command[0], "the PATH of the login and %s" % ':'.join(SYSTEM_DIRECTORIES),
                                    host)


def check_program_found(command):
    """
    Refuse to go on after a command whose program isn't installed on an SSH destination.

    A command of this system needs no such check: its program is found before it starts (see :func:`require_program()`).

    :param command: An :class:`~executor.ExternalCommand` that has run (with ``check=False``).
    :returns: The command.
    :raises: :exc:`.ProgramNotFoundError` when its program wasn't found (see :func:`program_not_found()`).
    """
    message = program_not_found(command)
    if message:
        raise ProgramNotFoundError(message)
    return command


class SearchPathOption(object):

    """Mixin for :class:`~executor.ExternalCommand` classes of this system: :func:`search_path()` as ``$PATH``."""

    def start_once(self, check=None, **kw):
        """
        Start the command with the search path as its ``$PATH``.

        :param check: See :meth:`executor.ExternalCommand.start_once()`.
        :param kw: The keyword arguments for :class:`subprocess.Popen` (with ``env``).
        """
        environment = dict(kw.get('env') or os.environ)
        environment['PATH'] = search_path(environment.get('PATH'))
        kw['env'] = environment
        return super(SearchPathOption, self).start_once(check=check, **kw)


class RemoteSearchPath(ExternalCommand):

    """
    Base for a remote command class, after :class:`~executor.ssh.client.RemoteCommand`: the search path there.

    :class:`~executor.ssh.client.RemoteCommand` quotes the command line of
    the classes after it for the remote shell, so a class that puts this one
    after it (``class C(RemoteCommand, RemoteSearchPath)``) sends every
    command through :data:`REMOTE_SEARCH_SCRIPT`, sudo and ionice included.
    """

    @property
    def command_line(self):
        """The command line for the remote shell: the command behind :data:`REMOTE_SEARCH_SCRIPT` (a list)."""
        command_line = super(RemoteSearchPath, self).command_line
        if not self.command or self.shell:
            return command_line
        return ['sh', '-c', REMOTE_SEARCH_SCRIPT, self.command[0]] + command_line
