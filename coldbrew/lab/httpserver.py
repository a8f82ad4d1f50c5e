"""A small HTTP/1.1 server on asyncio streams, enough for the lab's loopback endpoints.

Keep-alive, ``Content-Length`` and chunked request bodies; every response carries a
``Content-Length``. The front door and each environment's Runtime API run on it.
"""

from __future__ import annotations

import asyncio
import json
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import urlsplit

from coldbrew.errors import ColdbrewError

MAX_HEADER_LINES = 200
MAX_BODY_BYTES = 64 * 1024 * 1024


@dataclass
class Request:
    """One parsed request; header names are lower-case, repeated headers kept in order."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes
    peer: str = "127.0.0.1"

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> str:
        return urlsplit(self.target).query

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (case-insensitive)."""
        name = name.lower()
        return next((v for k, v in self.headers if k == name), default)


@dataclass
class Response:
    """A response to write: status, headers (name, value) and body bytes."""

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @classmethod
    def json(cls, status: int, obj, headers: list[tuple[str, str]] | None = None) -> Response:
        """A JSON body with its Content-Type."""
        return cls(status, [("Content-Type", "application/json"), *(headers or [])], json.dumps(obj).encode())


Handler = Callable[[Request], Awaitable[Response]]


class MalformedHttpRequest(ColdbrewError):
    """The bytes on the wire are not an HTTP request the lab accepts (answered with a 400, connection closed)."""


async def _read_body(reader: asyncio.StreamReader, headers: list[tuple[str, str]]) -> bytes:
    values = dict(headers)
    if "chunked" in values.get("transfer-encoding", "").lower():
        chunks: list[bytes] = []
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(await reader.readexactly(size))
            await reader.readline()
    length = int(values.get("content-length", "0") or 0)
    if length > MAX_BODY_BYTES:
        raise MalformedHttpRequest("body too large")
    return await reader.readexactly(length) if length else b""


async def read_request(reader: asyncio.StreamReader, peer: str) -> Request | None:
    """The next request on a connection, or None when the client closed it."""
    line = await reader.readline()
    while line in (b"\r\n", b"\n"):
        line = await reader.readline()
    if not line:
        return None
    try:
        method, target, version = line.decode("latin-1").split()
    except ValueError as exc:
        raise MalformedHttpRequest("malformed request line") from exc
    headers: list[tuple[str, str]] = []
    for _ in range(MAX_HEADER_LINES):
        raw = await reader.readline()
        if raw in (b"\r\n", b"\n", b""):
            break
        name, _, value = raw.decode("latin-1").partition(":")
        headers.append((name.strip().lower(), value.strip()))
    else:
        raise MalformedHttpRequest("too many headers")
    return Request(method.upper(), target, version, headers, await _read_body(reader, headers), peer)


def encode_response(response: Response, keep_alive: bool) -> bytes:
    """Status line, headers and body as bytes."""
    reason = HTTPStatus(response.status).phrase if response.status in HTTPStatus._value2member_map_ else ""
    lines = [f"HTTP/1.1 {response.status} {reason}"]
    lines += [f"{k}: {v}" for k, v in response.headers if k.lower() not in ("content-length", "connection")]
    lines.append(f"Content-Length: {len(response.body)}")
    lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body


async def start_server(handler: Handler, port: int = 0) -> asyncio.Server:
    """Serve ``handler`` on 127.0.0.1:``port`` (0 picks a free port)."""

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = (writer.get_extra_info("peername") or ("127.0.0.1",))[0]
        try:
            while True:
                try:
                    request = await read_request(reader, peer)
                except (MalformedHttpRequest, ValueError, UnicodeError):
                    writer.write(encode_response(Response.json(400, {"message": "Bad Request"}), False))
                    break
                if request is None:
                    break
                try:
                    response = await handler(request)
                except Exception:  # noqa: BLE001 - a lab bug must not hang the client (traceback printed)
                    traceback.print_exc()
                    response = Response.json(500, {"message": "lab internal error"})
                keep = (request.header("connection") or "").lower() != "close" and request.version != "HTTP/1.0"
                writer.write(encode_response(response, keep))
                await writer.drain()
                if not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # client gone, or the lab is stopping this endpoint
        finally:
            writer.close()

    return await asyncio.start_server(connection, "127.0.0.1", port, reuse_address=True, backlog=1024)


def server_port(server: asyncio.Server) -> int:
    """The port a started server listens on."""
    return server.sockets[0].getsockname()[1]
