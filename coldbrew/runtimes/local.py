"""The local server: the WSGI app under waitress, with the deadlines and error bodies ``coldbrew serve`` promises.

waitress (pure Python, maintained) reads every connection in one asynchronous loop and hands a request to a worker
thread only once its head and whole body are buffered, so a client that connects and sends nothing, drips its
headers or trickles its body holds a socket, never a thread. This module adds what ``coldbrew serve`` promises on top
(docs/serving.md, "Slow clients"), using waitress's documented extension points — the server's ``channel_class``,
the channel's ``task_class`` / ``error_task_class`` / ``parser_class`` — and the channel's state, read once per tick
of the loop:

- a deadline for a request's head (:data:`HEADER_TIMEOUT_S`, also the longest a keep-alive connection may idle)
  and a per-read timeout for its body (:data:`READ_TIMEOUT_S`, answered 400);
- the body limit (``--max-body-bytes``) enforced while the body arrives: a declared length over it is refused
  before a byte of the body is read, a chunked body as soon as it grows past it;
- every error the server itself answers (bad request line or header, bad chunking, headers too large, body too
  large, the body timeout) as a one-line JSON body ``{"error", "field", "index"}``, like the app's own errors;
- a lingering close (as nginx does it), so a client still sending a refused body reads its 413 instead of a reset;
- one access-log line per request on stdout, ``coldbrew: serving on URL`` once listening, and a graceful stop on
  SIGTERM or Ctrl-C (requests in flight finish, up to :data:`GRACEFUL_TIMEOUT_S`).

``--workers N`` is the number of threads running the app. The C kernel releases the GIL while it walks the trees,
so those walks run in parallel; the rest of a request is Python and takes the GIL in turn.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shlex
import signal
import socket
import sys
import threading
import time
from typing import Any

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, ParsingError
from waitress.rfc7230 import CHUNK_EXT_RE, ONLY_HEXDIG_RE
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher, WSGITask
from waitress.utilities import BadRequest, RequestEntityTooLarge

from coldbrew.errors import ColdbrewError

# The line printed on stdout once the server accepts connections (the demo and bench parse it).
READY_PREFIX = "coldbrew: serving on "
#: Seconds a connection gets to deliver a request's line and headers, counted from when it connected or its
#: previous response was done; the same bound closes an idle keep-alive connection.
HEADER_TIMEOUT_S = 5.0
#: Seconds a request body may go without new bytes before the request is answered 400 and the connection closed.
READ_TIMEOUT_S = 10.0
#: Seconds a stopping server lets requests in flight finish.
GRACEFUL_TIMEOUT_S = 10.0
#: A lingering close: after the last answer, half-close and read and drop what the client still sends, for at most
#: this long and this many bytes. Closing a socket with unread bytes makes the kernel send a reset, which can
#: destroy an answer the client has not read yet (a 413 for a body over the limit).
LINGER_S = 2.0
LINGER_BYTES = 8 * 1024 * 1024
#: Open connections at most; more wait in the listen backlog.
CONNECTION_LIMIT = 1000
#: Idle shedding: once this many connections are open, the loop closes the ones waiting for a request (idle, or
#: still sending a head) longest idle first, down to IDLE_SHED_TO, so a flood of idle connections cannot keep
#: the table full and ordinary clients in the backlog. Connections with a request in flight are never closed.
IDLE_SHED_AT = 900
IDLE_SHED_TO = 800
IDLE_SHED_LOG_EVERY_S = 60.0
#: The body budget (issue #23): once a request's head is in and its body has started, the body must keep arriving
#: at BODY_MIN_RATE bytes per second on average after a grace of BODY_GRACE_S — by ``body_since + BODY_GRACE_S +
#: bytes so far / BODY_MIN_RATE`` — or the request is answered 408 and the connection closed. A 1 MiB body may take
#: 17 minutes at this rate; one dripped a byte every 8 s is out after about 5 s.
BODY_GRACE_S = 5.0
BODY_MIN_RATE = 1024
#: Connections reading a body at once, at most. A request whose body is still arriving ADMIT_WAIT_S (to a tick more)
#: after its head while this many are reading is shed (503, ``Retry-After: 1``, close), so slow bodies cannot take
#: every connection; a request that arrives whole, or whose body follows its head at once (as ordinary clients send
#: them), is never shed.
BODY_READERS_MAX = 64
#: A body that starts while BODY_READERS_MAX are being read waits this long (up to a tick more) for a free place;
#: if it is still arriving then and none is free, it is shed.
ADMIT_WAIT_S = 0.2
#: How long a shed connection lingers after its 503 (the usual LINGER_S would let shed drippers fill the table).
SHED_LINGER_S = 0.25
#: The soft limit on open files is raised to the hard limit, up to this: CONNECTION_LIMIT sockets plus headroom.
NOFILE_WANTED = 4096
#: How often (seconds) the loop wakes to check the deadlines above when no socket is ready.
TICK_S = 0.25

_ERROR_FIELDS = {"field": None, "index": None}
_next_check = 0.0  # when the loop next looks at the connections' deadlines
_stdout_lock = threading.Lock()


class _Adjustments(Adjustments):
    """waitress's settings plus the app's body limit, which the parser enforces."""

    max_body_bytes = 1_048_576


class _Refused(BadRequest):
    """An error this module answers with its own sentence (waitress's errors get one in ``_message``)."""

    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.code, self.reason = code, reason


def _too_large(message: str) -> _Refused:
    return _Refused(RequestEntityTooLarge.code, RequestEntityTooLarge.reason, message)


#: A line feed not preceded by a carriage return: HTTP/1.1's framing lines end with CRLF (RFC 9112 section 2.2).
_BARE_LF = re.compile(rb"(?<!\r)\n")
#: Longest chunk-size line (size and extensions) and chunk trailer section a chunked body may carry.
CHUNK_LINE_BYTES = 4096
TRAILER_BYTES = 65536


class _ChunkedBody:
    """A chunked request body (RFC 9112 section 7.1) decoded strictly, with waitress's receiver interface.

    waitress's own receiver waits for a CRLF that a bare-LF client never sends (no answer until the body deadline);
    this one refuses a bare LF or CR in any framing line at once, and bounds the size lines and the trailer.
    ``received`` returns how many bytes belong to this body, so a pipelined request after it is left alone.
    """

    completed = False
    error: BadRequest | None = None

    def __init__(self, buf):
        self.buf = buf
        self.state = "size"  # size -> data -> data-end -> size ... -> trailer -> done
        self.line = b""  # the framing line read so far (size line or trailer line)
        self.remaining = 0  # bytes of the current chunk still to come
        self.trailer_bytes = 0

    def __len__(self) -> int:
        return self.buf.__len__()

    def getfile(self):
        return self.buf.getfile()

    def getbuf(self):
        return self.buf

    def _framing_line(self, data: bytes, pos: int, limit: int) -> tuple[bytes | None, int]:
        """The next CRLF-terminated line (without CRLF) from ``data[pos:]`` and the new position; None if partial."""
        end = data.find(b"\n", pos)
        if end < 0:
            self.line += data[pos:]
            if len(self.line) > limit:
                raise ParsingError(f"chunk framing line over {limit} bytes")
            return None, len(data)
        line, self.line = self.line + data[pos:end], b""
        if len(line) > limit:
            raise ParsingError(f"chunk framing line over {limit} bytes")
        if not line.endswith(b"\r"):
            raise ParsingError("bare LF in the chunk framing: its lines must end with CRLF")
        line = line[:-1]
        if b"\r" in line:
            raise ParsingError("bare CR in the chunk framing")
        return line, end + 1

    def received(self, data: bytes) -> int:
        if self.completed:
            return 0
        try:
            return self._decode(data)
        except ParsingError as exc:
            self.error = BadRequest(str(exc))
            self.completed = True
            return len(data)

    def _decode(self, data: bytes) -> int:
        pos = 0
        while pos < len(data):
            if self.state == "data":
                take = min(self.remaining, len(data) - pos)
                self.buf.append(data[pos : pos + take])
                pos += take
                self.remaining -= take
                if not self.remaining:
                    self.state = "data-end"
            elif self.state == "data-end":  # the CRLF after a chunk's data
                need = 2 - len(self.line)
                self.line += data[pos : pos + need]
                pos = min(pos + need, len(data))
                if len(self.line) == 2:
                    end, self.line = self.line, b""
                    if end != b"\r\n":
                        bare = end[:1] == b"\n"
                        raise ParsingError(
                            f"{'bare LF after the chunk data' if bare else 'chunk not properly terminated'}: "
                            "chunk data must be followed by CRLF"
                        )
                    self.state = "size"
            elif self.state == "size":
                line, pos = self._framing_line(data, pos, CHUNK_LINE_BYTES)
                if line is None:
                    break
                size, semi, ext = line.partition(b";")
                if semi and not CHUNK_EXT_RE.match(b";" + ext):
                    raise ParsingError("invalid chunk extension")
                if not ONLY_HEXDIG_RE.match(size):
                    raise ParsingError("invalid chunk size")
                self.remaining = int(size, 16)
                self.state = "data" if self.remaining else "trailer"
            else:  # the trailer section: field lines, then an empty line
                before = pos
                line, pos = self._framing_line(data, pos, TRAILER_BYTES)
                self.trailer_bytes += pos - before
                if self.trailer_bytes > TRAILER_BYTES:
                    raise ParsingError(f"chunk trailer over {TRAILER_BYTES} bytes")
                if line is None:
                    break
                if not line:
                    self.completed = True
                    return pos
        return pos


class _Parser(HTTPRequestParser):
    """waitress's parser with RFC 9112's framing rules and the body limit (``--max-body-bytes``) enforced early.

    Refused with a 400, the connection then closed (and whatever the client pipelined behind it never parsed):
    a bare LF in the request head or the chunk framing (which waitress leaves waiting for a CRLF), obs-fold header
    lines (a header continued on a line starting with a space or tab), a request carrying both Content-Length and
    Transfer-Encoding (a smuggling vector: RFC 9112 section 6.3) and an HTTP/1.0 request with Transfer-Encoding.
    """

    error: Any  # waitress's attributes this class sets (waitress has no type hints)
    completed: bool
    headers_finished: bool
    body_rcv: Any

    def received(self, data: bytes) -> int:
        if self.completed:
            return 0
        if self.body_rcv is None and not self.headers_finished:
            seen = self.header_plus[-3:] + data
            end = seen.find(b"\r\n\r\n")
            if _BARE_LF.search(seen if end < 0 else seen[: end + 4]):
                self.first_line = b"-"
                self.error = BadRequest("bare LF in the request head: its lines must end with CRLF")
                self.completed = self.headers_finished = True
                return len(data)
        consumed = super().received(data)
        # waitress's own 413 (its looser bound, below) is replaced by the exact one when it applies.
        if self.body_rcv is not None and (self.error is None or type(self.error) is RequestEntityTooLarge):
            limit = self.adj.max_body_bytes
            if not self.chunked and self.content_length > limit:
                self.error = _too_large(f"request body is {self.content_length} bytes; the limit is {limit} bytes")
                self.completed = True
            elif self.chunked and len(self.body_rcv) > limit:
                self.error = _too_large(f"request body exceeds the limit of {limit} bytes")
                self.completed = True
        if self.error is not None and self.completed:
            return len(data)  # the connection closes after the error: nothing after it is a request
        return consumed

    def parse_header(self, header_plus: bytes) -> None:
        names = set()
        for line in header_plus.split(b"\r\n")[1:]:
            if line[:1] in (b" ", b"\t"):
                raise ParsingError("obsolete line folding (a header line starting with a space or tab) is refused")
            names.add(line.split(b":", 1)[0].lower())
        if b"transfer-encoding" in names and b"content-length" in names:
            raise ParsingError("both Content-Length and Transfer-Encoding: the body's length is ambiguous")
        super().parse_header(header_plus)
        if b"transfer-encoding" in names and self.version != "1.1":
            raise ParsingError(f"Transfer-Encoding in an HTTP/{self.version} request")
        if self.chunked:  # the strict decoder instead of waitress's
            self.body_rcv = _ChunkedBody(self.body_rcv.getbuf())


def _message(error, adj: _Adjustments) -> str:
    """One sentence naming the problem, for an error waitress (or this module) found in a request."""
    if isinstance(error, _Refused):
        return str(error.body)
    detail = str(error.body).strip().rstrip(".")
    detail = detail[:1].lower() + detail[1:]
    if error.code == 413:  # waitress's own bound on a chunked body's bytes on the wire (framing included)
        return f"request body exceeds the limit of {adj.max_body_bytes} bytes"
    if error.code == 431:
        return f"request line and headers exceed the limit of {adj.max_request_header_size} bytes"
    if error.code == 500:
        return "internal server error"
    if "chunk" in detail:
        return f"malformed or incomplete request body: {detail}"[:300]
    if error.code == 501:
        return f"not implemented: {detail}"[:300]
    return f"malformed request: {detail}"[:300]


class _LoggedTask:
    """Mixin for waitress's tasks: one access-log line per request, and the connection's head clock restarted."""

    channel: _Channel
    request: HTTPRequestParser
    status: str
    content_bytes_written: int

    def service(self) -> None:
        started = time.perf_counter()
        try:
            super().service()  # type: ignore[misc]
        finally:
            self.channel.idle_since = time.time()
            _access_log(self, (time.perf_counter() - started) * 1000)


def _access_log(task: _LoggedTask, ms: float) -> None:
    """``127.0.0.1 "POST /predict HTTP/1.1" 200 57 bytes 1 ms``: client, request line, status, body bytes, duration."""
    request = task.request
    line = getattr(request, "first_line", b"-")
    if getattr(request.error, "code", None) == 431:
        line = b"-"  # waitress stands a made-up request line in for the one it refused to read
    client = task.channel.addr[0] if task.channel.addr else "-"
    text = (
        f'{client} "{line.decode("latin-1").encode("unicode_escape").decode("ascii")}" '
        f"{task.status.split(' ', 1)[0]} {task.content_bytes_written} bytes {int(ms)} ms\n"
    )
    with _stdout_lock:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except (OSError, ValueError):  # stdout closed (its reader is gone): keep serving without the log
            pass


class _WSGITask(_LoggedTask, WSGITask):
    """Runs the app for one buffered request."""


class _ErrorTask(_LoggedTask, ErrorTask):
    """Answers a request waitress or this module refused: the app's JSON error shape, then the connection closes."""

    def execute(self) -> None:
        error = self.request.error
        message = _message(error, self.channel.adj)
        body = json.dumps({"error": message, **_ERROR_FIELDS}, separators=(",", ":")).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        if error.code == 503:
            self.response_headers.append(("Retry-After", "1"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _Channel(HTTPChannel):
    """One client connection: waitress's, with the coldbrew tasks and parser and a lingering close."""

    task_class = _WSGITask
    error_task_class = _ErrorTask
    parser_class = _Parser
    adj: _Adjustments
    will_close: bool  # waitress's attributes this class sets (waitress has no type hints)
    request: Any
    #: 0 while open; once half-closed after the last answer, when the lingering close gives up.
    linger_until = 0.0
    linger_s = LINGER_S
    drained = 0
    #: When the current request's body started arriving (its head complete, body pending); 0 when none is.
    body_since = 0.0
    #: Whether that body is counted among the BODY_READERS_MAX being read (else it waits to be admitted or shed).
    admitted = False

    def __init__(self, server, sock, addr, adj, map=None):
        super().__init__(server, sock, addr, adj, map=map)
        #: When the connection started waiting for its next request (connected, or the last response was done).
        self.idle_since = self.creation_time

    def readable(self) -> bool:
        return bool(self.linger_until) or super().readable()

    def writable(self) -> bool:
        return not self.linger_until and super().writable()

    def handle_read(self) -> None:
        if not self.linger_until:
            super().handle_read()
            return
        self.drained += len(self.recv(65536))  # EOF or an error closes the channel (wasyncore)
        if self.drained >= LINGER_BYTES:
            self.close_now()

    def handle_close(self) -> None:
        """waitress closes a connection it is done with here: half-close and linger first (once)."""
        self.server.body_readers.discard(self)
        if self.will_close and not self.linger_until and self.socket is not None:
            try:
                self.socket.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            else:
                self.linger_until = time.time() + self.linger_s
                return
        self.close_now()

    def received(self, data: bytes) -> bool:
        """waitress's parsing, then the body budget: admit a body that has started, or shed it (503)."""
        result = super().received(data)
        request = self.request
        if request is not None and request.headers_finished and not request.completed and request.error is None:
            if not self.body_since:
                self.body_since = time.time()
                self.admit(request, wait=True)
        elif self.body_since:
            self.body_since = 0.0
            self.admitted = False
            self.server.body_readers.discard(self)
        return result

    def admit(self, request: HTTPRequestParser, *, wait: bool) -> None:
        """Count this connection among those reading a body, or (unless ``wait``) shed its request with a 503.

        With ``wait``, a body arriving while the cap is reached is decided at the next look at the deadlines
        (ADMIT_WAIT_S to a tick later): a client that sends its head and body in two writes is not shed for it.
        """
        readers = self.server.body_readers
        if len(readers) >= BODY_READERS_MAX:
            for channel in [c for c in readers if not c.reading_body()]:
                readers.discard(channel)
        if len(readers) < BODY_READERS_MAX:
            readers.add(self)
            self.admitted = True
        elif not wait:
            self.linger_s = SHED_LINGER_S
            message = f"too many slow request bodies ({BODY_READERS_MAX} arriving); retry"
            self.refuse_body(request, _Refused(503, "Service Unavailable", message))

    def reading_body(self) -> bool:
        """The connection holds a request whose head is in and whose body is still arriving."""
        request = self.request
        return bool(
            self.connected
            and self.body_since
            and request is not None
            and request.headers_finished
            and not request.completed
        )

    def send_continue(self) -> None:
        """``100 Continue`` only for a request that will be read: a refused one gets its error at once."""
        if self.request is None or self.request.error is None:
            super().send_continue()

    def close_now(self) -> None:
        """Close the connection at once (no lingering)."""
        HTTPChannel.handle_close(self)

    def in_flight(self) -> bool:
        """A request is being read (its head is in), served or answered, or the connection is lingering."""
        request = self.request
        return bool(
            self.requests
            or self.total_outbufs_len
            or self.close_when_flushed
            or self.linger_until
            or (request is not None and request.headers_finished)
        )

    def check_deadlines(self, now: float) -> None:
        """Close a connection past its head deadline or not reading its answer; answer 400 to a stalled body."""
        if self.linger_until:
            if now >= self.linger_until:
                self.close_now()
            return
        if self.requests:
            return  # being served
        if self.total_outbufs_len:  # an answer waits to be sent: the client must read it at some pace
            if now - self.last_activity > READ_TIMEOUT_S:
                self.close_now()
            return
        if self.will_close or self.close_when_flushed:
            return  # closing
        request = self.request
        if request is not None and request.headers_finished:
            if now - self.last_activity > READ_TIMEOUT_S:
                self.refuse_body(
                    request, _Refused(400, "Bad Request", "malformed or incomplete request body: timed out")
                )
            elif self.body_since and not self.admitted:
                if now - self.body_since >= ADMIT_WAIT_S:
                    self.admit(request, wait=False)
            elif self.body_since:
                received = request.body_bytes_received
                took = now - self.body_since
                if took > BODY_GRACE_S + received / BODY_MIN_RATE:
                    message = (
                        f"request body too slow: {received} bytes in {took:.0f} s; "
                        f"send at least {BODY_MIN_RATE} bytes/s after the first {BODY_GRACE_S:.0f} s"
                    )
                    self.refuse_body(request, _Refused(408, "Request Timeout", message))
        elif now - self.idle_since > HEADER_TIMEOUT_S:
            self.will_close = True  # the loop closes it (handle_write → handle_close)

    def refuse_body(self, request: HTTPRequestParser, error: _Refused) -> None:
        """Complete the half-read request as ``error``, the way waitress queues a request it finished reading."""
        self.body_since = 0.0
        self.admitted = False
        self.server.body_readers.discard(self)
        with self.requests_lock:
            if self.request is not request or request.completed:
                return
            request.error = error
            request.completed = True
            self.request = None
            self.requests.append(request)
            if len(self.requests) == 1:
                self.server.add_task(self)


_OUT_OF_FDS = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s"
)
_OUT_OF_FDS_BODY = json.dumps(
    {"error": "server is out of file descriptors; retry", **_ERROR_FIELDS}, separators=(",", ":")
).encode()


class _Server(TcpWSGIServer):
    """waitress's TCP server with coldbrew's channels, a count of the bodies being read, and a spare descriptor.

    Out of file descriptors (EMFILE/ENFILE), ``accept`` fails while the pending connection keeps the listening
    socket readable: waitress would log a traceback per turn of the loop, at full speed, and leave clients waiting.
    Instead the spare descriptor (kept open on /dev/null) is closed, the connection accepted, answered 503 and
    closed, and the spare reopened; one warning line per episode. Serving resumes as soon as descriptors are free.
    """

    channel_class = _Channel
    body_readers: set
    spare_fd: int | None = None
    out_of_fds = False
    idle_shed_logged = -IDLE_SHED_LOG_EVERY_S  # when idle shedding was last logged (time.monotonic)
    paused_until = 0.0

    def __init__(self, *args, **kwargs):
        self.body_readers = set()
        super().__init__(*args, **kwargs)
        self.spare_fd = _spare()

    def readable(self) -> bool:
        return time.monotonic() >= self.paused_until and super().readable()

    def accept(self):
        try:
            pair = super().accept()
        except OSError as exc:
            if exc.errno not in (errno.EMFILE, errno.ENFILE):
                raise
            self.shed_without_descriptors(exc)
            return None
        if pair is not None:
            self.out_of_fds = False
        return pair

    def shed_without_descriptors(self, exc: OSError) -> None:
        if not self.out_of_fds:
            self.out_of_fds = True
            logging.getLogger("coldbrew.serve").warning(
                "out of file descriptors (%s, %d connections open): answering new connections 503 until some close",
                exc.strerror,
                len(self.active_channels),
            )
        if self.spare_fd is None:
            self.spare_fd = _spare()
        if self.spare_fd is None:  # none to spare either: stop polling the listener for a moment, do not spin
            self.paused_until = time.monotonic() + 0.1
            return
        os.close(self.spare_fd)
        self.spare_fd = None
        try:
            conn, _ = self.socket.accept()
        except OSError:
            self.paused_until = time.monotonic() + 0.1
        else:
            with conn:
                try:
                    conn.setblocking(False)
                    try:
                        conn.recv(65536)  # what has arrived, so the close is a FIN and not a reset
                    except OSError:
                        pass
                    conn.send(_OUT_OF_FDS % (len(_OUT_OF_FDS_BODY), _OUT_OF_FDS_BODY))
                    conn.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
        self.spare_fd = _spare()

    def close(self) -> None:
        if self.spare_fd is not None:
            os.close(self.spare_fd)
            self.spare_fd = None
        super().close()


def _spare() -> int | None:
    try:
        return os.open(os.devnull, os.O_RDONLY)
    except OSError:
        return None


def _raise_open_file_limit() -> None:
    """Raise the soft limit on open files towards the hard limit (up to NOFILE_WANTED), as many servers do."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = NOFILE_WANTED if hard == resource.RLIM_INFINITY else min(NOFILE_WANTED, hard)
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ImportError, OSError, ValueError):  # not on this platform, or not allowed: serve within the limit
        pass


class _Waker(wasyncore.dispatcher):
    """The read end of the signal wake-up socket: a signal wakes the loop at once (``signal.set_wakeup_fd``)."""

    def handle_read(self) -> None:
        self.recv(4096)

    def writable(self) -> bool:
        return False


def _url(server: TcpWSGIServer) -> str:
    host = str(server.effective_host)
    return f"http://[{host}]:{server.effective_port}/" if ":" in host else f"http://{host}:{server.effective_port}/"


def try_line(url: str, example: dict) -> str:
    """``try: curl -s URL/predict -H ... -d 'BODY'``: one line (JSON escapes control characters), shell-quoted."""
    body = json.dumps(example, separators=(", ", ": "))
    target = shlex.quote(url.rstrip("/") + "/predict")
    return f"try: curl -s {target} -H 'Content-Type: application/json' -d {shlex.quote(body)}"


def serve(
    app,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    max_body_bytes: int = 1_048_576,
    example: dict | None = None,
) -> None:
    """Serve ``app`` until SIGTERM or Ctrl-C; prints ``coldbrew: serving on URL`` to stdout once listening.

    Args:
        app: the WSGI callable (``create_app``'s result).
        host, port: where to listen; port 0 picks a free one (the printed URL has it).
        workers: threads running the app (the event loop reading and writing sockets is one more).
        max_body_bytes: request bodies over this are answered 413 without being read (the app's own limit).
        example: a request body the app accepts: printed as a ``try: curl ...`` line before the ready line.

    Raises:
        ColdbrewError: the address cannot be listened on (in use, not this machine's, ...).
    """
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="[%(asctime)s] [%(levelname)s] %(message)s")
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "Task queue depth is N": normal under load
    _raise_open_file_limit()
    dispatcher = ThreadedTaskDispatcher()
    socket_map: dict = {}
    try:
        adj = _Adjustments(
            host=host,
            port=port,
            threads=workers,
            connection_limit=CONNECTION_LIMIT,
            # waitress's own bound counts a chunked body's framing too: the parser applies the exact limit first.
            max_request_body_size=2 * max_body_bytes + 65536,
            asyncore_use_poll=True,  # select() cannot watch descriptors above 1023
            clear_untrusted_proxy_headers=False,  # no proxy headers are trusted or used: pass them on untouched
            expose_tracebacks=False,
        )
        adj.max_body_bytes = max_body_bytes
        servers = [_Server(app, socket_map, dispatcher=dispatcher, adj=adj, sockinfo=info) for info in adj.listen]
    except (OSError, ValueError) as exc:  # in use, not an address of this machine, a host that does not resolve
        wasyncore.close_all(socket_map, ignore_all=True)
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ColdbrewError(f"cannot listen on {host}:{port}: {detail}") from None
    dispatcher.set_thread_count(workers)

    stop: list[int] = []
    wake_r, wake_w = socket.socketpair()
    wake_w.setblocking(False)
    _Waker(wake_r, socket_map)
    previous_fd = signal.set_wakeup_fd(wake_w.fileno())
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.append(signum))
    if example is not None and servers:
        print(try_line(_url(servers[0]), example), flush=True)
    for server in servers:
        print(f"{READY_PREFIX}{_url(server)}", flush=True)
    try:
        while not stop:
            _tick(socket_map, servers)
        _drain(socket_map, servers, stop)
    finally:
        dispatcher.shutdown(timeout=1)
        wasyncore.close_all(socket_map, ignore_all=True)
        signal.set_wakeup_fd(previous_fd)
        wake_w.close()


def _tick(socket_map: dict, servers: list[_Server], timeout: float = TICK_S) -> None:
    """One turn of waitress's loop, then (every TICK_S at most) every connection's deadlines."""
    global _next_check
    wasyncore.loop(timeout=timeout, map=socket_map, use_poll=True, count=1)
    now = time.time()
    if now < _next_check:
        return
    _next_check = now + min(timeout, TICK_S)
    for server in servers:
        channels = list(server.active_channels.values())
        for channel in channels:
            channel.check_deadlines(now)
        if len(server.active_channels) >= IDLE_SHED_AT:
            _shed_idle(server)


def _shed_idle(server: _Server) -> None:
    """Close connections waiting for a request, longest idle first, until IDLE_SHED_TO are open (one log line)."""
    channels = list(server.active_channels.values())
    waiting = [c for c in channels if not c.in_flight() and not c.will_close and c.connected]
    waiting.sort(key=lambda c: c.idle_since)
    excess = len(channels) - IDLE_SHED_TO
    for channel in waiting[:excess]:
        channel.close_now()
    now = time.monotonic()
    if now - server.idle_shed_logged > IDLE_SHED_LOG_EVERY_S:  # one line a minute at most, however long it lasts
        server.idle_shed_logged = now
        logging.getLogger("coldbrew.serve").warning(
            "%d connections open: closing %d idle ones, longest idle first", len(channels), min(excess, len(waiting))
        )


def _drain(socket_map: dict, servers: list[_Server], stop: list[int]) -> None:
    """Stop listening, close idle connections, let requests in flight finish (a second signal cuts it short)."""
    for server in servers:
        wasyncore.dispatcher.close(server)  # the listening socket only: the wake-up trigger stays for the threads
    deadline = time.monotonic() + GRACEFUL_TIMEOUT_S
    while time.monotonic() < deadline and len(stop) < 2:
        busy = False
        for server in servers:
            for channel in list(server.active_channels.values()):
                if channel.in_flight():
                    busy = True
                else:
                    channel.close_now()
        if not busy:
            return
        _tick(socket_map, servers, timeout=0.05)
    logging.getLogger("coldbrew.serve").warning("stopping with requests still in flight: closing them")
