"""A small HTTP/1.1 server on asyncio streams, enough for the lab's loopback endpoints.

Keep-alive, ``Content-Length`` and chunked request bodies (both capped: 413 beyond the cap);
every response carries a ``Content-Length``. A response header that could split the response
(CR, LF or NUL in a name or value, or a name that is not an HTTP token) is never written: the
client gets 502 instead. Header values outside Latin-1 are sent as UTF-8 bytes. The front door
and each environment's Runtime API run on it.
"""

from __future__ import annotations

import asyncio
import json
import re
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import urlsplit

from coldbrew.errors import ColdbrewError

MAX_HEADER_LINES = 200
MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_CHUNK_LINE = 1024
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
UNSAFE_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass
class Request:
    """One parsed request; header names are lower-case, repeated headers kept in order
    (``sent_names``: the same names as the client spelled them, for front doors that keep the case)."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes
    peer: str = "127.0.0.1"
    sent_names: list[str] | None = None

    def headers_as_sent(self) -> list[tuple[str, str]]:
        """The headers with their names as the client spelled them."""
        if self.sent_names is None or len(self.sent_names) != len(self.headers):
            return list(self.headers)
        return [(sent, value) for sent, (_, value) in zip(self.sent_names, self.headers, strict=True)]

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


class PayloadTooLarge(MalformedHttpRequest):
    """The request body is larger than the server accepts (answered 413)."""


def _chunk_size(line: bytes) -> int:
    text = line.split(b";")[0].strip()
    if not text or len(line) > MAX_CHUNK_LINE or not re.fullmatch(rb"[0-9A-Fa-f]+", text):
        raise MalformedHttpRequest("invalid chunk size line")
    return int(text, 16)


async def _read_body(reader: asyncio.StreamReader, headers: list[tuple[str, str]], max_body: int) -> bytes:
    values = dict(headers)
    if "chunked" in values.get("transfer-encoding", "").lower():
        chunks: list[bytes] = []
        total = 0
        while True:
            size = _chunk_size(await reader.readline())
            if size == 0:
                for _ in range(MAX_HEADER_LINES):  # trailers
                    if (await reader.readline()) in (b"\r\n", b"\n", b""):
                        return b"".join(chunks)
                raise MalformedHttpRequest("too many trailers")
            total += size
            if total > max_body:
                raise PayloadTooLarge(f"chunked body over {max_body} bytes")
            chunks.append(await reader.readexactly(size))
            await reader.readline()
    text = values.get("content-length", "0").strip() or "0"
    if not text.isdigit():
        raise MalformedHttpRequest("invalid Content-Length")
    length = int(text)
    if length > max_body:
        raise PayloadTooLarge(f"body over {max_body} bytes")
    return await reader.readexactly(length) if length else b""


async def read_request(reader: asyncio.StreamReader, peer: str, max_body: int = MAX_BODY_BYTES) -> Request | None:
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
    sent_names: list[str] = []
    for _ in range(MAX_HEADER_LINES):
        raw = await reader.readline()
        if raw in (b"\r\n", b"\n", b""):
            break
        name, _, value = raw.decode("latin-1").partition(":")
        headers.append((name.strip().lower(), value.strip()))
        sent_names.append(name.strip())
    else:
        raise MalformedHttpRequest("too many headers")
    body = await _read_body(reader, headers, max_body)
    return Request(method.upper(), target, version, headers, body, peer, sent_names)


class UnsafeHeader(ColdbrewError):
    """A response header that could split the response or is not a valid header at all."""


def check_header(name: str, value: str) -> None:
    """Raise UnsafeHeader unless ``name`` is an HTTP token and ``value`` holds no control characters
    (CR, LF, NUL...; a tab is allowed)."""
    if not isinstance(name, str) or not TOKEN.fullmatch(name):
        raise UnsafeHeader(f"invalid header name {name!r:.60}")
    if not isinstance(value, str) or UNSAFE_VALUE.search(value):
        raise UnsafeHeader(f"invalid value for header {name}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from JSON "\ud800"
        raise UnsafeHeader(f"invalid value for header {name}") from None


def encode_response(response: Response, keep_alive: bool) -> bytes:
    """Status line, headers and body as bytes; raises UnsafeHeader for a header that could split it."""
    reason = HTTPStatus(response.status).phrase if response.status in HTTPStatus._value2member_map_ else ""
    lines = [f"HTTP/1.1 {response.status} {reason}".encode()]
    for name, value in response.headers:
        check_header(name, value)
        if name.lower() not in ("content-length", "connection", "transfer-encoding"):
            lines.append(f"{name}: {value}".encode())  # UTF-8: Latin-1 cannot hold every value
    lines.append(f"Content-Length: {len(response.body)}".encode())
    lines.append(b"Connection: keep-alive" if keep_alive else b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + response.body


BAD_GATEWAY = Response.json(502, {"message": "Bad Gateway"})


async def start_server(handler: Handler, port: int = 0, max_body: int = MAX_BODY_BYTES) -> asyncio.Server:
    """Serve ``handler`` on 127.0.0.1:``port`` (0 picks a free port); bodies over ``max_body`` get 413."""

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = (writer.get_extra_info("peername") or ("127.0.0.1",))[0]
        try:
            while True:
                try:
                    request = await read_request(reader, peer, max_body)
                except PayloadTooLarge:
                    writer.write(encode_response(Response.json(413, {"message": "Request Entity Too Large"}), False))
                    break
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
                try:
                    data = encode_response(response, keep)
                except UnsafeHeader:  # never write it: a split response could smuggle headers or bodies
                    data = encode_response(BAD_GATEWAY, keep)
                writer.write(data)
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
