"""A small HTTP/1.1 server on asyncio streams, enough for the lab's loopback endpoints.

Keep-alive, ``Content-Length`` and chunked request bodies (both capped: 413 beyond the cap);
every response carries a ``Content-Length``. A response header that could split the response
(CR, LF or NUL in a name or value, or a name that is not an HTTP token) is never written: the
client gets 502 instead. Header values outside Latin-1 are sent as UTF-8 bytes. The front door
and each environment's Runtime API run on it.

Framing follows RFC 9112 strictly, so no request can be read two ways: a request with both
``Content-Length`` and ``Transfer-Encoding`` (section 6.3), a ``Transfer-Encoding`` other than exactly
``chunked``, differing ``Content-Length`` values, an obs-folded header line (section 5.2), a header name
with whitespace before its colon, and chunk framing not terminated by CRLF (section 7.1) are each a 400,
and the connection is closed, so bytes after them are never read as another request.

With :data:`FRONT_DOOR_LIMITS` (the front door; the Runtime API has none, its client is the lab's own
runtime) a connection gets ``coldbrew serve``'s deadlines: the request's line and headers within
``head_s`` of connecting or of the previous response (which also closes idle keep-alive connections),
a body that stalls for ``body_s`` is answered 400; at most ``max_connections`` are open at once (and never
more than half the process's file-descriptor limit), the next ones are answered 503 and closed, with one
log line per episode, so a flood of idle connections can neither exhaust the lab's file descriptors nor
keep it unreachable once they time out.
"""

from __future__ import annotations

import asyncio
import json
import re
import resource
import sys
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


@dataclass(frozen=True)
class Limits:
    """A server's deadlines (seconds) and connection cap."""

    head_s: float  # the request line and headers, from connect or the previous response (idle keep-alive too)
    body_s: float  # the longest a request body may go without a new byte (answered 400)
    max_connections: int  # open connections at most; beyond, 503 and close


#: The front door's: ``coldbrew serve``'s values (coldbrew/runtimes/local.py: HEADER_TIMEOUT_S, READ_TIMEOUT_S,
#: CONNECTION_LIMIT), repeated here because the lab imports none of the serving code.
FRONT_DOOR_LIMITS = Limits(head_s=5.0, body_s=10.0, max_connections=1000)


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
        """The target's path as sent: ``//_warm`` stays ``//_warm`` (``urlsplit`` would read ``_warm`` as a host)."""
        if self.target.startswith("/"):  # origin-form, what clients send: no scheme or authority to split off
            return self.target.partition("?")[0].partition("#")[0]
        return urlsplit(self.target).path

    @property
    def query(self) -> str:
        if self.target.startswith("/"):
            return self.target.partition("#")[0].partition("?")[2]
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


class HeadTimeout(ColdbrewError):
    """The request line and headers did not arrive in time, or a keep-alive connection idled too long (closed)."""


def _chunk_size(line: bytes) -> int:
    if not line.endswith(b"\r\n"):  # a bare LF (or no line end at all): RFC 9112 section 7.1 frames with CRLF
        raise MalformedHttpRequest("chunk size line not terminated by CRLF")
    text = line[:-2].split(b";")[0].strip()
    if not text or len(line) > MAX_CHUNK_LINE or not re.fullmatch(rb"[0-9A-Fa-f]+", text):
        raise MalformedHttpRequest("invalid chunk size line")
    return int(text, 16)


async def _within(awaitable, seconds: float | None):
    """``awaitable``'s result; a stall of more than ``seconds`` (None: no limit) is a MalformedHttpRequest."""
    if seconds is None:
        return await awaitable
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        raise MalformedHttpRequest(f"request body stalled for {seconds:g} s") from None


def _framing(headers: list[tuple[str, str]]) -> tuple[bool, int]:
    """(chunked, Content-Length) of a request whose framing is unambiguous; else MalformedHttpRequest."""
    encodings = [v for k, v in headers if k == "transfer-encoding"]
    lengths = {v.strip() for k, v in headers if k == "content-length"}
    if encodings:
        if lengths:  # RFC 9112 section 6.3: a smuggling attempt; answered 400 and the connection closed
            raise MalformedHttpRequest("both Content-Length and Transfer-Encoding")
        if len(encodings) != 1 or encodings[0].strip().lower() != "chunked":
            raise MalformedHttpRequest("unsupported Transfer-Encoding (only chunked)")
        return True, 0
    if len(lengths) > 1:
        raise MalformedHttpRequest("differing Content-Length values")
    text = lengths.pop() if lengths else "0"
    if not text.isdigit():
        raise MalformedHttpRequest("invalid Content-Length")
    return False, int(text)


async def _read_body(
    reader: asyncio.StreamReader, headers: list[tuple[str, str]], max_body: int, body_s: float | None = None
) -> bytes:
    chunked, length = _framing(headers)
    if chunked:
        chunks: list[bytes] = []
        total = 0
        while True:
            size = _chunk_size(await _within(reader.readline(), body_s))
            if size == 0:
                for _ in range(MAX_HEADER_LINES):  # trailers
                    line = await _within(reader.readline(), body_s)
                    if not line.endswith(b"\r\n"):
                        raise MalformedHttpRequest("trailer line not terminated by CRLF")
                    if line == b"\r\n":
                        return b"".join(chunks)
                raise MalformedHttpRequest("too many trailers")
            total += size
            if total > max_body:
                raise PayloadTooLarge(f"chunked body over {max_body} bytes")
            chunks.append(await _within(reader.readexactly(size), body_s))
            if await _within(reader.readexactly(2), body_s) != b"\r\n":
                raise MalformedHttpRequest("chunk data not followed by CRLF")
    if length > max_body:
        raise PayloadTooLarge(f"body over {max_body} bytes")
    if not length:
        return b""
    if body_s is None:
        return await reader.readexactly(length)
    parts: list[bytes] = []
    left = length
    while left:  # the deadline is per read: a body that keeps moving may take longer than body_s in all
        part = await _within(reader.read(min(left, 1 << 16)), body_s)
        if not part:
            raise asyncio.IncompleteReadError(b"".join(parts), length)
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, str, str, list[tuple[str, str]], list[str]] | None:
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
        if raw[:1] in (b" ", b"\t"):  # obs-fold: RFC 9112 section 5.2 lets a server reject it with 400
            raise MalformedHttpRequest("obsolete line folding in a header")
        name, colon, value = raw.decode("latin-1").partition(":")
        if not colon or not TOKEN.fullmatch(name):  # "Name : v" (section 5.1), no colon, or not a token
            raise MalformedHttpRequest("malformed header line")
        headers.append((name.lower(), value.strip()))
        sent_names.append(name)
    else:
        raise MalformedHttpRequest("too many headers")
    return method, target, version, headers, sent_names


async def read_request(
    reader: asyncio.StreamReader, peer: str, max_body: int = MAX_BODY_BYTES, limits: Limits | None = None
) -> Request | None:
    """The next request on a connection, or None when the client closed it.

    Raises MalformedHttpRequest (400), PayloadTooLarge (413) or, with ``limits``, HeadTimeout (close).
    """
    if limits is None:
        head = await _read_head(reader)
    else:
        try:
            head = await asyncio.wait_for(_read_head(reader), limits.head_s)
        except TimeoutError:
            raise HeadTimeout(f"no request head within {limits.head_s:g} s") from None
    if head is None:
        return None
    method, target, version, headers, sent_names = head
    body = await _read_body(reader, headers, max_body, None if limits is None else limits.body_s)
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


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seconds: float = 1.0) -> None:
    """After a final answer: half-close, then read and drop what the client still sends (at most ``seconds`` and
    1 MB), so the close does not reset the connection (unread bytes make the kernel send RST, which can destroy the
    answer before the client reads it). Never parsed: bytes after a refused request are never another request."""
    try:
        await asyncio.wait_for(writer.drain(), seconds)
        if writer.can_write_eof():
            writer.write_eof()
        dropped = 0
        async with asyncio.timeout(seconds):
            while dropped < (1 << 20) and (chunk := await reader.read(65536)):
                dropped += len(chunk)
    except (ConnectionError, TimeoutError, OSError):
        pass


SERVICE_UNAVAILABLE = Response.json(503, {"message": "Service Unavailable"})
ACCEPT_ERROR = "socket.accept() out of system resource"  # asyncio's message when accept() fails with EMFILE/ENFILE


def connection_cap(limits: Limits) -> int:
    """``limits.max_connections``, but never more than half the process's soft file-descriptor limit: the other
    half stays for the environments (pipes, Runtime API sockets) and the files the lab opens."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return limits.max_connections
    return max(1, min(limits.max_connections, soft // 2))


class _Episode:
    """One stderr line when a condition starts (at the cap, out of descriptors), none while it lasts."""

    def __init__(self, text: str):
        self.text, self.active = text, False

    def start(self, detail: str = "") -> None:
        if not self.active:
            self.active = True
            print(f"coldbrew lab: {self.text}{detail}", file=sys.stderr, flush=True)

    def end(self) -> None:
        self.active = False


def _quiet_accept_errors(loop: asyncio.AbstractEventLoop, episode: _Episode) -> None:
    """Make asyncio's accept-failure report (a traceback every second while descriptors are exhausted) one line."""
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict) -> None:
        if str(context.get("message", "")).startswith(ACCEPT_ERROR):
            episode.start(f" ({context.get('exception')})")
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


async def start_server(
    handler: Handler, port: int = 0, max_body: int = MAX_BODY_BYTES, limits: Limits | None = None
) -> asyncio.Server:
    """Serve ``handler`` on 127.0.0.1:``port`` (0 picks a free port); bodies over ``max_body`` get 413.

    ``limits`` (the front door: :data:`FRONT_DOOR_LIMITS`) adds the head and body deadlines and the connection cap.
    """
    cap = connection_cap(limits) if limits is not None else None
    open_connections = 0
    at_cap = _Episode(f"front door at its limit of {cap} open connections: answering 503 until some close")
    out_of_descriptors = _Episode("out of file descriptors: new connections wait in the backlog")
    if limits is not None:
        _quiet_accept_errors(asyncio.get_running_loop(), out_of_descriptors)

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_connections
        out_of_descriptors.end()  # accept() worked again
        if cap is not None and open_connections >= cap:
            at_cap.start()
            try:
                writer.write(encode_response(SERVICE_UNAVAILABLE, False))
                await asyncio.wait_for(writer.drain(), 1.0)
            except (ConnectionError, TimeoutError):
                pass
            finally:
                writer.close()
            return
        open_connections += 1
        try:
            await serve_connection(reader, writer)
        finally:
            open_connections -= 1
            if cap is not None and open_connections < cap:
                at_cap.end()

    async def serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = (writer.get_extra_info("peername") or ("127.0.0.1",))[0]
        try:
            while True:
                try:
                    request = await read_request(reader, peer, max_body, limits)
                except HeadTimeout:
                    break  # as coldbrew serve: a connection past its head deadline is closed without an answer
                except PayloadTooLarge:
                    writer.write(encode_response(Response.json(413, {"message": "Request Entity Too Large"}), False))
                    await _linger(reader, writer)
                    break
                except (MalformedHttpRequest, ValueError, UnicodeError):
                    writer.write(encode_response(Response.json(400, {"message": "Bad Request"}), False))
                    await _linger(reader, writer)
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
