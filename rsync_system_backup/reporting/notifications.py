"""
Desktop notifications about the progress of a backup.

A notification needs a desktop session's D-Bus session bus. When this
process has none in its environment (cron, systemd, an SSH login), the
session of a desktop user is looked for among the running processes (see
:func:`proc.notify.find_graphical_context()`); when there is none either,
no ``notify-send`` runs at all, because without a bus it only prints
complaints (``Cannot autolaunch D-Bus without X11 $DISPLAY``) that cron
would mail every night. ``notify-send``'s own output never gets through.
"""

import logging
import os

logger = logging.getLogger(__name__)

NOTIFICATION_SUMMARY = "System backup"
"""The title of every desktop notification."""

SESSION_BUS_VARIABLE = 'DBUS_SESSION_BUS_ADDRESS'
"""The environment variable that names a desktop session's D-Bus session bus."""


def find_desktop_context():
    """
    Find the execution context that reaches a desktop session's notification service.

    :returns: A local execution context whose environment names a session
              bus (this process's own, or a desktop user's), or :data:`None`
              when no desktop session runs.
    """
    from executor.contexts import LocalContext
    if os.environ.get(SESSION_BUS_VARIABLE):
        return LocalContext()
    from proc.notify import find_graphical_context
    context = find_graphical_context()
    if context.options.get('environment', {}).get(SESSION_BUS_VARIABLE):
        return context
    return None


def notify(body, urgency='normal'):
    """
    Show a desktop notification in the current graphical session, if there is one.

    Notifications are a courtesy: a missing desktop session or a missing or
    failing ``notify-send`` is logged at debug level and never stops a backup.

    :param body: The message (a string).
    :param urgency: ``low``, ``normal`` or ``critical``.
    """
    try:
        context = find_desktop_context()
        if context is None:
            logger.debug("No desktop notification: no desktop session (no %s) was found.", SESSION_BUS_VARIABLE)
            return
        command = context.execute('notify-send', '--urgency=%s' % urgency, '--', NOTIFICATION_SUMMARY, body,
                                  check=False, silent=True, shell=False, tty=False)
        if not command.succeeded:
            logger.debug("Desktop notification failed: notify-send exited with code %s.", command.returncode)
    except Exception as e:
        logger.debug("Desktop notification failed: %s", e)
