# Test infrastructure: throw-away SSH servers on 127.0.0.1.

"""
Throw-away SSH servers for the test suite, and what every server of the tests shares.

A server (:class:`ChildServer`; the rsync daemon is in
:mod:`support.rsync_daemon`) listens on 127.0.0.1 only, keeps every file it
needs in a directory given by the caller (normally pytest's ``tmp_path``)
and runs as a child process of the test process, so nothing on the host
(``/etc``, ``/run``, the real ``~/.ssh``) is touched.

Example::

    with SSHServer(tmp_path / 'ssh') as server:
        env = dict(os.environ, **server.environment())
        subprocess.check_call(['rsync', '-a', 'src/', server.alias + ':/dst/'], env=env)

.. note:: OpenSSH takes ``~`` from the password database, not from
   ``$HOME``, so ``HOME=... ssh`` alone would still read ``/root/.ssh``.
   :meth:`SSHServer.environment()` therefore also puts a small ``ssh``
   wrapper (``ssh -F <home>/.ssh/config "$@"``) first on ``$PATH``; rsync,
   executor and plain ``ssh`` all pick it up from there.
"""

import os
import shlex
import shutil
import signal
import socket
import subprocess
import time

from support.processes import descendant_pids, process_exists

LOCALHOST = '127.0.0.1'
"""The only address that the servers listen on."""

DEFAULT_TIMEOUT = 10.0
"""How many seconds a server may take to start answering on its port."""


class ServerError(Exception):

    """Raised when a test server cannot be started."""


def free_port():
    """
    Find a TCP port on 127.0.0.1 that nothing listens on.

    :returns: A port number from the kernel's ephemeral (high) range.

    The port is free when this function returns; another process could
    still take it before the caller binds it (unlikely in a test run).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return sock.getsockname()[1]


def find_program(name, hint):
    """
    Find an executable on ``$PATH`` (``/usr/sbin`` and ``/sbin`` included).

    :param name: The name of the program (a string).
    :param hint: What to install when it's missing (a string).
    :returns: The absolute pathname of the program (a string).
    :raises: :exc:`ServerError` when the program is not installed.
    """
    search_path = os.pathsep.join([os.environ.get('PATH', os.defpath), '/usr/sbin', '/sbin'])
    program = shutil.which(name, path=search_path)
    if not program:
        raise ServerError("Program %r not found, please install %s!" % (name, hint))
    return program


class ChildServer(object):

    """
    Base class for a server that runs as a child process of the tests.

    Subclasses implement :meth:`prepare()` (write files, return the command
    line) and set :attr:`name`, :attr:`greeting`, :attr:`port` and
    :attr:`log_file`.
    """

    name = 'server'
    """A name for error messages (a string)."""

    greeting = b''
    """The bytes that the server sends first to every client."""

    def __init__(self, directory, timeout=DEFAULT_TIMEOUT):
        """
        Initialize a :class:`ChildServer` object.

        :param directory: A directory that belongs to this server alone
                          (a string or path, created when missing).
        :param timeout: How many seconds to wait for the server to answer on its
                        port (a number).
        """
        self.directory = str(directory)
        self.timeout = timeout
        self.process = None
        self.port = None
        self.log_file = None
        os.makedirs(self.directory, exist_ok=True)

    @property
    def pid(self):
        """The process id of the server (an integer, :data:`None` before :meth:`start()`)."""
        return self.process.pid if self.process else None

    def prepare(self):
        """
        Write the files that the server needs.

        :returns: The command line that starts the server (a list of strings).
        """
        raise NotImplementedError()

    def start(self):
        """
        Start the server and wait until it answers on :attr:`port`.

        :returns: The server object itself.
        :raises: :exc:`ServerError` when the server exits or doesn't answer
                 within :attr:`timeout` seconds; the message includes the
                 server's log. The server is stopped in that case.
        """
        if self.process is not None:
            raise ServerError("This %s was already started!" % self.name)
        command = self.prepare()
        with open(self.log_file, 'a') as log:
            # A session (and process group) of its own, so stop() can signal
            # it without touching the test process.
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True,
            )
        try:
            self.wait_until_connectable()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_until_connectable(self):
        """
        Wait until the server answers on :attr:`port` (see :meth:`greets()`).

        :raises: :exc:`ServerError` when the server exits or doesn't answer
                 within :attr:`timeout` seconds.
        """
        deadline = time.monotonic() + self.timeout
        while True:
            if self.process.poll() is not None:
                problem = "exited with code %d" % self.process.returncode
            else:
                if self.greets():
                    return
                problem = "does not answer on port %d after %s seconds" % (self.port, self.timeout)
            if self.process.returncode is not None or time.monotonic() > deadline:
                raise ServerError("The %s %s! Its log (%s):\n%s" % (self.name, problem, self.log_file, self.read_log()))
            time.sleep(0.05)

    def greets(self):
        """
        Check whether the server answers on :attr:`port` with :attr:`greeting`.

        :returns: :data:`True` when it does, :data:`False` otherwise.

        Checking the greeting (not just the connection) tells our server
        apart from another program that already listens on the port.
        """
        try:
            with socket.create_connection((LOCALHOST, self.port), timeout=1) as sock:
                data = b''
                while len(data) < len(self.greeting):
                    chunk = sock.recv(len(self.greeting) - len(data))
                    if not chunk:
                        break
                    data += chunk
                return data == self.greeting
        except OSError:
            return False

    def read_log(self):
        """
        Read the server's log file.

        :returns: The contents of :attr:`log_file` (a string, empty when missing).
        """
        try:
            with open(self.log_file, errors='replace') as handle:
                return handle.read()
        except OSError:
            return ''

    def stop(self, timeout=5.0):
        """
        Stop the server and every process it started (idempotent).

        :param timeout: How many seconds to wait before SIGTERM becomes
                        SIGKILL (a number).

        Only the server process, its process group and its descendants are
        signalled; per-connection processes (which may start a session of
        their own) are found through :func:`descendant_pids()`.
        """
        if self.process is None or self.process.poll() is not None:
            return  # Not started, already stopped or exited by itself.
        pids = [self.process.pid] + descendant_pids(self.process.pid)
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        for pid in pids[1:]:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while any(process_exists(pid) for pid in pids) and time.monotonic() < deadline:
            self.process.poll()  # Reap the server as soon as it exits.
            time.sleep(0.02)
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        for pid in pids[1:]:
            if process_exists(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.process.wait()

    def __enter__(self):
        """Start the server (see :meth:`start()`) and return it."""
        return self.start()

    def __exit__(self, exc_type=None, exc_value=None, traceback=None):
        """Stop the server (see :meth:`stop()`)."""
        self.stop()


class SSHServer(ChildServer):

    """
    An OpenSSH server on 127.0.0.1 with a generated client configuration.

    Files in :attr:`directory`: the host key, ``authorized_keys``,
    ``sshd_config``, ``sshd.log``, ``bin/ssh`` (see :meth:`environment()`)
    and the client's home directory ``home/`` with ``.ssh/config``, the
    client key pair and ``known_hosts``.

    sshd runs in the foreground in a mount namespace of its own, with a
    private tmpfs on ``/run`` so it can have ``/run/sshd`` (needed when it
    runs as root) without creating it on the host. This needs root.
    """

    name = 'SSH server'
    greeting = b'SSH-2.0-'

    def __init__(self, directory, alias='backup-server', user='root', timeout=DEFAULT_TIMEOUT):
        """
        Initialize an :class:`SSHServer` object (:meth:`start()` starts it).

        :param directory: See :class:`ChildServer`.
        :param alias: The ``Host`` alias in the client configuration (a string).
        :param user: The user that the client logs in as (a string).
        :param timeout: See :class:`ChildServer`.
        """
        super(SSHServer, self).__init__(directory, timeout)
        self.alias = alias
        self.user = user
        self.port = free_port()
        self.home = os.path.join(self.directory, 'home')
        self.identity_file = os.path.join(self.home, '.ssh', 'id_ed25519')
        self.known_hosts_file = os.path.join(self.home, '.ssh', 'known_hosts')
        self.config_file = os.path.join(self.home, '.ssh', 'config')
        self.host_key_file = os.path.join(self.directory, 'ssh_host_ed25519_key')
        self.authorized_keys_file = os.path.join(self.directory, 'authorized_keys')
        self.server_config_file = os.path.join(self.directory, 'sshd_config')
        self.ssh_program = os.path.join(self.directory, 'bin', 'ssh')
        self.log_file = os.path.join(self.directory, 'sshd.log')

    def prepare(self):
        """
        Generate the keys and the server and client configuration.

        :returns: The command line that starts sshd (a list of strings).
        """
        sshd = find_program('sshd', 'openssh-server')
        ssh = find_program('ssh', 'openssh-client')
        keygen = find_program('ssh-keygen', 'openssh-client')
        unshare = find_program('unshare', 'util-linux')
        os.makedirs(os.path.dirname(self.config_file), mode=0o700, exist_ok=True)
        os.makedirs(os.path.dirname(self.ssh_program), exist_ok=True)
        for key_file in (self.host_key_file, self.identity_file):
            if not os.path.exists(key_file):
                subprocess.check_call([keygen, '-q', '-N', '', '-t', 'ed25519', '-C', 'test', '-f', key_file])
        shutil.copyfile(self.identity_file + '.pub', self.authorized_keys_file)
        write_lines(self.server_config_file, [
            'ListenAddress %s' % LOCALHOST,
            'Port %d' % self.port,
            'HostKey %s' % quote_option(self.host_key_file),
            'AuthorizedKeysFile %s' % quote_option(self.authorized_keys_file),
            'PubkeyAuthentication yes',
            'PasswordAuthentication no',
            'KbdInteractiveAuthentication no',
            'UsePAM no',
            'StrictModes no',
            'PermitRootLogin prohibit-password',
            'PidFile none',
            'LogLevel VERBOSE',
            'Subsystem sftp internal-sftp',
        ])
        write_lines(self.config_file, [
            'Host %s' % self.alias,
            '    HostName %s' % LOCALHOST,
            '    Port %d' % self.port,
            '    User %s' % self.user,
            '    IdentityFile %s' % quote_option(self.identity_file),
            '    IdentitiesOnly yes',
            '    UserKnownHostsFile %s' % quote_option(self.known_hosts_file),
            '    GlobalKnownHostsFile /dev/null',
            '    StrictHostKeyChecking accept-new',
            '    BatchMode yes',
            '    ConnectTimeout 10',
        ])
        write_lines(self.ssh_program, [
            '#!/bin/sh',
            '# ssh ignores $HOME, so point it at the test configuration.',
            'exec %s -F %s "$@"' % (shlex.quote(ssh), shlex.quote(self.config_file)),
        ])
        os.chmod(self.ssh_program, 0o755)
        script = 'mount -t tmpfs tmpfs /run && mkdir -m755 /run/sshd && exec %s' % ' '.join(
            shlex.quote(arg) for arg in [sshd, '-D', '-e', '-f', self.server_config_file, '-E', self.log_file]
        )
        return [unshare, '--mount', 'sh', '-c', script]

    def environment(self):
        """
        Get the environment variables that point an SSH client at this server.

        :returns: A dictionary with ``HOME`` (:attr:`home`) and ``PATH``
                  (the ``ssh`` wrapper's directory first), to merge into the
                  environment: ``dict(os.environ, **server.environment())``.
        """
        return {
            'HOME': self.home,
            'PATH': os.pathsep.join([os.path.dirname(self.ssh_program), os.environ.get('PATH', os.defpath)]),
        }


def quote_option(value):
    """
    Quote a value for an OpenSSH configuration file when needed.

    :param value: The value (a string).
    :returns: The value, in double quotes when it contains whitespace.
    """
    return '"%s"' % value if any(c.isspace() for c in value) else value


def write_lines(path, lines):
    """
    Write a text file.

    :param path: The pathname of the file (a string).
    :param lines: The lines of text (an iterable of strings without newlines).
    """
    with open(path, 'w') as handle:
        handle.write(''.join(line + '\n' for line in lines))
