"""
Commands on a destination system reached over SSH.

The destination's commands (``mkdir``, ``cp --archive --link``, ``rm`` and
the listing for rotation) run through an :mod:`executor` remote context, so
they go through the same ``ssh`` program and the same ``~/.ssh/config`` as
rsync's own connection. Two things are changed from executor's defaults:

- executor adds ``-o StrictHostKeyChecking=no`` and
  ``-o UserKnownHostsFile=...`` to every ``ssh`` command, which overrides
  ``~/.ssh/config`` and lets a connection proceed to a host whose key has
  changed. A backup sends every file of a system, so here these two options
  are left out: host keys are checked the way the user's SSH configuration
  says (by default, unknown and changed keys are refused). executor's
  ``BatchMode=yes`` (never ask for a password) and ``ConnectTimeout=10`` stay.
- executor only knows the remote user when it is part of the destination
  (``user@host:``), and assumes it lacks superuser privileges otherwise,
  prefixing commands with ``sudo``. Here the user comes from
  ``ssh -G HOST`` when the destination names none, so a ``User root`` in
  ``~/.ssh/config`` counts.

A run logs in once: it opens one SSH connection and sends every command
(the checks of :func:`check_remote_rsync()` and :func:`check_sudo()`, the
holder of the lock on the backup set, see :mod:`.backup_set.lock`) and the rsync
transfer through it (OpenSSH connection multiplexing, see
:func:`.shared_connection()`). So the destination sees one login per run
instead of dozens.

Failures of the connection itself are turned into one-line explanations that
name the problem and the fix (see :func:`explain_ssh_failure()`).
"""

import contextlib
import logging
import shlex

from executor import quote
from executor.contexts import LocalContext, RemoteContext
from executor.ssh.client import RemoteCommand, RemoteCommandFailed, RemoteCommandNotFound, RemoteConnectFailed
from property_manager import mutable_property

from rsync_system_backup.exceptions import ProgramNotFoundError, RemoteCommandError, SSHConnectionError
from rsync_system_backup.processes.search_path import RemoteSearchPath, program_not_found
from rsync_system_backup.processes.sessions import OwnSessionOption
from rsync_system_backup.processes.sudo import (
    SUDO_PROBE,
    NoPasswordPrompt,
    describe_probe_failure,
    describe_sudo_refusal,
)

HOST_KEY_OPTIONS = ('StrictHostKeyChecking=', 'UserKnownHostsFile=')
"""The prefixes of the ``-o`` options that executor adds and this module leaves out."""

SSH_FAILURES = (
    (('Could not resolve hostname', 'Name or service not known', 'Temporary failure in name resolution'),
     "Can't find the SSH server {host}: its name doesn't resolve ({detail}). "
     "Check the host name, or the HostName of the Host {host} entry in ~/.ssh/config."),
    (('Connection refused',),
     "The SSH server {host} refused the connection ({detail}). "
     "Check that sshd runs there and that the port (Port in ~/.ssh/config, or :PORT after -t HOST) is right."),
    (('Network is unreachable', 'No route to host', 'timed out', 'Connection reset'),
     "Can't reach the SSH server {host} ({detail}). Check the network connection and the host name."),
    (('has changed and you have requested strict checking',),
     "The host key of the SSH server {host} has changed ({detail}): someone may be intercepting the connection, "
     "or the server was reinstalled. Check the new key's fingerprint on the server, then remove the old key "
     "with the ssh-keygen -R command that 'ssh {host}' prints and record the new one."),
    (('Host key verification failed', 'host key is known'),
     "The host key of the SSH server {host} is unknown ({detail}). As the user who runs the backup, record it "
     "once: 'ssh -o StrictHostKeyChecking=ask {host} true' shows its fingerprint to compare with the "
     "server's and asks before recording it."),
    (('Permission denied', 'Too many authentication failures'),
     "The SSH server {host} refused to log in ({detail}). Check the user name (USER@ or User in "
     "~/.ssh/config), the key (IdentityFile in ~/.ssh/config) and the server's authorized_keys; "
     "passwords can't be typed in, so use a key."),
)
"""Known SSH error messages and their explanations: (substrings, message template) tuples, tried in order."""

logger = logging.getLogger(__name__)


class SSHConfigGoverns(object):

    """
    Mixin for :class:`~executor.ssh.client.RemoteCommand` classes that lets ``~/.ssh/config`` decide on host keys.

    It removes executor's ``StrictHostKeyChecking`` and ``UserKnownHostsFile``
    options (see :data:`HOST_KEY_OPTIONS`) from the ``ssh`` command line, and
    ends ssh's options with ``--`` before the host (see :func:`end_options()`).
    """

    @property
    def command_line(self):
        """The ``ssh`` command line: no host key options of executor's, ``--`` before the host (a list of strings)."""
        remote_command = super(RemoteCommand, self).command_line
        return end_options(strip_host_key_options(super(SSHConfigGoverns, self).command_line),
                           operands=2 if remote_command else 1)


class ConfiguredRemoteCommand(OwnSessionOption, NoPasswordPrompt, SSHConfigGoverns, RemoteCommand, RemoteSearchPath):

    """
    A remote command whose host key checking follows the user's SSH configuration.

    Its ``ssh`` can start in a session of its own (see :class:`.OwnSessionOption`),
    its sudo never asks for a password (see :class:`.NoPasswordPrompt`), and
    it finds the system programs there (see :class:`.RemoteSearchPath`).
    """


class ConfiguredRemoteContext(RemoteContext):

    """
    A remote context that runs :class:`ConfiguredRemoteCommand` objects.

    While :attr:`control_path` is set (see :func:`.shared_connection()`), its
    commands go through that shared connection.
    """

    @property
    def command_type(self):
        """The type of command objects created by this context (:class:`ConfiguredRemoteCommand`)."""
        return ConfiguredRemoteCommand

    @mutable_property
    def control_path(self):
        """The control socket of the open shared connection (a string), or :data:`None` when there is none."""
        return None

    @property
    def client_options(self):
        """The ``ssh`` options that send a command through the shared connection (a list of strings, maybe empty)."""
        if not self.control_path:
            return []
        return ['-o', 'ControlMaster=no', '-o', 'ControlPath=%s' % self.control_path]

    @property
    def rsync_shell(self):
        """
        The value for rsync's ``--rsh`` (a string), which uses the shared connection while it is open.

        It names the user (``-l``) and ends ssh's options (``--``), so rsync
        must be given the host without ``USER@`` (rsync puts the host right
        after this command).
        """
        user = ['-l', self.ssh_user] if self.ssh_user else []
        return ' '.join(['ssh'] + [shlex.quote(option) for option in self.client_options + user] + ['--'])

    def get_options(self):
        """The default options of the context's commands, with :attr:`client_options` while they apply."""
        options = super(ConfiguredRemoteContext, self).get_options()
        if self.control_path:
            options.setdefault('ssh_command', ['ssh'] + self.client_options)
        return options

    @property
    def logs_in_as_root(self):
        """:data:`True` when the SSH user is ``root`` (otherwise commands that need root run with sudo)."""
        return self.ssh_user == 'root'

    @mutable_property
    def connection_count(self):
        """How many SSH connections (logins) the context's commands have opened so far (an integer)."""
        return 0

    def prepare_command(self, command, options):
        """Create a command object, counting the SSH connection that it will open (see :func:`opens_connection()`)."""
        cmd = super(ConfiguredRemoteContext, self).prepare_command(command, options)
        if opens_connection(cmd.command_line):
            self.connection_count += 1
        return cmd


def opens_connection(ssh_command_line):
    """
    Check whether an ``ssh`` command logs in, or only talks to a shared connection's master.

    :param ssh_command_line: The command line (a list of strings).
    :returns: :data:`False` for control requests (``-O exit``) and for
              commands that go through a master connection
              (``ControlMaster=no``), :data:`True` for all others.
    """
    return '-O' not in ssh_command_line and 'ControlMaster=no' not in ssh_command_line


def strip_host_key_options(command_line):
    """
    Remove the ``-o`` options named in :data:`HOST_KEY_OPTIONS` from an ``ssh`` command line.

    :param command_line: The command line (a list of strings).
    :returns: A new list of strings.
    """
    result = []
    skip_next = False
    for position, argument in enumerate(command_line):
        if skip_next:
            skip_next = False
        elif argument == '-o' and command_line[position + 1:position + 2] and \
                command_line[position + 1].startswith(HOST_KEY_OPTIONS):
            skip_next = True
        else:
            result.append(argument)
    return result


def end_options(command_line, operands):
    """
    End the options of an ``ssh`` command line with ``--``, so that neither the host nor the command is an option.

    :param command_line: An ``ssh`` command line (a list of strings) that
                         ends with the host and maybe the remote command.
    :param operands: How many arguments at the end are not options (1 for
                     the host alone, 2 for the host and a remote command).
    :returns: A new list of strings.
    """
    position = len(command_line) - operands
    return command_line[:position] + ['--'] + command_line[position:]


def configured_ssh_user(ssh_alias):
    """
    Ask ``ssh -G`` which user the SSH configuration logs in as on a host.

    :param ssh_alias: The host name or ``Host`` alias (a string).
    :returns: The user name (a string), or :data:`None` when ``ssh -G``
              doesn't answer (OpenSSH before 6.8).
    """
    command = LocalContext().execute('ssh', '-G', '--', ssh_alias, capture=True, capture_stderr=True,
                                     check=False, shell=False, tty=False)
    if command.succeeded:
        for line in command.output.splitlines():
            key, _, value = line.partition(' ')
            if key == 'user' and value:
                return value
    return None


def create_remote_context(ssh_alias, ssh_user=None):
    """
    Create the execution context of a destination reached over SSH.

    :param ssh_alias: The host name or ``Host`` alias (a string).
    :param ssh_user: The user to log in as (a string), or :data:`None` to
                     use the one that the SSH configuration picks.
    :returns: A :class:`ConfiguredRemoteContext`.
    """
    return ConfiguredRemoteContext(ssh_alias=ssh_alias, ssh_user=ssh_user or configured_ssh_user(ssh_alias),
                                   tty=False)


def check_remote_rsync(context):
    """
    Check that ``rsync`` is installed on the destination, before anything is changed.

    :param context: A :class:`ConfiguredRemoteContext`.
    :raises: :exc:`.SSHConnectionError` when the connection fails, or
             :exc:`.RemoteCommandError` when rsync is missing.
    """
    command = ('rsync', '--version')
    probe = context.execute(*command, capture=True, capture_stderr=True, check=False, shell=False)
    if probe.error_type is RemoteConnectFailed:
        raise SSHConnectionError(explain_ssh_failure(context.ssh_alias, decode_output(probe.stderr)))
    if probe.error_type is RemoteCommandNotFound:
        raise RemoteCommandError("rsync is not installed on %s (or not on the PATH of %s there): install it there."
                                 % (context.ssh_alias, context.ssh_user or "the SSH user"))
    if not probe.succeeded:
        raise RemoteCommandError("'%s' failed on %s with exit code %i: %s"
                                 % (' '.join(command), context.ssh_alias, probe.returncode,
                                    last_line(decode_output(probe.stderr)) or "no error message"))


def check_sudo(context):
    """
    Check that an SSH user who isn't root can use sudo without a password, before anything is changed.

    The commands on the destination and the receiving rsync then run as root
    through sudo (see :func:`.destination_options()`), which can't ask for a password.

    :param context: A :class:`ConfiguredRemoteContext`.
    :raises: :exc:`.SSHConnectionError` when the login fails, or
             :exc:`.RemoteCommandError` when ``sudo -n -k true`` fails; the
             message gives the sudoers line that lets the user in.
    """
    if context.logs_in_as_root:
        return
    probe = context.execute(*SUDO_PROBE, capture=True, capture_stderr=True, check=False, shell=False)
    if probe.error_type is RemoteConnectFailed:
        raise SSHConnectionError(explain_ssh_failure(context.ssh_alias, decode_output(probe.stderr)))
    if not probe.succeeded:
        detail = ("sudo is not installed" if probe.error_type is RemoteCommandNotFound
                  else describe_probe_failure(probe))
        raise RemoteCommandError(describe_sudo_refusal(context.ssh_user or 'USER', detail, context.ssh_alias))


def explain_ssh_failure(host, stderr):
    """
    Explain why an ``ssh`` command failed, in one line.

    :param host: The host name or ``Host`` alias (a string).
    :param stderr: What ``ssh`` wrote to its standard error (a string).
    :returns: A message that names the problem and the fix (a string).
    """
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for substrings, template in SSH_FAILURES:
        for line in lines:
            if any(substring.lower() in line.lower() for substring in substrings):
                return template.format(host=host, detail=line.rstrip('.'))
    detail = lines[-1] if lines else "no error message"
    return "The SSH connection to %s failed (%s). Try 'ssh %s' to see why." % (host, detail.rstrip('.'), host)


@contextlib.contextmanager
def translate_remote_errors():
    """
    Turn executor's exceptions for failed remote commands into this program's exceptions.

    Use it in a ``with`` statement around code that runs commands on the
    destination system.

    :raises: :exc:`.SSHConnectionError` for a broken connection,
             :exc:`.ProgramNotFoundError` for a program that isn't
             installed there (see :func:`.program_not_found()`) and
             :exc:`.RemoteCommandError` for a failing remote command.
    """
    try:
        yield
    except RemoteConnectFailed as e:
        raise SSHConnectionError("The SSH connection to %s failed while running '%s': check the connection "
                                 "and try again (the earlier snapshots are intact)."
                                 % (e.command.ssh_alias, render_command(e.command.command)))
    except RemoteCommandFailed as e:
        missing = program_not_found(e.command)
        if missing:
            raise ProgramNotFoundError(missing)
        raise RemoteCommandError("'%s' failed on %s with exit code %i (see its message above)."
                                 % (render_command(e.command.command), e.command.ssh_alias, e.returncode))


def render_command(command_line):
    """
    Show a command line the way a shell would read it, in one line, without the text of shell code.

    :param command_line: The program and its arguments (a list of strings).
    :returns: A string, where ``…`` stands for the shell code after ``sh -c``
              (the code's name, ``$0``, and its arguments follow it).
    """
    arguments = list(command_line)
    for position in range(len(arguments) - 2):
        if arguments[position:position + 2] == ['sh', '-c']:
            shown = ' '.join(part for part in (quote(arguments[:position + 2]), '…', quote(arguments[position + 3:]))
                             if part)
            break
    else:
        shown = quote(arguments)
    return shown.replace('\n', '\\n')


def decode_output(output):
    """
    Decode the captured output of a command.

    :param output: Bytes, or :data:`None` when nothing was captured.
    :returns: A string.
    """
    return (output or b'').decode('utf-8', 'replace')


def last_line(text):
    """
    Find the last line of text that isn't empty.

    :param text: A string.
    :returns: The line without surrounding white space (a string, empty when there is none).
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ''
