"""
SSH tunnels to rsync daemons.

An rsync daemon speaks plain text; ``-t/--tunnel HOST`` carries its traffic
through SSH instead. An ``ssh -N -L`` process forwards a free port on this
system's loopback interface to the daemon's port on HOST, and rsync connects
to that local port. :class:`LoopbackTunnel` is executor's
:class:`~executor.ssh.client.SecureTunnel` with three changes:

- the forwarded port listens on ``127.0.0.1`` only, whatever ``GatewayPorts``
  says, so no other system can reach the daemon through it;
- ``ExitOnForwardFailure=yes`` makes ssh exit when it can't forward the port,
  and :meth:`~LoopbackTunnel.start()` notices when ssh exits, so a failed
  login is reported at once (executor's version keeps waiting for 30
  seconds);
- host keys are checked as ``~/.ssh/config`` says (see
  :class:`.SSHConfigGoverns`).

:func:`open_tunnel()` also checks that an rsync daemon answers at the far end
before rsync starts.
"""

import contextlib
import logging
import re
import socket
import subprocess
import time

from executor.ssh.client import SecureTunnel
from executor.tcp import TimeoutError as PortTimeoutError
from property_manager import mutable_property

from rsync_system_backup.connections.ssh import SSHConfigGoverns, decode_output, explain_ssh_failure
from rsync_system_backup.exceptions import InvalidOptionError, SSHConnectionError, TunnelError

RSYNCD_PORT = 873
"""The port that rsync daemons listen on by default (an integer)."""

LOOPBACK_ADDRESS = '127.0.0.1'
"""The address that the local end of a tunnel listens on."""

RSYNCD_GREETING = b'@RSYNCD:'
"""The first bytes that an rsync daemon sends to every client."""

TUNNEL_SPEC_PATTERN = re.compile(r'^(?:(?P<user>[^@]+)@)?(?P<host>\[[^\]/]+\]|[^@:/\[\]]+)(?::(?P<port>[^:]*))?$')
"""Matches the value of ``-t/--tunnel``: ``[USER@]HOST[:PORT]``, where PORT is the SSH server's port."""

STARTUP_TIMEOUT = 30
"""How many seconds the tunnel may take to start forwarding (ssh's own ConnectTimeout is 10 seconds)."""

GREETING_TIMEOUT = 10
"""How many seconds the rsync daemon at the far end may take to greet."""

CLOSE_TIMEOUT = 10
"""How many seconds ssh gets to exit when the tunnel is closed, before it is killed."""

logger = logging.getLogger(__name__)


class LoopbackTunnel(SSHConfigGoverns, SecureTunnel):

    """
    An SSH tunnel whose local end listens on the loopback interface only.

    Create it with :func:`create_tunnel()`, or like executor's
    :class:`~executor.ssh.client.SecureTunnel` (``ssh_alias``,
    ``ssh_user``, ``port`` for the SSH server and ``remote_port`` for the
    daemon). It captures ssh's standard error, to explain failures.
    """

    @mutable_property
    def capture_stderr(self):
        """:data:`True`, so that ssh's error messages can be explained (see :func:`.explain_ssh_failure()`)."""
        return True

    @property
    def command_line(self):
        """The ``ssh -N -L 127.0.0.1:LOCAL:localhost:REMOTE`` command line (a list of strings)."""
        command = super(LoopbackTunnel, self).command_line
        forward = command.index('-L') + 1
        command[forward] = '%s:%s' % (LOOPBACK_ADDRESS, command[forward])
        command.extend(('-o', 'ExitOnForwardFailure=yes'))
        return command

    @mutable_property(cached=True)
    def local_port(self):
        """A free port on :data:`LOOPBACK_ADDRESS`, chosen by the kernel (an integer)."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LOOPBACK_ADDRESS, 0))
            return sock.getsockname()[1]

    def start(self, **options):
        """
        Start ssh and wait until the local port accepts connections.

        :param options: Passed on to :meth:`executor.ExternalCommand.start()`.
        :raises: :exc:`.SSHConnectionError` as soon as ssh exits (which it
                 does when it can't log in or can't forward the port), or
                 :exc:`.TunnelError` after :data:`STARTUP_TIMEOUT` seconds.
                 ssh is stopped in both cases.
        """
        # SecureTunnel.start() would wait for the port even after ssh exited.
        super(SecureTunnel, self).start(**options)
        try:
            self.wait_until_listening()
        except BaseException:
            close_tunnel(self)
            raise

    def wait_until_listening(self):
        """
        Wait until ssh listens on :attr:`local_port`.

        :raises: See :meth:`start()`.
        """
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not accepts_connections(self.local_port):
            if not self.is_running:
                self.wait(check=False)
                raise SSHConnectionError("Can't open the SSH tunnel: " + explain_ssh_failure(
                    self.ssh_alias, decode_output(self.stderr)))
            if time.monotonic() > deadline:
                raise TunnelError("The SSH tunnel to %s didn't start forwarding within %i seconds: "
                                  "try 'ssh -N -L %i:localhost:%i %s' to see why."
                                  % (self.ssh_alias, STARTUP_TIMEOUT, self.local_port, self.remote_port,
                                     self.ssh_alias))
            time.sleep(0.05)


def parse_tunnel_spec(spec):
    """
    Split the value of ``-t/--tunnel`` into its parts.

    :param spec: ``[USER@]HOST[:PORT]`` (a string); PORT is the SSH server's
                 port and HOST may be a ``Host`` alias from ``~/.ssh/config``.
    :returns: A tuple of three values: the user (a string or :data:`None`),
              the host (a string, IPv6 addresses without brackets) and the
              port (an integer or :data:`None`).
    :raises: :exc:`.InvalidOptionError` when the value doesn't fit.
    """
    match = TUNNEL_SPEC_PATTERN.match(spec.strip()) if isinstance(spec, str) else None
    if not match:
        raise InvalidOptionError("Can't parse the tunnel %r: expected [USER@]HOST[:SSH_PORT], for example "
                                 "backup@server.example.com:2222." % (spec,))
    port = match.group('port')
    if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
        raise InvalidOptionError("The SSH port %r of the tunnel %r is not a number from 1 to 65535." % (port, spec))
    return match.group('user'), match.group('host').strip('[]'), int(port) if port else None


def create_tunnel(spec, remote_port=RSYNCD_PORT):
    """
    Create (but don't open) the tunnel that ``-t/--tunnel`` asks for.

    :param spec: ``[USER@]HOST[:PORT]`` (see :func:`parse_tunnel_spec()`).
    :param remote_port: The rsync daemon's port on HOST (an integer).
    :returns: A :class:`LoopbackTunnel`.
    :raises: :exc:`.InvalidOptionError` when `spec` doesn't fit.
    """
    user, host, port = parse_tunnel_spec(spec)
    return LoopbackTunnel(ssh_alias=host, ssh_user=user, port=port, remote_port=remote_port)


@contextlib.contextmanager
def open_tunnel(tunnel):
    """
    Keep an SSH tunnel to an rsync daemon open for the duration of a ``with`` block.

    :param tunnel: A :class:`~executor.ssh.client.SecureTunnel` (normally a
                   :class:`LoopbackTunnel`) that hasn't been started.
    :returns: A context manager that gives the tunnel.
    :raises: :exc:`.SSHConnectionError` or :exc:`.TunnelError` when the
             tunnel doesn't work; ssh has been stopped by then. ssh is also
             stopped when the ``with`` block ends, however it ends.
    """
    logger.info("Opening an SSH tunnel to port %i on %s ..", tunnel.remote_port, tunnel.ssh_alias)
    try:
        tunnel.start()
    except PortTimeoutError as e:
        close_tunnel(tunnel)
        raise TunnelError("The SSH tunnel to %s didn't start: %s" % (tunnel.ssh_alias, e))
    try:
        check_daemon_answers(tunnel)
        logger.info("The SSH tunnel forwards %s:%i to port %i on %s.",
                    LOOPBACK_ADDRESS, tunnel.local_port, tunnel.remote_port, tunnel.ssh_alias)
        yield tunnel
    finally:
        close_tunnel(tunnel)


def check_daemon_answers(tunnel):
    """
    Check that an rsync daemon greets through a tunnel.

    :param tunnel: An open :class:`~executor.ssh.client.SecureTunnel`.
    :raises: :exc:`.TunnelError` when nothing (or something else) answers.
    """
    try:
        with socket.create_connection((LOOPBACK_ADDRESS, tunnel.local_port), timeout=GREETING_TIMEOUT) as sock:
            greeting = sock.recv(len(RSYNCD_GREETING))
    except OSError as e:
        greeting = str(e).encode()
    if not greeting.startswith(RSYNCD_GREETING):
        raise TunnelError(
            "The SSH tunnel to %s works, but no rsync daemon answers on port %i there%s: check that rsync "
            "--daemon runs on %s and listens on that port (use --daemon-port for another port)."
            % (tunnel.ssh_alias, tunnel.remote_port,
               " (got %r)" % greeting if greeting else "", tunnel.ssh_alias)
        )


def accepts_connections(port):
    """
    Check whether something listens on a port of :data:`LOOPBACK_ADDRESS`.

    :param port: The port number (an integer).
    :returns: :data:`True` when a connection was accepted.
    """
    try:
        with socket.create_connection((LOOPBACK_ADDRESS, port), timeout=1):
            return True
    except OSError:
        return False


def close_tunnel(tunnel):
    """
    Stop the ssh process of a tunnel (if it runs) and release its resources.

    ssh gets :data:`CLOSE_TIMEOUT` seconds to exit after SIGTERM, then it is killed.

    :param tunnel: A :class:`~executor.ssh.client.SecureTunnel`.
    """
    if tunnel.is_running:
        tunnel.subprocess.terminate()
        try:
            tunnel.subprocess.wait(timeout=CLOSE_TIMEOUT)
        except subprocess.TimeoutExpired:
            tunnel.subprocess.kill()
        logger.info("Closed the SSH tunnel to %s.", tunnel.ssh_alias)
    if tunnel.was_started:
        tunnel.wait(check=False)
