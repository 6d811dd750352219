"""
Healthchecks-style pings: a monitoring service hears when a job starts and how it ended.

For a ping URL such as ``https://hc-ping.com/UUID`` a :class:`Pinger` sends

- ``GET URL/start`` when the job starts;
- ``POST URL`` when it succeeded and ``POST URL/fail`` when it failed, with
  the job's summary line as the body (``text/plain; charset=utf-8``, at most
  :data:`MAX_BODY_BYTES`, cut at a character's boundary), which
  healthchecks.io shows with the ping.

A query string stays at the end (``URL?create=1`` gives
``URL/start?create=1``). Only ``http://`` and ``https://`` URLs are accepted,
checked up front by :func:`check_ping_url()`. A redirect is never followed:
the ping's body would go to another address.

A ping never changes a backup's outcome: one that fails (the connection is
refused or times out, the host name doesn't resolve, the service answers
with an HTTP error) is tried again after each of :data:`RETRY_DELAYS` while
that can help (after an HTTP answer only for 429 and 5xx), then logged as
one warning, and the job goes on. The path of a ping URL holds the check's
secret (its UUID or ping key), so messages name the URL as
``scheme://host[:port]/…`` only (see :func:`describe_ping_url()`).
"""

import http
import http.client
import logging
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

from humanfriendly import format_timespan

from rsync_system_backup import __version__
from rsync_system_backup.exceptions import InvalidOptionError

PING_SCHEMES = ('http', 'https')
"""The URL schemes that a ping URL may have."""

DEFAULT_TIMEOUT = 10
"""How many seconds an attempt at a ping waits for the service (connecting, and each read)."""

RETRY_DELAYS = (1, 3)
"""The seconds to wait before each new attempt at a ping that failed (so at most three attempts)."""

MAX_BODY_BYTES = 10000
"""The most bytes of a summary that a ping sends (far more than a summary line; healthchecks.io keeps 100 kB)."""

RESPONSE_READ_LIMIT = 1024
"""The most bytes of the service's answer that are read (its content doesn't matter)."""

EXAMPLE_URL = 'https://hc-ping.com/UUID'
"""The ping URL that messages give as an example."""

logger = logging.getLogger(__name__)


def check_ping_url(url):
    """
    Check that a ping URL can be pinged: an ``http://`` or ``https://`` URL with a host and nothing that isn't sent.

    :param url: The ping URL (a string).
    :raises: :exc:`~rsync_system_backup.exceptions.InvalidOptionError` with a
             one-line message that names the problem and the fix (and the
             URL as :func:`describe_ping_url()` does, without its secret).
    """
    if not isinstance(url, str):
        raise InvalidOptionError("The ping URL must be a string, not %s: give the address that the monitoring "
                                 "service shows, such as %s." % (type(url).__name__, EXAMPLE_URL))
    if any(character.isspace() or ord(character) < 32 or ord(character) == 127 for character in url):
        raise InvalidOptionError("The ping URL holds a space or a control character: give it as the monitoring "
                                 "service shows it, such as %s (a space in it is written %%20)." % EXAMPLE_URL)
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        raise InvalidOptionError("The ping URL can't be parsed (a bracket of an IPv6 address is missing?): give it "
                                 "as the monitoring service shows it, such as %s." % EXAMPLE_URL)
    if parts.scheme.lower() not in PING_SCHEMES:
        found = "it starts with %s://" % parts.scheme if parts.scheme else "it has no scheme"
        raise InvalidOptionError("The ping URL must start with http:// or https:// (%s): give the whole address "
                                 "that the monitoring service shows, such as %s." % (found, EXAMPLE_URL))
    described = describe_ping_url(url)
    if not parts.hostname:
        raise InvalidOptionError("The ping URL %s names no host: give the whole address that the monitoring "
                                 "service shows, such as %s." % (described, EXAMPLE_URL))
    if '@' in parts.netloc:
        raise InvalidOptionError("The ping URL %s holds a user name or password before its host (user@host), which "
                                 "pings don't send: remove it." % described)
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise InvalidOptionError("The port of the ping URL %s is not a number from 1 to 65535: correct it, or leave "
                                 "it out for the scheme's own port." % described)
    try:
        parts.hostname.encode('idna')
    except UnicodeError:
        raise InvalidOptionError("The host of the ping URL %s is not a valid host name: give the address that the "
                                 "monitoring service shows." % described)
    if '#' in url:
        raise InvalidOptionError("The ping URL %s ends in a #fragment, which is never sent: remove it." % described)


def describe_ping_url(url):
    """
    Name a ping URL without the secret in its path and query.

    :param url: The ping URL (a string).
    :returns: ``scheme://host[:port]`` followed by ``/…`` when the URL has
              a path or a query (a string), without a user name or password.
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "(an unparsable URL)"
    host = parts.netloc.rpartition('@')[2]
    hidden = "/…" if parts.path.strip('/') or parts.query else ""
    return "%s://%s%s" % (parts.scheme, host, hidden)


def event_url(url, suffix):
    """
    The URL of one kind of ping: the ping URL with a suffix at the end of its path.

    :param url: The ping URL (a string).
    :param suffix: ``'start'``, ``'fail'`` or ``''`` for success.
    :returns: The URL (a string); the query string stays at the end.
    """
    parts = urllib.parse.urlsplit(url)
    path = parts.path
    if suffix:
        path = path.rstrip('/') + '/' + suffix
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, ''))


def encode_body(summary):
    """
    Encode a summary as the body of a ping.

    :param summary: The summary line (a string), or :data:`None`.
    :returns: At most :data:`MAX_BODY_BYTES` of its UTF-8 encoding, cut
              where a character starts (bytes; empty for :data:`None`).
    """
    data = (summary or '').encode('utf-8')[:MAX_BODY_BYTES]
    return data.decode('utf-8', 'ignore').encode('utf-8')


class RedirectsRefused(urllib.request.HTTPRedirectHandler):

    """A handler that makes every redirect an :exc:`~urllib.error.HTTPError` (a ping's body goes nowhere else)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        """Follow no redirect (:data:`None`, so the answer becomes an :exc:`~urllib.error.HTTPError`)."""
        return None


class Pinger(object):

    """
    The pings of one job to a healthchecks-style monitoring service.

    Each method sends one ping and returns whether the service accepted it
    (a boolean); none raises, whatever happens to the ping (see the module's
    documentation).
    """

    def __init__(self, url, timeout=DEFAULT_TIMEOUT, retry_delays=RETRY_DELAYS, job=None):
        """
        Get ready to ping a URL.

        :param url: The ping URL (a string, checked by :func:`check_ping_url()`).
        :param timeout: The seconds that an attempt waits for the service (a number).
        :param retry_delays: The seconds to wait before each new attempt (a
                             sequence of numbers; empty for one attempt).
        :param job: The job's name for the warnings (a string), or :data:`None`.
        :raises: :exc:`~rsync_system_backup.exceptions.InvalidOptionError` for a bad URL.
        """
        check_ping_url(url)
        self.url = url
        self.timeout = timeout
        self.retry_delays = tuple(retry_delays)
        self.job = job
        self.opener = urllib.request.build_opener(RedirectsRefused)

    def start(self):
        """Tell the service that the job starts: ``GET URL/start``."""
        return self.send('start', 'start', None)

    def success(self, summary):
        """
        Tell the service that the job succeeded: ``POST URL`` with the summary line.

        :param summary: The job's summary line (a string), or :data:`None` for an empty body.
        """
        return self.send('success', '', summary)

    def failure(self, summary):
        """
        Tell the service that the job failed: ``POST URL/fail`` with the summary line.

        :param summary: The job's summary line or error message (a string), or :data:`None` for an empty body.
        """
        return self.send('failure', 'fail', summary)

    def send(self, event, suffix, summary):
        """
        Send one ping, with the retries, and warn once when it doesn't get through.

        :param event: The ping's name in messages (a string).
        :param suffix: What :func:`event_url()` puts at the end of the path (a string).
        :param summary: The body of a POST (a string), or :data:`None` for a GET (``start``).
        :returns: :data:`True` when the service answered with a 2xx status, :data:`False` otherwise.
        """
        headers = {'User-Agent': 'rsync-system-backup/%s' % __version__}
        if suffix == 'start':
            data = None
        else:
            data = encode_body(summary)
            headers['Content-Type'] = 'text/plain; charset=utf-8'
        attempts = 0
        for delay in (0,) + self.retry_delays:
            time.sleep(delay)
            attempts += 1
            request = urllib.request.Request(event_url(self.url, suffix), data=data, headers=headers)
            try:
                with self.opener.open(request, timeout=self.timeout) as response:
                    response.read(RESPONSE_READ_LIMIT)
            except urllib.error.HTTPError as e:
                e.close()
                problem = self.describe_answer(e)
                if e.code < 500 and e.code != 429:
                    break
            except (OSError, http.client.HTTPException, ValueError) as e:
                problem = self.describe_error(e)
            else:
                logger.debug("Sent the %s ping to %s.", event, describe_ping_url(self.url))
                return True
        logger.warning("The %s ping to %s%s failed%s: %s (the backup doesn't depend on it).", event,
                       describe_ping_url(self.url), " (job %s)" % self.job if self.job else "",
                       " after %i attempts" % attempts if attempts > 1 else "", problem)
        return False

    def describe_answer(self, error):
        """
        Describe an HTTP answer that isn't a success, without the server's own words.

        :param error: The :exc:`~urllib.error.HTTPError`.
        :returns: For example ``HTTP 500 Internal Server Error`` (a string).
        """
        try:
            text = "HTTP %i %s" % (error.code, http.HTTPStatus(error.code).phrase)
        except ValueError:
            text = "HTTP %i" % error.code
        if 300 <= error.code < 400:
            location = error.headers.get('Location') if error.headers else None
            target = describe_ping_url(urllib.parse.urljoin(self.url, location)) if location else "elsewhere"
            text += ", a redirect to %s, which pings don't follow: give the address it points to" % target
        return text

    def describe_error(self, error):
        """
        Describe why a ping got no answer.

        :param error: The exception (an :exc:`OSError`, :exc:`http.client.HTTPException` or :exc:`ValueError`).
        :returns: A short phrase (a string), never the URL.
        """
        reason = error.reason if isinstance(error, urllib.error.URLError) else error
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return "no answer within %s" % format_timespan(self.timeout)
        if isinstance(reason, ConnectionRefusedError):
            return "the connection was refused"
        if isinstance(reason, socket.gaierror):
            return "the host name doesn't resolve (%s)" % reason.strerror
        if isinstance(reason, http.client.RemoteDisconnected):
            return "the service closed the connection without an answer"
        if isinstance(reason, OSError) and reason.strerror:
            return reason.strerror
        if isinstance(reason, (http.client.HTTPException, ValueError)):
            return "the answer or the address is not valid HTTP (%s)" % type(reason).__name__
        return str(reason) or type(reason).__name__
