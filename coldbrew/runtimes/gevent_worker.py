"""The gunicorn worker ``coldbrew serve`` runs: gevent's, with a read timeout on every client socket.

Each connection is a greenlet, so a client that connects and sends nothing, drips its headers a byte at a time
or trickles its body holds one greenlet — never the worker. gunicorn already gives a connection
``keepalive`` seconds in total to deliver its request line and headers (it closes the connection after that);
this class adds a per-read timeout (:data:`READ_TIMEOUT_S`) for the body, so a client that stops sending
mid-body is answered 400 and disconnected instead of being waited on forever. docs/serving.md has the
reasoning and the measured start-up cost.

Imported by gunicorn's arbiter by name (``worker_class``), never on the Lambda path.
"""

from __future__ import annotations

from gunicorn.workers.ggevent import GeventWorker

#: Seconds a body read may wait for the next bytes before the request is refused.
READ_TIMEOUT_S = 10.0


class Worker(GeventWorker):
    """gunicorn's gevent worker, with a timeout on each read from a client socket."""

    def handle(self, listener, client, addr) -> None:
        """Serve one connection; the parent class would make its socket fully blocking."""
        client.settimeout(READ_TIMEOUT_S)
        # Skip GeventWorker.handle (it calls client.setblocking(1), which clears the timeout).
        super(GeventWorker, self).handle(listener, client, addr)
