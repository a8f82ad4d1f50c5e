"""The gunicorn worker ``coldbrew serve`` runs: gevent's, with a read timeout on every client socket.

Each connection is a greenlet, so a client that connects and sends nothing, drips its headers a byte at a time
or trickles its body holds one greenlet — never the worker. gunicorn already gives a connection
``keepalive`` seconds in total to deliver its request line and headers (it closes the connection after that);
this class adds a per-read timeout (:data:`READ_TIMEOUT_S`) for the body, so a client that stops sending
mid-body is answered 400 and disconnected instead of being waited on forever. docs/serving.md has the
reasoning and the measured start-up cost.

The worker does not monkey-patch the standard library (gunicorn's gevent worker calls ``patch_all``, which
costs 140 ms here, ~400 ms on a loaded machine, at every worker start, i.e. on the path to the first request):
the listening sockets are gevent sockets and every connection's socket comes from them, so all network I/O of
the HTTP path is cooperative; the app itself only computes. Nothing in the worker uses threads, ``select`` or
``time.sleep`` on the request path.

Imported by gunicorn's arbiter by name (``worker_class``), never on the Lambda path.
"""

from __future__ import annotations

import os
import socket
import time
from functools import partial

import gevent
from gevent import socket as gsocket
from gevent.pool import Pool
from gevent.server import StreamServer
from gunicorn.workers.ggevent import GeventWorker

#: Seconds a body read may wait for the next bytes before the request is refused.
READ_TIMEOUT_S = 10.0


class Worker(GeventWorker):
    """gunicorn's gevent worker, with a timeout on each read from a client socket and no monkey-patching."""

    def patch(self) -> None:
        """Make the listening sockets gevent sockets; leave the rest of the standard library alone."""
        self.sockets = [gsocket.socket(s.FAMILY, socket.SOCK_STREAM, fileno=s.sock.detach()) for s in self.sockets]

    def run(self) -> None:
        """Serve until told to stop, then let requests in flight finish (up to ``graceful_timeout``).

        gunicorn's version looks at ``alive`` once a second and then polls its pools once a second, so a stop took
        about a second longer than the sync worker's. Here the loop also wakes on gunicorn's signal wake-up pipe
        (every signal writes a byte to it), so SIGTERM/SIGINT are acted on at once.
        """
        if self.cfg.is_ssl or self.server_class is not None:  # not used by coldbrew serve: keep gunicorn's loop
            super().run()
            return
        servers = []
        for listener in self.sockets:
            listener.setblocking(1)
            server = StreamServer(listener, handle=partial(self.handle, listener), spawn=Pool(self.worker_connections))
            if self.cfg.workers > 1:
                server.max_accept = 1
            server.start()
            servers.append(server)
        while self.alive:
            self.notify()
            try:
                gsocket.wait_read(self.PIPE[0], timeout=1.0)
                os.read(self.PIPE[0], 4096)  # drain; the signal handler itself runs in the interpreter
            except (TimeoutError, gsocket.timeout, BlockingIOError, InterruptedError):
                pass
            gevent.sleep(0)  # let the Python-level signal handler run before ``alive`` is read again
        for server in servers:
            server.close()
        deadline = time.monotonic() + self.cfg.graceful_timeout
        while any(server.pool.free_count() != server.pool.size for server in servers):
            if time.monotonic() > deadline:
                self.log.warning("Worker graceful timeout (pid:%s)", self.pid)
                for server in servers:
                    server.stop(timeout=1)
                return
            self.notify()
            gevent.sleep(0.05)

    def handle(self, listener, client, addr) -> None:
        """Serve one connection; the parent class would make its socket fully blocking."""
        client.settimeout(READ_TIMEOUT_S)
        # Skip GeventWorker.handle (it calls client.setblocking(1), which clears the timeout).
        super(GeventWorker, self).handle(listener, client, addr)
