"""Tests of integrations/pings.py: healthchecks-style pings to a real HTTP server on 127.0.0.1."""

import logging
import time

import pytest

from rsync_system_backup.exceptions import InvalidOptionError
from rsync_system_backup.integrations.pings import MAX_BODY_BYTES, Pinger, check_ping_url, describe_ping_url
from support.http_recorder import Answer, RecordingServer
from support.servers import LOCALHOST, free_port

SECRET = '5bf7a4d1-9a6c-4f0e-8d1e-3c2b1a0f9e8d'
"""The check's UUID in the tests' ping URLs, which no message may show."""

SUMMARY = ("Backup to /mnt/backups/latest done in 2 minutes: 12 of 3,456 files transferred; "
           "91.2 GB free (34% of 268 GB).")
"""A summary line as a job would send it."""

QUICK_RETRIES = (0.01, 0.01)
"""Retry delays that keep the tests fast (three attempts in all)."""


@pytest.fixture
def server():
    """A :class:`support.http_recorder.RecordingServer` for one test."""
    with RecordingServer() as server:
        yield server


def ping_warnings(caplog):
    """The warnings that the pings logged (a list of strings)."""
    return [record.getMessage() for record in caplog.records
            if record.name == 'rsync_system_backup.integrations.pings' and record.levelno >= logging.WARNING]


def test_good_outcome(server, caplog):
    """A job that succeeds sends GET /start, then a POST of its summary line to the URL itself."""
    pinger = Pinger(server.url('/%s' % SECRET), retry_delays=QUICK_RETRIES)
    assert pinger.start() is True
    assert pinger.success(SUMMARY) is True
    assert [(request.method, request.path) for request in server.requests] == [
        ('GET', '/%s/start' % SECRET), ('POST', '/%s' % SECRET)]
    assert server.requests[0].body == b''
    assert server.requests[1].body == SUMMARY.encode('utf-8')
    assert server.requests[1].headers['Content-Type'] == 'text/plain; charset=utf-8'
    assert server.requests[1].headers['User-Agent'].startswith('rsync-system-backup/')
    assert ping_warnings(caplog) == []


def test_failing_outcome(server, caplog):
    """A job that fails sends GET /start, then a POST of its summary line to /fail."""
    pinger = Pinger(server.url('/ping/%s/' % SECRET), retry_delays=QUICK_RETRIES)
    pinger.start()
    message = "Backup to server:/backups/latest failed: rsync exit code 12 (error in rsync protocol data stream) ✗"
    assert pinger.failure(message) is True
    assert [(request.method, request.path, request.body) for request in server.requests] == [
        ('GET', '/ping/%s/start' % SECRET, b''), ('POST', '/ping/%s/fail' % SECRET, message.encode('utf-8'))]
    assert ping_warnings(caplog) == []


def test_query_string_stays_at_the_end(server):
    """A query string (healthchecks' ?create=1, say) follows the suffix."""
    pinger = Pinger(server.url('/ping/KEY/laptop?create=1'))
    pinger.start()
    pinger.failure(None)
    expected = ['/ping/KEY/laptop/start?create=1', '/ping/KEY/laptop/fail?create=1']
    assert [request.path for request in server.requests] == expected
    assert server.requests[1].body == b''


def test_body_is_capped(server):
    """A long summary is cut to MAX_BODY_BYTES, at a character's boundary."""
    summary = 'é' * MAX_BODY_BYTES
    Pinger(server.url('/x')).success(summary)
    body = server.requests[0].body
    assert len(body) == MAX_BODY_BYTES
    assert body.decode('utf-8') == summary[:MAX_BODY_BYTES // 2]


def assert_one_warning(caplog, *parts):
    """Check that the pings logged one warning, with the given parts and without the secret."""
    warnings = ping_warnings(caplog)
    assert len(warnings) == 1, warnings
    for part in parts:
        assert part in warnings[0], warnings[0]
    assert SECRET not in warnings[0]
    return warnings[0]


def test_refused_connection(caplog):
    """A refused connection is one warning that names the host (not the secret), after every attempt."""
    port = free_port()
    pinger = Pinger('http://%s:%i/%s' % (LOCALHOST, port, SECRET), retry_delays=QUICK_RETRIES, job='laptop')
    assert pinger.start() is False
    assert_one_warning(caplog, "The start ping to http://%s:%i/… (job laptop) failed after 3 attempts: "
                               "the connection was refused" % (LOCALHOST, port), "the backup doesn't depend on it")


def test_server_error_is_retried(server, caplog):
    """HTTP 500 is tried again after each delay, then one warning."""
    server.answers.extend([Answer(status=500)] * 3)
    assert Pinger(server.url('/%s' % SECRET), retry_delays=QUICK_RETRIES).success(SUMMARY) is False
    assert len(server.requests) == 3
    assert all(request.body == SUMMARY.encode('utf-8') for request in server.requests)
    assert_one_warning(caplog, "The success ping to %s failed after 3 attempts: HTTP 500 Internal Server Error"
                       % server.url('/…'))


def test_retry_that_gets_through(server, caplog):
    """A ping that gets through on a later attempt is no warning."""
    server.answers.extend([Answer(status=503), Answer(status=429)])
    assert Pinger(server.url('/%s' % SECRET), retry_delays=QUICK_RETRIES).failure(SUMMARY) is True
    assert len(server.requests) == 3
    assert ping_warnings(caplog) == []


def test_client_error_is_not_retried(server, caplog):
    """HTTP 404 (an unknown check, say) won't change on another attempt: one request, one warning."""
    server.answers.append(Answer(status=404))
    assert Pinger(server.url('/%s' % SECRET), retry_delays=QUICK_RETRIES).start() is False
    assert len(server.requests) == 1
    assert_one_warning(caplog, "The start ping to %s failed: HTTP 404 Not Found" % server.url('/…'))


def test_timeout(server, caplog):
    """A service that doesn't answer in time is one warning, after the timeout of each attempt."""
    server.answers.extend([Answer(status=200, delay=30)] * 2)
    started = time.monotonic()
    assert Pinger(server.url('/%s' % SECRET), timeout=0.5, retry_delays=(0.01,)).success(SUMMARY) is False
    assert 1 <= time.monotonic() - started < 10
    assert len(server.requests) == 2
    assert_one_warning(caplog, "failed after 2 attempts: no answer within 0.5 seconds")


def test_unresolvable_host(caplog):
    """A host name that doesn't resolve (the reserved .invalid domain) is one warning."""
    assert Pinger('https://rsb-test.invalid/%s' % SECRET, retry_delays=()).start() is False
    assert_one_warning(caplog, "The start ping to https://rsb-test.invalid/… failed: the host name doesn't resolve")


@pytest.mark.parametrize('location', ['file:///etc/passwd', 'ftp://%s/x' % LOCALHOST, '/other/place'])
def test_redirects_are_not_followed(server, caplog, location, tmp_path):
    """A redirect, to another scheme or not, is a warning that names its target's host; nothing follows it."""
    server.answers.append(Answer(status=302, headers={'Location': location}))
    assert Pinger(server.url('/%s' % SECRET), retry_delays=QUICK_RETRIES).success(SUMMARY) is False
    assert [request.path for request in server.requests] == ['/%s' % SECRET]
    warning = assert_one_warning(caplog, "HTTP 302 Found, a redirect to ", "which pings don't follow")
    assert describe_ping_url(server.url(location) if location.startswith('/') else location) in warning


@pytest.mark.parametrize('url', [
    'https://hc-ping.com/%s' % SECRET,
    'http://127.0.0.1:8000/ping/KEY/slug?create=1',
    'HTTPS://hc-ping.com/',
    'https://[::1]:8443/x',
])
def test_good_urls(url):
    """Addresses that monitoring services give pass the check."""
    check_ping_url(url)


@pytest.mark.parametrize('url, message', [
    ('ftp://hc-ping.com/%s' % SECRET, "The ping URL must start with http:// or https:// (it starts with ftp://): "
                                      "give the whole address that the monitoring service shows, such as "
                                      "https://hc-ping.com/UUID."),
    ('hc-ping.com/%s' % SECRET, "The ping URL must start with http:// or https:// (it has no scheme): "),
    ('file:///etc/passwd', "(it starts with file://)"),
    ('https://', "The ping URL https:// names no host: "),
    ('https:///%s' % SECRET, "The ping URL https:///… names no host: "),
    ('https://user:%s@hc-ping.com/x' % SECRET, "The ping URL https://hc-ping.com/… holds a user name or password "
                                               "before its host (user@host), which pings don't send: remove it."),
    ('https://hc-ping.com:99999/%s' % SECRET, "The port of the ping URL https://hc-ping.com:99999/… is not a number "
                                              "from 1 to 65535: "),
    ('https://hc-ping.com:0/x', "is not a number from 1 to 65535"),
    ('https://hc-ping.com:http/x', "is not a number from 1 to 65535"),
    ('https://hc-ping.com/%s#x' % SECRET, "The ping URL https://hc-ping.com/… ends in a #fragment, which is never "
                                          "sent: remove it."),
    ('https://hc-ping.com/ %s' % SECRET, "The ping URL holds a space or a control character: "),
    ('https://hc-ping.com/%s\n' % SECRET, "holds a space or a control character"),
    ('https://[::1/x', "The ping URL can't be parsed"),
    ('https://a..b/x', "The host of the ping URL https://a..b/… is not a valid host name"),
    (42, "The ping URL must be a string, not int: "),
])
def test_bad_urls(url, message):
    """A bad ping URL is refused up front with one line that names the problem and the fix, never the secret."""
    with pytest.raises(InvalidOptionError) as raised:
        check_ping_url(url)
    text = str(raised.value)
    assert message in text
    assert '\n' not in text and SECRET not in text
    with pytest.raises(InvalidOptionError):
        Pinger(url)
