"""A loopback HTTP proxy in front of the test S3 server (SeaweedFS), for tests that change what S3 answers.

Imported as ``from s3proxy import ...`` (tests/ is on sys.path). A test subclasses :class:`ForwardingProxy` for
its knobs and :class:`ForwardingHandler` for how an answer is changed (its ``forward`` method).
"""

from __future__ import annotations

import http.client
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ForwardingProxy(http.server.ThreadingHTTPServer):
    """Listens on 127.0.0.1 (a free port) and forwards each request to ``upstream`` (``http://host:port``)."""

    daemon_threads = True

    def __init__(self, upstream: str, handler: type[ForwardingHandler]):
        super().__init__(("127.0.0.1", 0), handler)
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))

    def handle_error(self, request, client_address):
        pass  # clients dropping connections (some tests cut answers short on purpose)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class ForwardingHandler(http.server.BaseHTTPRequestHandler):
    """GET and HEAD go to :meth:`forward`; :meth:`upstream` fetches the S3 server's own answer."""

    protocol_version = "HTTP/1.1"
    server: ForwardingProxy

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.forward()

    def do_GET(self):
        self.forward()

    def forward(self) -> None:
        raise NotImplementedError

    def upstream(self) -> tuple[http.client.HTTPResponse, bytes]:
        """The S3 server's answer to this request (same method, path and headers): the response and its body."""
        up = http.client.HTTPConnection(*self.server.upstream, timeout=10)
        up.request(self.command, self.path, headers=dict(self.headers.items()))
        resp = up.getresponse()
        body = resp.read()
        up.close()
        return resp, body


@contextmanager
def serving(proxy: ForwardingProxy, s3_env) -> Iterator[ForwardingProxy]:
    """Run ``proxy`` in a thread and point boto3 at it (``AWS_ENDPOINT_URL`` via the ``s3_env`` monkeypatch) until
    the block ends."""
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    s3_env.setenv("AWS_ENDPOINT_URL", proxy.url)
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
