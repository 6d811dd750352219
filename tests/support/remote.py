"""
Helpers for the tests of remote destinations (SSH, rsync daemon, tunnel).

The command under test runs as a real process in a mount namespace of its
own, where an overlay filesystem covers the home directory of the user that
runs the tests (``/root``): files written into :attr:`ClientHome.upper`
(``.ssh/config``, keys, known hosts) appear in ``~/.ssh`` there, and whatever
ssh writes into ``~/.ssh`` lands in :attr:`ClientHome.upper` too. So ssh
reads a test ``~/.ssh/config`` exactly as it reads a user's (OpenSSH takes
``~`` from the password database, not from ``$HOME``), while the real home
directory stays untouched.

Each run goes through ``process_guard.py``, which reports every process
that outlives the command; :meth:`ClientHome.run()` fails the test when there
is one.
"""

import os
import pwd
import shlex
import shutil
import subprocess
import sys
import time

from support.cli import CommandResult, command_environment, command_line
from support.processes import descendant_pids, wait_for
from support.rsync_daemon import RsyncDaemon
from support.servers import LOCALHOST, SSHServer

HOME_DIRECTORY = pwd.getpwuid(os.getuid()).pw_dir
"""The home directory that ssh uses (from the password database)."""

SUPPORT_DIRECTORY = os.path.dirname(os.path.abspath(__file__))
"""The directory holding the test support package."""

TESTS_DIRECTORY = os.path.dirname(SUPPORT_DIRECTORY)
"""The directory holding the tests."""

REPOSITORY = os.path.dirname(TESTS_DIRECTORY)
"""The top directory of the project (the command runs from there)."""

PROCESS_GUARD = os.path.join(SUPPORT_DIRECTORY, 'process_guard.py')
"""The script that reports processes outliving the command."""

SERVER_ALIAS = 'backup-server'
"""The ``Host`` alias of the test SSH server in the test ``~/.ssh/config``."""

KNOWN_HOSTS_NAME = 'backup_known_hosts'
"""The file in ``~/.ssh`` that the test configuration records host keys in."""

OVERLAY_SCRIPT = 'mount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$3" "$1" && shift 3 && exec "$@"'
"""Shell code that mounts the home directory overlay and runs the rest of its arguments."""


class GuardedResult(CommandResult):

    """A :class:`CommandResult` with the processes that outlived the command."""

    def __init__(self, returncode, stdout, stderr, leftovers, duration):
        """Store the outcome, the leftover processes (a list of strings) and the duration (seconds)."""
        super(GuardedResult, self).__init__(returncode, stdout, stderr)
        self.leftovers = leftovers
        self.duration = duration

    def __repr__(self):
        """Show everything, so a failing assertion explains itself."""
        return 'GuardedResult(returncode=%r, duration=%.1f, stdout=%r, stderr=%r, leftovers=%r)' % (
            self.returncode, self.duration, self.stdout, self.stderr, self.leftovers)


class ClientHome(object):

    """An overlay for the home directory, with a test ``~/.ssh`` (see the module documentation)."""

    def __init__(self, directory):
        """
        Prepare the overlay's directories.

        :param directory: A directory of its own (a path).
        """
        self.directory = directory
        self.upper = directory / 'upper'
        self.ssh_directory = self.upper / '.ssh'
        self.ssh_directory.mkdir(parents=True, mode=0o700)
        self.config_blocks = []
        self.runs = 0

    @property
    def known_hosts_file(self):
        """The known hosts file that the test configuration names (a path in :attr:`upper`)."""
        return self.ssh_directory / KNOWN_HOSTS_NAME

    def install_key(self, source, name='id_ed25519'):
        """
        Copy a private key into ``~/.ssh``.

        :param source: The key file (a string or path).
        :param name: The name in ``~/.ssh`` (a string).
        :returns: The key's pathname as the command sees it (a string).
        """
        target = self.ssh_directory / name
        shutil.copyfile(str(source), str(target))
        target.chmod(0o600)
        return os.path.join(HOME_DIRECTORY, '.ssh', name)

    def add_host(self, alias, port, identity_file, hostname=LOCALHOST, **options):
        """
        Add a ``Host`` block to ``~/.ssh/config``.

        :param alias: The ``Host`` alias (a string).
        :param port: The SSH server's port (an integer).
        :param identity_file: The key to log in with, as the command sees it (a string).
        :param hostname: The ``HostName`` (a string).
        :param options: More options (names in ssh_config's spelling), which
                        override the defaults (``User root``, host keys in
                        :data:`KNOWN_HOSTS_NAME`, ``StrictHostKeyChecking accept-new``).
        """
        settings = dict(HostName=hostname, Port=port, User='root', IdentityFile=identity_file,
                        IdentitiesOnly='yes', UserKnownHostsFile='~/.ssh/' + KNOWN_HOSTS_NAME,
                        GlobalKnownHostsFile='/dev/null', StrictHostKeyChecking='accept-new')
        settings.update(options)
        self.config_blocks.append('Host %s\n%s' % (alias, ''.join(
            '    %s %s\n' % (name, value) for name, value in settings.items())))
        (self.ssh_directory / 'config').write_text('\n'.join(self.config_blocks))

    def run(self, *arguments, env=None, network=True, timeout=60, inside=None):
        """
        Run ``python -m rsync_system_backup --disable-notifications ARGUMENTS`` with this home directory.

        :param arguments: The command line arguments (strings or paths).
        :param env: Environment variables to add (a dict).
        :param network: :data:`False` to run without any network (not even loopback).
        :param timeout: Seconds before the test fails.
        :param inside: A mounted :class:`support.loop_filesystems.MountedFilesystem` whose namespace the
                       command starts from (to back up a source there), or :data:`None`.
        :returns: A :class:`GuardedResult`.
        :raises: :exc:`AssertionError` when a process outlives the command.
        """
        self.runs += 1
        work = self.directory / ('work-%d' % self.runs)
        work.mkdir()
        report = self.directory / ('leftovers-%d.txt' % self.runs)
        environment = command_environment(HOME=HOME_DIRECTORY)
        environment.update(env or {})
        command = ['unshare', '--mount', '--propagation', 'private'] + ([] if network else ['--net'])
        command += ['sh', '-c', OVERLAY_SCRIPT, 'sh', HOME_DIRECTORY, str(self.upper), str(work)]
        command += [sys.executable, PROCESS_GUARD, str(report)] + command_line('--disable-notifications', *arguments)
        if inside is not None:
            command = inside.command(*command)
        started = time.monotonic()
        process = subprocess.run(command, cwd=REPOSITORY, env=environment, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        result = GuardedResult(process.returncode, process.stdout.decode('utf-8', 'replace'),
                               process.stderr.decode('utf-8', 'replace'),
                               report.read_text().splitlines() if report.exists() else ['(no report)'],
                               time.monotonic() - started)
        assert not result.leftovers, "Processes outlived the command: %r" % result
        return result


def server_view(server, pathname):
    """
    Translate a pathname into one that shows what a server in a mount namespace of its own sees there.

    :param server: A started :class:`support.servers.ChildServer`.
    :param pathname: An absolute pathname (a string or path).
    :returns: The pathname under ``/proc/PID/root`` (a string).
    """
    return '/proc/%d/root%s' % (server.pid, pathname)


def tmpfs_mount_script(directory, size=None):
    """
    Write the shell code that mounts a tmpfs.

    :param directory: The mount point (a string or path that exists).
    :param size: The size in tmpfs syntax (``256k``), or :data:`None` for the default.
    :returns: A string.
    """
    return 'mount -t tmpfs %stmpfs %s' % ('-o size=%s ' % size if size else '', shlex.quote(str(directory)))


class PrivateHomeSSHServer(SSHServer):

    """
    An :class:`support.servers.SSHServer` whose sessions see an empty tmpfs on the home directory.

    Whatever the remote commands of a test do in the home directory (their
    working directory) stays in sshd's mount namespace, and the test can look
    at it with :func:`server_view()`. Optionally another directory gets a
    small tmpfs too, to fill up.
    """

    def __init__(self, directory, small_directory=None, small_size='256k', **options):
        """
        Initialize a :class:`PrivateHomeSSHServer`.

        :param directory: See :class:`support.servers.ChildServer`.
        :param small_directory: A directory (that exists) to mount a small tmpfs on, or :data:`None`.
        :param small_size: The size of that tmpfs.
        :param options: See :class:`support.servers.SSHServer`.
        """
        super(PrivateHomeSSHServer, self).__init__(directory, **options)
        self.small_directory = small_directory
        self.small_size = small_size

    def prepare(self):
        """Add the mounts to the command that starts sshd in its namespace."""
        command = super(PrivateHomeSSHServer, self).prepare()
        mounts = [tmpfs_mount_script(HOME_DIRECTORY)]
        if self.small_directory:
            mounts.append(tmpfs_mount_script(self.small_directory, self.small_size))
        command[-1] = ' && '.join(mounts + [command[-1]])
        return command


class StandInPathSSHServer(PrivateHomeSSHServer):

    """
    A :class:`PrivateHomeSSHServer` whose sessions find this system's programs on their ``$PATH``, some changed.

    A program can be left out (``flock``, to see what a destination without
    it does) or replaced by a shell script (a ``sync`` that waits, to
    interrupt a run at a known moment).
    """

    def __init__(self, directory, programs, **options):
        """
        Initialize a :class:`StandInPathSSHServer`.

        :param directory: See :class:`support.servers.ChildServer`.
        :param programs: A dict of program names and their stand-ins: the
                         text of a shell script, or :data:`None` to leave the
                         program out.
        :param options: See :class:`PrivateHomeSSHServer`.
        """
        super(StandInPathSSHServer, self).__init__(directory, **options)
        self.programs = programs

    def prepare(self):
        """Fill a directory with links to the system's programs and the stand-ins, and make it the sessions' PATH."""
        command = super(StandInPathSSHServer, self).prepare()
        programs = os.path.join(self.directory, 'programs')
        os.makedirs(programs, exist_ok=True)
        for directory in ('/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'):
            for name in os.listdir(directory) if os.path.isdir(directory) else []:
                link = os.path.join(programs, name)
                if name not in self.programs and not os.path.lexists(link):
                    os.symlink(os.path.join(directory, name), link)
        for name, script in self.programs.items():
            if script is not None:
                pathname = os.path.join(programs, name)
                with open(pathname, 'w') as handle:
                    handle.write(script)
                os.chmod(pathname, 0o755)
        with open(self.server_config_file, 'a') as handle:
            handle.write('SetEnv PATH=%s\n' % programs)
        return command


class SmallDiskRsyncDaemon(RsyncDaemon):

    """
    An :class:`support.rsync_daemon.RsyncDaemon` in a mount namespace where one directory is a small tmpfs.

    The tmpfs holds an empty directory ``latest``, to be a module's path.
    """

    def __init__(self, directory, modules, small_directory, small_size='256k', **options):
        """
        Initialize a :class:`SmallDiskRsyncDaemon`.

        :param directory: See :class:`support.servers.ChildServer`.
        :param modules: See :class:`support.rsync_daemon.RsyncDaemon`.
        :param small_directory: A directory (that exists) to mount the small tmpfs on.
        :param small_size: The size of the tmpfs.
        :param options: See :class:`support.rsync_daemon.RsyncDaemon`.
        """
        super(SmallDiskRsyncDaemon, self).__init__(directory, modules, **options)
        self.small_directory = small_directory
        self.small_size = small_size

    def prepare(self):
        """Start the daemon in a mount namespace with the small filesystem."""
        command = super(SmallDiskRsyncDaemon, self).prepare()
        script = '%s && mkdir %s && exec "$@"' % (tmpfs_mount_script(self.small_directory, self.small_size),
                                                  shlex.quote(os.path.join(str(self.small_directory), 'latest')))
        return ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', script, 'sh'] + command


def wait_until_idle(server, timeout=10):
    """
    Wait until a server has no processes left from its connections.

    :param server: A started :class:`support.servers.ChildServer`.
    :param timeout: Seconds (a number).
    """
    wait_for(lambda: not descendant_pids(server.pid), timeout, "the connections of the %s to end" % server.name)
