"""
SSH tunnels to rsync daemons.

An rsync daemon speaks plain text; ``-t/--tunnel HOST`` carries its traffic
through SSH instead, without opening any port on this system: rsync starts
``ssh ... -W localhost:PORT -- HOST`` itself for its connection to the daemon
(rsync's ``RSYNC_CONNECT_PROG``, see :attr:`OpenTunnel.environment`) and
talks to the daemon through that ssh's standard input and output. No other
process on this system can get in between. (A forwarded local port, ``ssh
-L``, could: the port is free between the moment it is chosen and the moment
ssh listens on it, after logging in, and a local process that binds it in
between receives the whole system.)

:func:`open_tunnel()` checks once, before rsync starts, that ssh logs in and
that an rsync daemon greets at the far end, and explains what fails. The
tunnel is described by an executor :class:`~executor.ssh.client.SecureTunnel`
(:func:`create_tunnel()` makes a :class:`ConfiguredTunnel`, whose host keys
are checked as ``~/.ssh/config`` says; API users may pass their own), whose
ssh settings and ``remote_port`` are used; it is never started itself, so its
``local_port`` is never opened.
"""

import contextlib
import logging
import os
import re
import select
import shlex
import time

from executor.contexts import LocalContext
from executor.ssh.client import SecureTunnel

from rsync_system_backup.checks.values import is_port_number
from rsync_system_backup.connections.ssh import decode_output, explain_ssh_failure, strip_host_key_options
from rsync_system_backup.exceptions import InvalidOptionError, SSHConnectionError, TunnelError

RSYNCD_PORT = 873
"""The port that rsync daemons listen on by default (an integer)."""

RSYNCD_GREETING = b'@RSYNCD:'
"""The first bytes that an rsync daemon sends to every client."""

TUNNEL_SPEC_PATTERN = re.compile(r'^(?:(?P<user>[^@]+)@)?(?P<host>\[[^\]/]+\]|[^@:/\[\]]+)(?::(?P<port>[^:]*))?$')
"""Matches the value of ``-t/--tunnel``: ``[USER@]HOST[:PORT]``, where PORT is the SSH server's port."""

STARTUP_TIMEOUT = 30
"""How many seconds the first connection may take to log in and get the daemon's greeting."""

FORWARDING_FAILURES = ('open failed', 'forwarding failed')
"""What ssh says when it logged in but can't connect to the daemon's port."""

logger = logging.getLogger(__name__)


class ConfiguredTunnel(SecureTunnel):

    """
    The tunnel that ``-t/--tunnel`` asks for (see :func:`create_tunnel()`).

    It takes executor's :class:`~executor.ssh.client.SecureTunnel` settings
    (``ssh_alias``, ``ssh_user``, ``port`` for the SSH server, ``remote_port``
    for the daemon), and lets ``~/.ssh/config`` decide on host keys (see
    :class:`.SSHConfigGoverns`).
    """

    @property
    def command_line(self):
        """The ``ssh ... -W HOST:PORT -- ALIAS`` command that rsync runs (see :func:`forwarding_command()`)."""
        return forwarding_command(self)


class OpenTunnel(object):

    """A tunnel that works (see :func:`open_tunnel()`): what rsync needs to reach the daemon through it."""

    def __init__(self, ssh_alias, remote_port, command):
        """
        Describe a working tunnel.

        :param ssh_alias: The SSH host (a string).
        :param remote_port: The daemon's port there (an integer).
        :param command: The ``ssh -W`` command (a list of strings, see :func:`forwarding_command()`).
        """
        self.ssh_alias = ssh_alias
        self.remote_port = remote_port
        self.command = command

    @property
    def environment(self):
        """
        The environment variables that make rsync reach the daemon through ssh (a :class:`dict`).

        ``RSYNC_CONNECT_PROG`` is run by a shell, with ``%H`` replaced by
        the destination's host name; every ``%`` of the command is doubled.
        """
        return dict(RSYNC_CONNECT_PROG=' '.join(shlex.quote(argument) for argument in self.command).replace('%', '%%'))


def forwarding_command(tunnel):
    """
    Build the ssh command whose standard input and output connect to the daemon behind a tunnel.

    :param tunnel: A :class:`~executor.ssh.client.SecureTunnel`.
    :returns: ssh with the tunnel's options, ``-W REMOTE_HOST:REMOTE_PORT``,
              ``--`` and the host (a list of strings).
    """
    # executor's ssh options and the host, without SecureTunnel's -N and -L.
    command = super(SecureTunnel, tunnel).command_line
    if isinstance(tunnel, ConfiguredTunnel):
        command = strip_host_key_options(command)
    return command[:-1] + ['-W', '%s:%i' % (tunnel.remote_host, tunnel.remote_port), '--', command[-1]]


def parse_tunnel_spec(spec):
    """
    Split the value of ``-t/--tunnel`` into its parts.

    :param spec: ``[USER@]HOST[:PORT]`` (a string); PORT is the SSH server's
                 port and HOST may be a ``Host`` alias from ``~/.ssh/config``.
    :returns: A tuple of three values: the user (a string or :data:`None`),
              the host (a string, IPv6 addresses without brackets) and the
              port (an integer or :data:`None`).
    :raises: :exc:`.InvalidOptionError` when the value doesn't fit, or
             names a user or host that starts with ``-``.
    """
    match = TUNNEL_SPEC_PATTERN.match(spec.strip()) if isinstance(spec, str) else None
    if not match:
        raise InvalidOptionError("Can't parse the tunnel %r: expected [USER@]HOST[:SSH_PORT], for example "
                                 "backup@server.example.com:2222." % (spec,))
    for part in ('user', 'host'):
        if (match.group(part) or '').startswith('-'):
            raise InvalidOptionError("The tunnel %r names the %s %r, which starts with '-' and would reach ssh as an "
                                     "option: give a %s name that doesn't start with '-'."
                                     % (spec, part, match.group(part), part))
    port = match.group('port')
    if port is not None and not is_port_number(port):
        raise InvalidOptionError("The SSH port %r of the tunnel %r is not a number from 1 to 65535." % (port, spec))
    return match.group('user'), match.group('host').strip('[]'), int(port) if port else None


def create_tunnel(spec, remote_port=RSYNCD_PORT):
    """
    Create the tunnel that ``-t/--tunnel`` asks for.

    :param spec: ``[USER@]HOST[:PORT]`` (see :func:`parse_tunnel_spec()`).
    :param remote_port: The rsync daemon's port on HOST (an integer).
    :returns: A :class:`ConfiguredTunnel`.
    :raises: :exc:`.InvalidOptionError` when `spec` doesn't fit.
    """
    user, host, port = parse_tunnel_spec(spec)
    return ConfiguredTunnel(ssh_alias=host, ssh_user=user, port=port, remote_port=remote_port)


@contextlib.contextmanager
def open_tunnel(tunnel):
    """
    Check an SSH tunnel to an rsync daemon and let rsync use it for the duration of a ``with`` block.

    :param tunnel: A :class:`~executor.ssh.client.SecureTunnel` (normally a
                   :class:`ConfiguredTunnel`) that hasn't been started.
    :returns: A context manager that gives an :class:`OpenTunnel`.
    :raises: :exc:`.SSHConnectionError` or :exc:`.TunnelError` when the
             tunnel doesn't work (see :func:`check_daemon_answers()`).
    """
    logger.info("Opening an SSH tunnel to port %i on %s ..", tunnel.remote_port, tunnel.ssh_alias)
    opened = OpenTunnel(tunnel.ssh_alias, tunnel.remote_port, forwarding_command(tunnel))
    check_daemon_answers(opened)
    logger.info("The SSH tunnel reaches port %i on %s (rsync runs ssh -W; no local port is opened).",
                tunnel.remote_port, tunnel.ssh_alias)
    try:
        yield opened
    finally:
        logger.info("Closed the SSH tunnel to %s.", tunnel.ssh_alias)


def check_daemon_answers(tunnel):
    """
    Connect through a tunnel once, to check that ssh logs in and an rsync daemon greets.

    :param tunnel: An :class:`OpenTunnel`.
    :raises: :exc:`.SSHConnectionError` when ssh can't log in, or
             :exc:`.TunnelError` when nothing (or something else than an
             rsync daemon) answers, or nothing happens within
             :data:`STARTUP_TIMEOUT` seconds. ssh has been stopped by then.
    """
    read_fd, write_fd = os.pipe()
    with os.fdopen(write_fd, 'wb') as output:
        ssh = LocalContext().execute(*tunnel.command, asynchronous=True, input=True, stdout_file=output,
                                     capture_stderr=True, check=False, shell=False, tty=False)
    with os.fdopen(read_fd, 'rb') as replies:
        greeting = read_greeting(replies.fileno())
    ssh.subprocess.stdin.close()
    if ssh.is_running:
        ssh.subprocess.terminate()
    ssh.wait(check=False)
    if greeting is None:
        raise TunnelError("The SSH tunnel to %s didn't reach the rsync daemon within %i seconds: try "
                          "'ssh -W localhost:%i %s' to see why."
                          % (tunnel.ssh_alias, STARTUP_TIMEOUT, tunnel.remote_port, tunnel.ssh_alias))
    if greeting.startswith(RSYNCD_GREETING):
        return
    stderr = decode_output(ssh.stderr)
    if not greeting and not any(failure in stderr for failure in FORWARDING_FAILURES):
        raise SSHConnectionError("Can't open the SSH tunnel: " + explain_ssh_failure(tunnel.ssh_alias, stderr))
    raise TunnelError(
        "The SSH tunnel to %s works, but no rsync daemon answers on port %i there%s: check that rsync "
        "--daemon runs on %s and listens on that port (use --daemon-port for another port)."
        % (tunnel.ssh_alias, tunnel.remote_port, " (got %r)" % greeting if greeting else "", tunnel.ssh_alias)
    )


def read_greeting(fd):
    """
    Read the first bytes that come through a tunnel.

    :param fd: The file descriptor of ssh's standard output (an integer).
    :returns: Up to ``len(RSYNCD_GREETING)`` bytes (empty when ssh ended
              without output), or :data:`None` when nothing came within
              :data:`STARTUP_TIMEOUT` seconds.
    """
    greeting = b''
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while len(greeting) < len(RSYNCD_GREETING):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            return greeting or None
        data = os.read(fd, len(RSYNCD_GREETING) - len(greeting))
        if not data:
            break
        greeting += data
    return greeting
