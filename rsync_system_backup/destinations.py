"""
Parsing and rendering of rsync locations.

rsync knows four ways to name the place where files go; :class:`Destination`
understands all of them::

    /local/directory                                local directory
    [user@]host:directory                           remote shell (SSH)
    [user@]host::module[/directory]                 rsync daemon
    rsync://[user@]host[:port]/module[/directory]   rsync daemon (URL)

As in rsync, an expression whose first colon comes after a slash is a local
path, so ``./a:b`` names a local directory. A ``~`` at the start of the
directory of ``host:directory`` means the SSH user's home directory there,
as in a shell (see :func:`resolve_remote_home()`).
"""

import posixpath
import re

from property_manager import PropertyManager, mutable_property

from rsync_system_backup.checks.values import is_port_number
from rsync_system_backup.exceptions import InvalidDestinationError, ParentDirectoryUnavailable

USER_AND_HOST = r'(?:(?P<username>[^@:/]+)@)?(?P<hostname>\[[^\]/]+\]|[^@:/\[\]]+)'
"""Regular expression fragment that matches ``[user@]host`` (the host may be an IPv6 address in brackets)."""

DAEMON_URL_PATTERN = re.compile(
    r'^rsync://' + USER_AND_HOST + r'(?::(?P<port_number>[^/]*))?/(?P<module>[^/]+)(?:/(?P<directory>.*))?$',
    re.DOTALL,
)
"""Matches ``rsync://[user@]host[:port]/module[/directory]``."""

DAEMON_PATTERN = re.compile(r'^' + USER_AND_HOST + r'::(?P<module>[^/]+)(?:/(?P<directory>.*))?$', re.DOTALL)
"""Matches ``[user@]host::module[/directory]``."""

REMOTE_SHELL_PATTERN = re.compile(r'^' + USER_AND_HOST + r':(?P<directory>.*)$', re.DOTALL)
"""Matches ``[user@]host:directory``."""


class Destination(PropertyManager):

    """
    A location that rsync can write to, split into its parts.

    Create one from an expression (``Destination(expression='server:/backups/latest')``)
    or from its parts (``Destination(hostname='server', directory='/backups/latest')``).
    """

    def __init__(self, **options):
        """
        Create a destination from ``expression`` or from its parts.

        :param options: ``expression``, or the parts as keyword arguments.
        :raises: :exc:`~exceptions.TypeError` when nothing is given (as in version 1.1,
                 where the expression is required).
        """
        if not options:
            raise TypeError("Destination() needs an expression or the parts of a destination.")
        super(Destination, self).__init__(**options)

    @mutable_property
    def directory(self):
        """The directory on the local or remote system, or inside the daemon's module (a string)."""
        return ''

    @mutable_property
    def hostname(self):
        """The name or address of the remote system (a string, empty for local destinations)."""
        return ''

    @mutable_property
    def module(self):
        """The name of the rsync daemon module (a string, empty unless the destination is a daemon)."""
        return ''

    @mutable_property
    def port_number(self):
        """The TCP port of the rsync daemon (an integer, or :data:`None` for rsync's default)."""
        return None

    @mutable_property
    def username(self):
        """The user name to log in as on the remote system (a string, empty for the default)."""
        return ''

    @property
    def is_local(self):
        """:data:`True` when the destination is a directory on this system."""
        return not self.hostname

    @property
    def is_daemon(self):
        """:data:`True` when the destination is a module of an rsync daemon."""
        return bool(self.module)

    @property
    def is_remote_shell(self):
        """:data:`True` when the destination is reached over a remote shell (SSH)."""
        return bool(self.hostname) and not self.module

    @property
    def ssh_alias(self):
        """The host name as SSH wants it (IPv6 addresses lose their brackets)."""
        return self.hostname.strip('[]')

    @property
    def parent_directory(self):
        """
        The directory that holds :attr:`directory` (where snapshots are created).

        :raises: :exc:`.ParentDirectoryUnavailable` when :attr:`directory` is
                 the root directory or empty, which have no parent to hold
                 snapshots.
        """
        trimmed = self.directory.rstrip('/')
        if not trimmed:
            raise ParentDirectoryUnavailable(
                "The destination %r has no parent directory to hold snapshots: "
                "use a subdirectory, for example %r." % (self.expression, self.expression.rstrip('/') + '/latest')
            )
        return posixpath.dirname(trimmed) or '.'

    @property
    def expression(self):
        """
        The destination in rsync's syntax (a string).

        Assigning an expression parses it and replaces every part.

        :raises: :exc:`.InvalidDestinationError` (on assignment) when the
                 expression is empty or not one of rsync's location syntaxes.
        """
        if self.is_daemon:
            user = self.username + '@' if self.username else ''
            path = self.module + ('/' + self.directory if self.directory else '')
            if self.port_number:
                return 'rsync://%s%s:%i/%s' % (user, self.hostname, self.port_number, path)
            return '%s%s::%s' % (user, self.hostname, path)
        if self.hostname:
            user = self.username + '@' if self.username else ''
            return '%s%s:%s' % (user, self.hostname, self.directory)
        return self.directory

    @expression.setter
    def expression(self, value):
        """Parse an rsync location and store its parts."""
        parts = parse_expression(value)
        self.directory = parts.get('directory') or ''
        self.hostname = parts.get('hostname') or ''
        self.module = parts.get('module') or ''
        self.port_number = parts.get('port_number')
        self.username = parts.get('username') or ''

    def __str__(self):
        """Render the destination in rsync's syntax."""
        return self.expression


def parse_expression(value):
    """
    Split an rsync location into its parts.

    :param value: The location (a string).
    :returns: A :class:`dict` with some of the keys ``username``,
              ``hostname``, ``port_number``, ``module`` and ``directory``.
    :raises: :exc:`.InvalidDestinationError` when the expression is empty,
             names a remote system without a directory, has a port that is not
             a number from 1 to 65535, names a host or user that starts with
             ``-``, starts its directory on an SSH destination with a ``~``
             that can't be expanded (see :func:`resolve_remote_home()`), or fits
             none of rsync's syntaxes.
    """
    if not isinstance(value, str) or not value.strip():
        raise InvalidDestinationError("The destination is empty: give a directory or an rsync location.")
    if value.startswith('rsync://'):
        match = DAEMON_URL_PATTERN.match(value)
        if not match:
            raise InvalidDestinationError(
                "Can't parse the destination %r: expected rsync://[USER@]HOST[:PORT]/MODULE[/DIRECTORY]." % value
            )
        parts = match.groupdict()
        parts['port_number'] = parse_port_number(value, parts['port_number'])
        return refuse_options(value, parts)
    first_colon = value.find(':')
    first_slash = value.find('/')
    if first_colon == -1 or (first_slash != -1 and first_slash < first_colon):
        return dict(directory=value)
    for pattern in (DAEMON_PATTERN, REMOTE_SHELL_PATTERN):
        match = pattern.match(value)
        if match:
            parts = match.groupdict()
            if pattern is REMOTE_SHELL_PATTERN and parts['directory'].startswith(':'):
                raise InvalidDestinationError(
                    "The destination %r names no rsync daemon module: write %s::MODULE[/DIRECTORY]."
                    % (value, parts['hostname'])
                )
            if pattern is REMOTE_SHELL_PATTERN and not parts['directory']:
                raise InvalidDestinationError(
                    "The destination %r names no directory on %s: add one, for example %s/backups/latest."
                    % (value, parts['hostname'], value)
                )
            if pattern is REMOTE_SHELL_PATTERN:
                parts['directory'] = resolve_remote_home(value, parts)
            return refuse_options(value, parts)
    raise InvalidDestinationError(
        "Can't parse the destination %r: expected a local directory, [USER@]HOST:DIRECTORY, "
        "[USER@]HOST::MODULE[/DIRECTORY] or rsync://[USER@]HOST[:PORT]/MODULE[/DIRECTORY]." % value
    )


def resolve_remote_home(expression, parts):
    """
    Resolve a ``~`` at the start of the directory of an SSH destination, as a shell there would.

    Every command on an SSH destination (rsync too) runs in the SSH user's
    home directory and gets the directory as it is, so no shell expands a
    ``~`` there: ``~/backups/latest`` would create a directory named ``~``.
    A relative directory is already relative to that home directory, so
    ``~/backups/latest`` becomes ``backups/latest``. (``./~/x`` still names a
    directory called ``~``.)

    :param expression: The whole location (a string, used in the messages).
    :param parts: The parts of a ``[USER@]HOST:DIRECTORY`` location (a :class:`dict`).
    :returns: The directory (a string) without the ``~/``, or unchanged when
              it doesn't start with ``~``.
    :raises: :exc:`.InvalidDestinationError` for ``~USER`` (another user's
             home directory, which only a shell on the destination can find)
             and for the home directory itself (which the backup would
             overwrite).
    """
    directory = parts['directory']
    if not directory.startswith('~'):
        return directory
    user, _, rest = directory[1:].partition('/')
    host = parts['hostname']
    if user:
        login = (parts['username'] + '@' if parts.get('username') else '') + host.strip('[]')
        raise InvalidDestinationError(
            "The destination %r starts with ~%s, the home directory of %s on %s, which only a shell there could "
            "find: give the directory's absolute path instead (ssh %s 'echo ~%s' shows it)."
            % (expression, user, user, host, login, user)
        )
    rest = rest.lstrip('/')
    if posixpath.normpath(rest or '.') == '.':
        location = expression[:-len(directory)]
        raise InvalidDestinationError(
            "The destination %r is the SSH user's home directory on %s itself, which the backup would overwrite: "
            "give a directory inside it, for example %s~/backups/latest." % (expression, host, location)
        )
    return rest


def parse_port_number(expression, text):
    """
    Validate the port number of an ``rsync://`` location.

    :param expression: The whole location (a string, used in the message).
    :param text: The text between the colon and the slash, or :data:`None`.
    :returns: The port number (an integer) or :data:`None` when none was given.
    :raises: :exc:`.InvalidDestinationError` when the port is not a number
             from 1 to 65535.
    """
    if text is None:
        return None
    if is_port_number(text):
        return int(text)
    raise InvalidDestinationError(
        "The port %r in the destination %r is not a number from 1 to 65535." % (text, expression)
    )


def refuse_options(expression, parts):
    """
    Refuse a host or user name that ssh would take for an option, and a remote directory that commands would.

    :param expression: The whole location (a string, used in the message).
    :param parts: The parts of the location (a :class:`dict` from :func:`parse_expression()`).
    :returns: `parts`.
    :raises: :exc:`.InvalidDestinationError` when the host or the user
             starts with ``-`` (``-oProxyCommand=...:/backups`` would run a
             command), or a directory on another system does (``cp``,
             ``mv`` and ``find`` would read it as an option there).
    """
    for key, what in (('hostname', 'host'), ('username', 'user')):
        if (parts.get(key) or '').startswith('-'):
            raise InvalidDestinationError(
                "The destination %r names the %s %r, which starts with '-' and would reach ssh as an option: "
                "give a %s name that doesn't start with '-'." % (expression, what, parts[key], what)
            )
    if parts.get('hostname') and (parts.get('directory') or '').startswith('-'):
        raise InvalidDestinationError(
            "The destination %r names the directory %r, which starts with '-' and would reach commands on %s as "
            "an option: give its absolute path, or start it with ./"
            % (expression, parts['directory'], parts['hostname'])
        )
    return parts
