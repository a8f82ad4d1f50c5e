"""Helpers for tests that talk to a real ``coldbrew serve`` over raw sockets.

Imported as ``from servetools import ...`` (tests/ is on sys.path, as for proctools and labtools).
"""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

from coldbrew.runtimes.server_process import ServerProcess


def address(server: ServerProcess) -> tuple[str, int]:
    """(host, port) the server listens on."""
    url = urlsplit(server.url)
    assert url.hostname is not None and url.port is not None
    return url.hostname, url.port


def read_all(sock: socket.socket, seconds: float) -> bytes:
    """Everything the server sends until it closes the connection, waiting at most ``seconds`` in total."""
    deadline = time.monotonic() + seconds
    chunks = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"server kept the connection open longer than {seconds} s")
        sock.settimeout(remaining)
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)
