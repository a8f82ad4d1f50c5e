"""The gunicorn worker ``coldbrew serve`` runs: greenlets on gevent, a read timeout on every client socket.

Each connection is a greenlet, so a client that connects and sends nothing, drips its headers a byte at a time
or trickles its body holds one greenlet — never the worker. gunicorn's async worker gives a connection
``keepalive`` seconds in total to deliver its request line and headers (it closes the connection after that);
this class adds a per-read timeout (:data:`READ_TIMEOUT_S`) for the body, so a client that stops sending
mid-body is answered 400 and disconnected instead of being waited on forever. docs/serving.md has the
reasoning and the measured start-up cost.

It is gunicorn's gevent worker (``gunicorn.workers.ggevent``) trimmed to what ``coldbrew serve`` uses, for
start-up time:

- no monkey-patching: ``patch_all`` costs 140 ms here (~400 ms on a loaded machine) at every worker start, i.e.
  on the path to the first request. The listening sockets are gevent sockets and every connection's socket comes
  from them, so all network I/O of the HTTP path is cooperative; the app itself only computes. Nothing in the
  worker uses threads, ``select`` or ``time.sleep`` on the request path;
- no import of ``gunicorn.workers.ggevent`` (which also loads gevent's pywsgi, monkey and ``packaging``,
  ~10 ms) — this module subclasses gunicorn's ``AsyncWorker`` directly;
- a stop is acted on at once (gunicorn's loop looks at its ``alive`` flag once a second): the loop also wakes on
  gunicorn's signal wake-up pipe.

Imported by gunicorn's arbiter by name (``worker_class``), never on the Lambda path.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from functools import partial
from typing import Any

import gevent
from gevent import hub
from gevent import socket as gsocket
from gevent.pool import Pool
from gevent.server import StreamServer
from gunicorn.workers.base_async import AsyncWorker

#: Seconds a body read may wait for the next bytes before the request is refused.
READ_TIMEOUT_S = 10.0
#: A lingering close (as nginx does it): after the answer, read and drop what the client is still sending, for
#: at most this long and this many bytes, before closing. Closing a socket with unread bytes makes the kernel send
#: a reset, which can destroy the answer the client has not read yet (a 413 for a body over the limit).
LINGER_S = 2.0
LINGER_BYTES = 8 * 1024 * 1024


class _LingeringSocket(gsocket.socket):
    """A client connection whose ``close`` first half-closes and drains (bounded by LINGER_S / LINGER_BYTES)."""

    __slots__ = ()

    def close(self) -> None:
        try:
            self.shutdown(socket.SHUT_WR)
            self.settimeout(LINGER_S)
            deadline, drained = time.monotonic() + LINGER_S, 0
            while drained < LINGER_BYTES and time.monotonic() < deadline:
                data = self.recv(65536)
                if not data:
                    break
                drained += len(data)
        except OSError:  # the client is gone or too slow: nothing left to protect
            pass
        super().close()


class Worker(AsyncWorker):
    """A gevent worker: one greenlet per connection, a timeout on each read, no monkey-patching."""

    #: The listeners: gunicorn's socket wrappers from the arbiter, replaced by gevent sockets in ``init_process``.
    sockets: list[Any]

    def init_process(self) -> None:
        """After the fork: gevent sockets for the listeners, a fresh event loop, then gunicorn's set-up."""
        self.sockets = [gsocket.socket(s.FAMILY, socket.SOCK_STREAM, fileno=s.sock.detach()) for s in self.sockets]
        hub.reinit()
        super().init_process()

    def timeout_ctx(self):
        """The deadline for reading one request's line and headers (gunicorn's ``keepalive``)."""
        return gevent.Timeout(self.cfg.keepalive, False)

    def notify(self) -> None:
        """Heartbeat to the arbiter; exit if the arbiter is gone."""
        super().notify()
        if self.ppid != os.getppid():
            self.log.info("Parent changed, shutting down: %s", self)
            sys.exit(0)

    def run(self) -> None:
        """Serve until told to stop, then let requests in flight finish (up to ``graceful_timeout``)."""
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
            try:  # every signal writes a byte to gunicorn's wake-up pipe
                gsocket.wait_read(self.PIPE[0], timeout=1.0)
                os.read(self.PIPE[0], 4096)
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
        """Serve one connection, every read from it bounded by READ_TIMEOUT_S."""
        client = _LingeringSocket(client.family, client.type, client.proto, fileno=client.detach())
        client.settimeout(READ_TIMEOUT_S)
        super().handle(listener, client, addr)

    def handle_request(self, listener_name, req, sock, addr):
        """One request; a greenlet killed at shutdown ends quietly."""
        try:
            return super().handle_request(listener_name, req, sock, addr)
        except (gevent.GreenletExit, SystemExit):
            return None

    def handle_quit(self, sig, frame) -> None:
        """SIGINT/SIGQUIT: handled in a greenlet, not inside the signal handler (it may block)."""
        gevent.spawn(super().handle_quit, sig, frame)

    def handle_usr1(self, sig, frame) -> None:
        """SIGUSR1 (reopen log files): handled in a greenlet as well."""
        gevent.spawn(super().handle_usr1, sig, frame)
