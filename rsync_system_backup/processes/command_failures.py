"""
One line for a command of this system that fails.

The small commands of a run (``mkdir``, ``mv``, ``rm``, ``sync``, ``cp`` and
the like) are run with executor's checks on, so a failure raises
:exc:`executor.ExternalCommandFailed`. A failure on an SSH destination is
explained by :func:`.translate_remote_errors()`; :func:`explain_command_failures()`
does the same for the commands of this system, whose own error message has
been shown on standard error already. :func:`explain_failures()` puts these
together with :func:`.explain_os_errors()`, for a backup and for the
read-only actions alike.
"""

import contextlib

from executor import ExternalCommandFailed

from rsync_system_backup.connections.ssh import render_command, translate_remote_errors
from rsync_system_backup.exceptions import CommandFailedError, RsyncSystemBackupError
from rsync_system_backup.backup_set.os_errors import explain_os_errors


@contextlib.contextmanager
def explain_failures():
    """
    Turn every failure that this program can explain into one line, for the duration of a ``with`` block.

    Errors of the destination's filesystem (see :func:`.explain_os_errors()`),
    failing commands of this system (see :func:`explain_command_failures()`)
    and failing SSH connections and remote commands (see
    :func:`.translate_remote_errors()`, innermost, because executor's remote
    failures are command failures too).

    :raises: A subclass of :exc:`.RsyncSystemBackupError` for each of them.
    """
    with explain_os_errors(), explain_command_failures(), translate_remote_errors():
        yield


@contextlib.contextmanager
def explain_command_failures():
    """
    Turn a failing command of this system into a :exc:`.CommandFailedError`, for the duration of a ``with`` block.

    Use it around :func:`.translate_remote_errors()`, which handles the
    commands on SSH destinations.

    :raises: :exc:`.CommandFailedError` with the command line (shell code
             left out, see :func:`.render_command()`) and its exit code.
    """
    try:
        yield
    except ExternalCommandFailed as e:
        if isinstance(e, RsyncSystemBackupError):
            # Explained already (rsync's failure is one of these).
            raise
        raise CommandFailedError("'%s' failed with exit code %i (see its message above); the earlier snapshots are "
                                 "intact." % (render_command(e.command.command_line), e.returncode))
