"""
Checking the type and value of each :class:`.RsyncSystemBackup` property where it is set.

A Python caller gets a clear :exc:`.InvalidOptionError` at the assignment
(or in the constructor), rather than a backup that quietly does something
else: a string given as ``exclude_list`` would otherwise be read one
character at a time, and a truthy string as ``dry_run`` would turn a real
backup into a dry run. :class:`CheckedProperties` runs the check of
:data:`PROPERTY_CHECKS` for each property that is set; the types that
version 1.1 took stay accepted (lists or tuples of strings, a
:class:`dict` for the rotation scheme, booleans, ionice's class names, a
string or :class:`.Destination` for the destination, ...).
"""

import os
import re

from rsync_system_backup.exceptions import InvalidOptionError

IONICE_CLASSES = ('idle', 'best-effort', 'realtime', '1', '2', '3')
"""The I/O scheduling classes that ionice takes (names and numbers)."""

KEEP_NAME_PATTERN = re.compile(r'[A-Za-z0-9][A-Za-z0-9._+-]{0,63}')
"""
The names that keep a snapshot (``--keep=NAME``): letters, digits, ``.``,
``_``, ``+`` and ``-``, starting with a letter or a digit, at most 64
characters. So a name is never an option, a path, nor split by the
``NAME:SNAPSHOT`` form or the blanks of the file that records them.
"""

KEEP_NAME_RULE = ("letters, digits, '.', '_', '+' and '-', starting with a letter or a digit, at most 64 characters "
                  "(such as before-upgrade)")
"""What :data:`KEEP_NAME_PATTERN` allows, for messages."""


def refuse(name, expected, value):
    """
    Raise the error for a property value of the wrong kind.

    :param name: The property's name (a string).
    :param expected: What the property takes (a string).
    :param value: The value that was given.
    :raises: :exc:`.InvalidOptionError`.
    """
    raise InvalidOptionError("RsyncSystemBackup.%s must be %s, not %r (%s)."
                             % (name, expected, value, type(value).__name__))


def check_boolean(name, value):
    """
    Accept :data:`True` and :data:`False`, and the numbers 1 and 0 for them.

    :param name: The property's name (a string).
    :param value: The value.
    :returns: The value as a boolean.
    :raises: :exc:`.InvalidOptionError` for anything else (a string such as ``'no'`` would count as true).
    """
    if not isinstance(value, int) or value not in (0, 1):
        refuse(name, "True or False", value)
    return bool(value)


def check_text(name, value):
    """
    Accept a non-empty string or a path-like object.

    :param name: The property's name (a string).
    :param value: The value.
    :returns: The value as a string.
    :raises: :exc:`.InvalidOptionError` for anything else.
    """
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        refuse(name, "a non-empty string", value)
    return value


def check_optional_text(name, value):
    """
    Accept :data:`None` or what :func:`check_text()` accepts; an empty string means :data:`None` (as in 1.1).

    :param name: The property's name (a string).
    :param value: The value.
    :returns: The value (:data:`None` or a string).
    """
    return None if value is None or value == '' else check_text(name, value)


def check_text_list(name, value):
    """
    Accept a list, tuple or other collection of non-empty strings (a single string is refused, not split).

    :param name: The property's name (a string).
    :param value: The value.
    :returns: A new list of strings.
    :raises: :exc:`.InvalidOptionError` for anything else.
    """
    if isinstance(value, (str, bytes)):
        refuse(name, "a list of strings (write [%r] for one pattern)" % value, value)
    try:
        items = list(value)
    except TypeError:
        items = None
    if items is None or not all(isinstance(item, str) and item for item in items):
        refuse(name, "a list of non-empty strings", value)
    return items


CLEARING_PATTERN = '!'
"""
The exclude pattern that rsync reads as "forget every rule so far": given
as ``--exclude=!`` it would drop the default excludes and the rule that keeps
the backup out of its own source, so it is refused wherever a pattern comes
from (see :func:`check_filter_list()`).
"""

CLEARING_PATTERN_PROBLEM = ("the exclude pattern '!' makes rsync forget every exclude before it (the default ones and "
                            "the one that keeps the backup out of its own source): leave it out")
"""Why :data:`CLEARING_PATTERN` is refused, for the messages of the command line, the exclude file and the API."""


def check_filter_list(name, value):
    """
    Accept a list of exclude patterns: non-empty strings (see :func:`check_text_list()`), none of them ``!``.

    :param name: The property's name (a string).
    :param value: The value.
    :returns: A new list of strings.
    :raises: :exc:`.InvalidOptionError` for anything else, and for :data:`CLEARING_PATTERN`.
    """
    patterns = check_text_list(name, value)
    if CLEARING_PATTERN in patterns:
        raise InvalidOptionError("RsyncSystemBackup.%s: %s." % (name, CLEARING_PATTERN_PROBLEM))
    return patterns


def check_optional_number(name, value, lowest=None, highest=None):
    """
    Accept :data:`None` or a whole number in a range.

    :param name: The property's name (a string).
    :param value: The value.
    :param lowest: The smallest number accepted (or :data:`None`).
    :param highest: The largest number accepted (or :data:`None`).
    :returns: The value.
    :raises: :exc:`.InvalidOptionError` for anything else.
    """
    if value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, int) or (lowest is not None and value < lowest)
            or (highest is not None and value > highest)):
        refuse(name, "None or a whole number%s" % (" from %s to %s" % (lowest, highest) if lowest else ""), value)
    return value


def is_port_number(value):
    """
    Check whether a value is a TCP port number.

    :param value: An integer, or the text of one (a string of digits, from the
                  command line, a tunnel spec or an ``rsync://`` location).
    :returns: :data:`True` for a whole number from 1 to 65535 (not a boolean),
              :data:`False` for anything else.
    """
    if isinstance(value, str):
        digits = value.lstrip('0')
        # Anything longer than five digits is out of range (and int() refuses thousands of digits).
        value = int(digits or '0') if value.isdecimal() and len(digits) <= 5 else None
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536


def is_keep_name(text):
    """
    Check whether a string can keep a snapshot.

    :param text: The name (a string).
    :returns: :data:`True` when it fits :data:`KEEP_NAME_PATTERN`.
    """
    return isinstance(text, str) and KEEP_NAME_PATTERN.fullmatch(text) is not None


def check_keep_name(name, value):
    """
    Accept :data:`None` or a name that can keep a snapshot (see :data:`KEEP_NAME_PATTERN`).

    :param name: The property's name (a string).
    :param value: The value.
    :returns: The value.
    :raises: :exc:`.InvalidOptionError` for anything else.
    """
    if value is not None and not is_keep_name(value):
        refuse(name, "None or a name of " + KEEP_NAME_RULE, value)
    return value


def check_port_number(name, value):
    """
    Accept :data:`None` or a TCP port number.

    :param name: The property's name (a string).
    :param value: The value.
    :returns: The value.
    :raises: :exc:`.InvalidOptionError` for anything but a whole number from 1 to 65535 (a string
             such as ``'873'`` too).
    """
    if value is not None and (isinstance(value, str) or not is_port_number(value)):
        refuse(name, "None or a whole number from 1 to 65535", value)
    return value


def check_ionice(name, value):
    """
    Accept :data:`None` or an ionice class (in any case, with blanks around it, as 1.1's command line did).

    :param name: The property's name (a string).
    :param value: The value.
    :returns: The value (in lower case without surrounding blanks).
    :raises: :exc:`.InvalidOptionError` for anything but :data:`IONICE_CLASSES`.
    """
    if value is None:
        return None
    if not isinstance(value, str) or value.strip().lower() not in IONICE_CLASSES:
        refuse(name, "None or one of %s" % ', '.join(IONICE_CLASSES), value)
    return value.strip().lower()


def check_rotation_scheme_value(name, value):
    """
    Accept a rotation scheme that :func:`.check_rotation_scheme()` accepts.

    :param name: The property's name (a string).
    :param value: The value.
    :returns: The value (a :class:`dict`).
    :raises: :exc:`.InvalidOptionError` for anything else.
    """
    from rsync_system_backup.rotation.schemes import check_rotation_scheme
    if not isinstance(value, dict):
        refuse(name, "a dict such as {'daily': 7, 'monthly': 'always'}", value)
    check_rotation_scheme(value)
    return value


def check_destination(name, value):
    """
    Accept a string (or path-like object) or a :class:`.Destination`.

    :param name: The property's name (a string).
    :param value: The value.
    :returns: The value (parsed later, by the property's setter).
    :raises: :exc:`.InvalidOptionError` for anything else.
    """
    from rsync_system_backup.destinations import Destination
    if isinstance(value, Destination):
        return value
    if not isinstance(value, (str, os.PathLike)):
        refuse(name, "a string or a Destination", value)
    return check_text(name, value)


def check_context(name, value):
    """
    Accept an :mod:`executor` execution context.

    :param name: The property's name (a string).
    :param value: The value.
    :returns: The value.
    :raises: :exc:`.InvalidOptionError` for anything else.
    """
    from executor.contexts import AbstractContext
    if not isinstance(value, AbstractContext):
        refuse(name, "an executor execution context (such as executor.contexts.LocalContext())", value)
    return value


def check_tunnel(name, value):
    """
    Accept :data:`None`, a ``[USER@]HOST[:PORT]`` string or a :class:`~executor.ssh.client.SecureTunnel`.

    :param name: The property's name (a string).
    :param value: The value.
    :returns: The value (a string is parsed by the property's setter).
    :raises: :exc:`.InvalidOptionError` for anything else.
    """
    from executor.ssh.client import SecureTunnel
    if value is None or isinstance(value, SecureTunnel):
        return value
    return check_text(name, value)


def check_optional_function(name, value):
    """
    Accept :data:`None` or something that can be called.

    :param name: The property's name (a string).
    :param value: The value.
    :returns: The value.
    :raises: :exc:`.InvalidOptionError` for anything else.
    """
    if value is not None and not callable(value):
        refuse(name, "a function or None", value)
    return value


PROPERTY_CHECKS = dict(
    {name: check_boolean for name in (
        'accept_existing', 'backup_enabled', 'snapshot_enabled', 'rotate_enabled', 'dry_run', 'multi_fs', 'force',
        'notifications_enabled', 'prefer_recent', 'show_progress', 'strict', 'sudo_enabled', 'wait_for_lock',
        'manifests_enabled', 'create_set', 'list_changes', 'full_check')},
    crypto_device=check_optional_text,
    mount_point=check_optional_text,
    password_file=check_optional_text,
    source=check_text,
    snapshot_method=check_text,
    source_snapshot=check_text,
    destination=check_destination,
    destination_context=check_context,
    source_context=check_context,
    exclude_list=check_filter_list,
    excluded_roots=check_filter_list,
    ionice=check_ionice,
    rotation_scheme=check_rotation_scheme_value,
    daemon_port=check_port_number,
    daemon_exit_status=check_optional_number,
    tunnel=check_tunnel,
    keep_as=check_keep_name,
    after_snapshot=check_optional_function,
)
"""The check of each property, by name: a function that takes the name and the value and returns the value to set."""


class CheckedProperties(object):

    """A mix-in class that checks each property in :data:`PROPERTY_CHECKS` when it is set."""

    def __setattr__(self, name, value):
        """
        Check a property's value, then set it.

        :param name: The property's name (a string).
        :param value: The value.
        :raises: :exc:`.InvalidOptionError` when the value doesn't fit the property.
        """
        check = PROPERTY_CHECKS.get(name)
        super(CheckedProperties, self).__setattr__(name, check(name, value) if check else value)
