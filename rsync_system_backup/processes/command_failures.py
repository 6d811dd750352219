"""
One line for a command of this system that fails.

The small commands of a run (``mkdir``, ``mv``, ``rm``, ``sync``, ``cp`` and
the like) are run with executor's checks on, so a failure raises
:exc:`executor.ExternalCommandFailed`. A failure on an SSH destination is
explained by :func:`.translate_remote_errors()`; :func:`explain_command_failures()`
does the same for the commands of this system, whose own error message has
been shown on standard error already.
"""

import contextlib

from executor import ExternalCommandFailed, quote

from rsync_system_backup.exceptions import CommandFailedError, RsyncSystemBackupError


@contextlib.contextmanager
def explain_command_failures():
    """
    Turn a failing command of this system into a :exc:`.CommandFailedError`, for the duration of a ``with`` block.

    Use it around :func:`.translate_remote_errors()`, which handles the
    commands on SSH destinations.

    :raises: :exc:`.CommandFailedError` with the command line and its exit code.
    """
    try:
        yield
    except ExternalCommandFailed as e:
        if isinstance(e, RsyncSystemBackupError):
            # Explained already (rsync's failure is one of these).
            raise
        raise CommandFailedError("'%s' failed with exit code %i (see its message above); the earlier snapshots are "
                                 "intact." % (quote(e.command.command_line), e.returncode))
