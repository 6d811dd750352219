"""
Log messages in the system log (syslog or the systemd journal).

A backup run by cron, a systemd timer or an rsync daemon's ``post-xfer exec``
has nobody watching, so its messages also go to the system log, where they
stay after the run, through :func:`coloredlogs.syslog.enable_system_logging()`:

- Warnings and errors always go there.
- The one-line summary goes there too when no terminal is attached, so that
  every unattended run leaves a trace, unless standard error already goes to
  the systemd journal (a systemd service), which would then hold it twice
  (other informational messages are held back then, see :mod:`.reporting.unattended`).

The log goes to the syslog socket ``/dev/log``, or to the socket named by
``$RSYNC_SYSTEM_BACKUP_SYSLOG_SOCKET`` (the test suite uses this to catch
the messages). ``$COLOREDLOGS_SYSLOG=false`` turns the system log off.
"""

import logging
import os

SOCKET_VARIABLE = 'RSYNC_SYSTEM_BACKUP_SYSLOG_SOCKET'
"""The environment variable that names another syslog socket than ``/dev/log``."""

PROGRAM_NAME = 'rsync-system-backup'
"""The name that identifies this program's messages in the system log."""


def enable_system_log(on_terminal):
    """
    Send log messages to the system log too.

    :param on_terminal: :data:`True` when a person is watching standard error.
    :returns: The :class:`~logging.handlers.SysLogHandler`, or :data:`None`
              when the system log is turned off or can't be reached.
    """
    from coloredlogs.syslog import enable_system_logging
    level = logging.WARNING if on_terminal or stderr_is_journal() else logging.INFO
    address = os.environ.get(SOCKET_VARIABLE) or None
    return enable_system_logging(programname=PROGRAM_NAME, level=level, address=address)


def stderr_is_journal():
    """
    Check whether standard error is connected to the systemd journal.

    systemd tells a service so in ``$JOURNAL_STREAM`` (the device and inode
    numbers of the stream); a child whose standard error was redirected
    inherits the variable, hence the comparison.

    :returns: :data:`True` when standard error is the stream that
              ``$JOURNAL_STREAM`` names.
    """
    expected = os.environ.get('JOURNAL_STREAM')
    if not expected:
        return False
    try:
        info = os.fstat(2)
    except OSError:
        return False
    return expected == '%i:%i' % (info.st_dev, info.st_ino)
