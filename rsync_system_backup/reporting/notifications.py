"""Desktop notifications about the progress of a backup."""

import logging

logger = logging.getLogger(__name__)

NOTIFICATION_SUMMARY = "System backup"
"""The title of every desktop notification."""


def notify(body, urgency='normal'):
    """
    Show a desktop notification in the current graphical session, if there is one.

    Notifications are a courtesy: a missing or failing ``notify-send`` is
    logged at debug level and never stops a backup.

    :param body: The message (a string).
    :param urgency: ``low``, ``normal`` or ``critical``.
    """
    try:
        from proc.notify import notify_desktop
        notify_desktop(body=body, summary=NOTIFICATION_SUMMARY, urgency=urgency)
    except Exception as e:
        logger.debug("Desktop notification failed: %s", e)
