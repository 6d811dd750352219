"""
The names of the snapshot methods.

They live apart from :mod:`.snapshots.methods` so that the command line can
check ``--snapshot-method`` without importing the methods (and executor).
"""

from rsync_system_backup.exceptions import InvalidOptionError

AUTOMATIC = 'auto'
"""The name of the automatic choice of a snapshot method (the default)."""

METHOD_NAMES = (AUTOMATIC, 'btrfs', 'reflink', 'safe-hardlink', 'link-dest', 'hardlink')
"""The values that ``--snapshot-method`` accepts: the automatic choice, then the methods, best first."""


def check_method_name(name):
    """
    Refuse an unknown snapshot method.

    :param name: The name (a string).
    :returns: The name.
    :raises: :exc:`.InvalidOptionError` for anything but :data:`METHOD_NAMES`.
    """
    if name not in METHOD_NAMES:
        raise InvalidOptionError("Unknown snapshot method %r: use %s or %s."
                                 % (name, ', '.join(METHOD_NAMES[:-1]), METHOD_NAMES[-1]))
    return name
