"""
An HTTP server on 127.0.0.1 that records the requests it gets, for the tests of monitoring pings.

It runs in a thread of the test process (:mod:`http.server`) on a port that
the kernel picks, and answers every request with the next of the answers
the test queued (then 200 ``OK``). Example::

    with RecordingServer() as server:
        server.answers.append(Answer(status=500))
        Pinger(server.url('/ping/UUID')).start()
        assert server.requests[0].path == '/ping/UUID/start'
"""

import collections
import http.server
import sys
import threading

from support.servers import LOCALHOST

Request = collections.namedtuple('Request', 'method path headers body')
"""One request the server got: its method, path (with the query), headers (a dict) and body (bytes)."""

Answer = collections.namedtuple('Answer', 'status headers delay')
Answer.__new__.__defaults__ = ({}, 0)
Answer.__doc__ = """
An answer to a request: its status, extra headers (a dict), and how many
seconds to wait before it (the wait ends early when the server stops).
"""


class ThreadingServer(http.server.ThreadingHTTPServer):

    """A threaded HTTP server that says nothing about a client that went away before its answer (a ping's timeout)."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        """Report a handler's error, unless it is a connection that the client closed."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class RecordingServer(object):

    """
    A threaded HTTP server on 127.0.0.1 that records requests and gives queued answers (a context manager).

    :attr:`requests` is the list of :data:`Request` tuples received;
    :attr:`answers` the list of :data:`Answer` tuples still to give, first
    one first.
    """

    def __init__(self):
        """Set up the server, not yet listening."""
        self.requests = []
        self.answers = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.httpd = None
        self.thread = None

    def __enter__(self):
        """Start listening on a free port of 127.0.0.1, in a thread of this process."""
        self.httpd = ThreadingServer((LOCALHOST, 0), self.handler_class())
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs=dict(poll_interval=0.05))
        self.thread.start()
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        """Stop the server (ending any answer's wait) and close its socket."""
        self.stopping.set()
        self.httpd.shutdown()
        self.thread.join()
        self.httpd.server_close()

    @property
    def port(self):
        """The port the server listens on (an integer)."""
        return self.httpd.server_address[1]

    def url(self, path):
        """
        An ``http://`` URL of this server.

        :param path: The path, starting with ``/`` (a string).
        :returns: The URL (a string).
        """
        return 'http://%s:%i%s' % (LOCALHOST, self.port, path)

    def record(self, request):
        """
        Record a request and take the answer to give.

        :param request: A :data:`Request`.
        :returns: An :data:`Answer`.
        """
        with self.lock:
            self.requests.append(request)
            return self.answers.pop(0) if self.answers else Answer(status=200)

    def handler_class(self):
        """A request handler class that reports to this server."""
        server = self

        class RecordingHandler(http.server.BaseHTTPRequestHandler):

            """Records each request with :meth:`RecordingServer.record()` and gives the answer it returns."""

            def do_GET(self):
                """Record a GET and answer it."""
                self.answer(b'')

            def do_POST(self):
                """Record a POST with its body and answer it."""
                self.answer(self.rfile.read(int(self.headers.get('Content-Length') or 0)))

            def answer(self, body):
                """Record the request, wait as the answer says, and send it with a short text."""
                answer = server.record(Request(self.command, self.path, dict(self.headers.items()), body))
                server.stopping.wait(answer.delay)
                text = b'OK' if answer.status < 400 else b'error'
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header('Content-Length', str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, format, *args):
                """Keep the server's access log off standard error."""

        return RecordingHandler
