"""
A throw-away SSH server on 127.0.0.1 for the benchmarks, and the way to reach it.

The server is the test suite's :class:`support.remote.PrivateHomeSSHServer`
(sshd in a mount namespace of its own, logging at level VERBOSE). Its
sessions get an empty home directory, so a shell startup file of the user
running the benchmark (one that runs ``pyenv init``, say) doesn't slow down
every remote command. Its generated client home directory holds
``.ssh/config`` with a ``Host`` alias, the key and the known hosts file.

OpenSSH takes ``~`` from the password database, not from ``$HOME``, and
some programs (executor, so rsync-system-backup 1.1) pass options that make
ssh write to ``~/.ssh/known_hosts``. So every command that uses ssh runs
through :meth:`LoopbackSSH.isolate()`: in a private mount namespace, where an
overlay filesystem covers the real home directory and adds the server's
client configuration as ``~/.ssh/config``. What ssh writes lands in the
overlay's upper directory; the real ``~/.ssh`` is never read or written.

Every SSH login shows up in the server's log as an ``Accepted publickey``
line; :meth:`LoopbackSSH.connections()` counts them.
"""

import os
import shlex
import shutil
import sys
import tempfile

BENCHMARKS_DIRECTORY = os.path.dirname(os.path.abspath(__file__))
"""The directory holding the benchmarks."""

sys.path.insert(0, os.path.join(os.path.dirname(BENCHMARKS_DIRECTORY), 'tests'))

from support.remote import HOME_DIRECTORY, PrivateHomeSSHServer  # noqa: E402

SSH_ALIAS = 'benchmark-server'
"""The ``Host`` alias of the server in the client configuration."""

LOGIN_MARKER = 'Accepted publickey'
"""What sshd logs (at level VERBOSE or INFO) for each successful login."""

OVERLAY_SCRIPT = 'mount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$3" "$1" && shift 3 && exec "$@"'
"""Shell code that covers a directory with an overlay filesystem and runs the rest of its arguments."""


class LoopbackSSH(object):

    """An SSH server on 127.0.0.1, started and stopped with ``with``."""

    def __init__(self, directory):
        """
        Prepare the server.

        :param directory: A directory of its own for keys, configuration and logs (a string).
        """
        self.directory = directory
        self.server = PrivateHomeSSHServer(os.path.join(directory, 'server'), alias=SSH_ALIAS)
        self.home_changes = os.path.join(directory, 'home-changes')

    def __enter__(self):
        """Start the server and put its client configuration in the overlay's upper directory."""
        self.server.start()
        os.makedirs(os.path.join(self.home_changes, '.ssh'), mode=0o700)
        shutil.copyfile(self.server.config_file, os.path.join(self.home_changes, '.ssh', 'config'))
        return self

    def __exit__(self, exc_type=None, exc_value=None, traceback=None):
        """Stop the server."""
        self.server.stop()

    @property
    def alias(self):
        """The ``Host`` alias that reaches the server (a string)."""
        return self.server.alias

    @property
    def user(self):
        """The user that logs in on the server (a string)."""
        return self.server.user

    def isolate(self, argv):
        """
        Make a command run with the server's client configuration as ``~/.ssh/config``.

        :param argv: The command (a list of strings).
        :returns: A command line (a list of strings) that runs it in a mount
                  namespace of its own, with the overlay on the home directory.
        """
        work = tempfile.mkdtemp(prefix='overlay-work-', dir=self.directory)
        return ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', OVERLAY_SCRIPT, 'isolate',
                HOME_DIRECTORY, self.home_changes, work] + argv

    def remote_command(self, argv):
        """
        Turn a command into one that runs on the server.

        :param argv: The command (a list of strings).
        :returns: An ``ssh`` command line (a list of strings).
        """
        return ['ssh', self.alias, ' '.join(shlex.quote(argument) for argument in argv)]

    def connections(self):
        """Count the logins that the server accepted so far (an integer)."""
        return self.server.read_log().count(LOGIN_MARKER)
