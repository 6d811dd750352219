"""
One SSH connection for all of a run's commands and its transfer (OpenSSH connection multiplexing).

:func:`shared_connection()` starts a master connection whose control socket
lives in a private temporary directory; while it is open, the destination
context's commands, the holder of the lock on the backup set (see
:mod:`.backup_set.lock`) and rsync's ``--rsh`` connect through it, so the
destination sees one login for all of them.

The master connection runs one session of its own, ``cat`` reading the
standard input that this process holds open and never writes to. With
``ssh -M -N`` (no session) the first command through the connection took
about 45 ms longer than the ones after it (43 ms of the 50 ms it took on
loopback, measured); the master's own session takes that cost while it logs
in, beside this process's other work. The session also ends the connection
when this process is gone however it ended (SIGKILL included): its standard
input closes, ``cat`` ends, and so does the master once its last command has.

The master connection must outlive the first Control-C or SIGTERM, because
the cleanups of an interrupted run (and the lock's holder, which must keep
the lock until they are done) still use it. So it runs in a session of its
own (the terminal's signals don't reach it), :func:`.stop_descendants()`
spares it (see :func:`.spare()`), and only :func:`shared_connection()`
closes it, when the ``with`` block is over.
"""

import contextlib
import logging
import os
import shutil
import subprocess
import tempfile
import time

from rsync_system_backup.connections.ssh import decode_output, explain_ssh_failure
from rsync_system_backup.exceptions import SSHConnectionError
from rsync_system_backup.processes.signals import spare, unspare
from rsync_system_backup.processes.waiting import wait_for_exit

MASTER_TIMEOUT = 30
"""How many seconds the shared connection may take to log in (ssh's own ConnectTimeout is 10 seconds)."""

STOP_TIMEOUT = 5
"""
How many seconds a master connection may take to end after its input closed (then it is terminated).

Its own session (``cat``) ends with its input, and the master with its last
session: with no command left, on loopback that took about 3 ms, against
about 10 ms for an ``ssh -O exit`` process (measured at the end of a run).
"""

LOGIN_POLL_INTERVAL = 0.005
"""How often (in seconds) to look whether the control socket exists yet: every run waits for that once."""

MAX_CONTROL_PATH = 90
"""
The longest control socket pathname that ssh can use: a Unix socket's name
has room for 107 bytes, and ssh adds 17 characters while it creates it.
"""

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def shared_connection(context):
    """
    Send the commands of a context through one SSH connection for the duration of a ``with`` block.

    A master connection (``ssh -M``, with ``cat`` as its session) logs in once; its control socket
    lives in a private temporary directory. While the block runs, the
    context's commands connect through it (:attr:`~.ConfiguredRemoteContext.control_path`)
    and :attr:`~.ConfiguredRemoteContext.rsync_shell` gives rsync the same.
    Afterwards the master connection is closed and the directory removed,
    however the block ends.

    :param context: A :class:`.ConfiguredRemoteContext`.
    :returns: A context manager that gives the context.
    :raises: :exc:`.SSHConnectionError` when the master connection can't log in.
    """
    directory = tempfile.mkdtemp(prefix='rsync-system-backup-', dir=control_directory_parent())
    control_path = os.path.join(directory, 'control')
    try:
        master = start_master_connection(context, control_path)
        try:
            context.control_path = control_path
            yield context
        finally:
            del context.control_path
            stop_master_connection(context, master)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def control_directory_parent():
    """
    Choose where to create the private directory for the control socket.

    :returns: The directory for temporary files (see :func:`tempfile.gettempdir()`),
              or ``/tmp`` when that name is too long for a control socket
              (see :data:`MAX_CONTROL_PATH`).
    """
    parent = tempfile.gettempdir()
    example = os.path.join(parent, 'rsync-system-backup-XXXXXXXX', 'control')
    return parent if len(os.fsencode(example)) <= MAX_CONTROL_PATH else '/tmp'


def start_master_connection(context, control_path):
    """
    Start an SSH master connection and wait until its control socket exists (it does once ssh has logged in).

    The master runs in a session of its own and is spared by
    :func:`.stop_descendants()` (see the module's description), until
    :func:`stop_master_connection()` closes it.

    :param context: A :class:`.ConfiguredRemoteContext`.
    :param control_path: The pathname of the control socket (a string).
    :returns: The running ``ssh -M`` command.
    :raises: :exc:`.SSHConnectionError` as soon as ssh exits, or after
             :data:`MASTER_TIMEOUT` seconds; ssh has been stopped by then
             (also when a signal interrupts the wait).
    """
    # Whatever the session writes (a login script's chatter) must not mix with this program's output.
    with open(os.devnull, 'wb') as nowhere:
        master = context.execute('cat', ssh_command=['ssh', '-M', '-o', 'ControlPersist=no', '-o',
                                                     'ControlPath=%s' % control_path],
                                 asynchronous=True, input=True, stdout_file=nowhere, capture_stderr=True,
                                 check=False, own_session=True, shell=False)
    spare(master.pid)
    try:
        wait_for_login(context, master, control_path)
    except BaseException:
        if master.is_running:
            master.terminate()
        master.wait(check=False)
        unspare(master.pid)
        raise
    logger.debug("Sharing one SSH connection to %s (control socket %s).", context.ssh_alias, control_path)
    return master


def wait_for_login(context, master, control_path):
    """
    Wait until an SSH master connection has logged in (its control socket exists).

    :param context: The :class:`.ConfiguredRemoteContext` that started it.
    :param master: The running ``ssh -M`` command.
    :param control_path: The pathname of its control socket (a string).
    :raises: :exc:`.SSHConnectionError` as soon as ssh exits, or after
             :data:`MASTER_TIMEOUT` seconds.
    """
    deadline = time.monotonic() + MASTER_TIMEOUT
    while not os.path.exists(control_path):
        if not master.is_running:
            master.wait(check=False)
            raise SSHConnectionError(explain_ssh_failure(context.ssh_alias, decode_output(master.stderr)))
        if time.monotonic() > deadline:
            raise SSHConnectionError("The SSH connection to %s didn't log in within %i seconds: try 'ssh %s' "
                                     "to see why." % (context.ssh_alias, MASTER_TIMEOUT, context.ssh_alias))
        time.sleep(LOGIN_POLL_INTERVAL)


def stop_master_connection(context, master):
    """
    Close an SSH master connection: it ends with its own session, or is terminated after :data:`STOP_TIMEOUT`.

    :param context: The :class:`.ConfiguredRemoteContext` that started it.
    :param master: The running ``ssh -M`` command.
    """
    master.subprocess.stdin.close()
    try:
        master.subprocess.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        master.terminate()
    wait_for_exit(master)
    unspare(master.pid)
    logger.debug("Closed the SSH connection to %s (SSH connections opened there: %i).",
                 context.ssh_alias, context.connection_count)
