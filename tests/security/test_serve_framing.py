"""HTTP/1.1 framing as RFC 9112 says it, attacked over raw sockets on a real ``coldbrew serve`` (issue #23).

- A request with both Content-Length and Transfer-Encoding (section 6.3) is refused with a 400 and the connection
  closed, so a request smuggled behind it is never answered (waitress answered it: the smuggling vector).
- obs-fold header lines (section 5.2) are a 400, then close.
- Bare-LF framing — in the head or in a chunked body's size lines, data ends and trailer — is a 400 at once, where
  waitress waited for a CRLF and answered nothing.
Valid pipelining and chunked bodies with trailers still work (the strict decoder must not break them).
"""

from __future__ import annotations

import json
import socket
import time

import pytest
from servetools import address, read_all

from coldbrew.runtimes.server_process import ServerProcess

pytestmark = pytest.mark.integration

# Well below the 5 s head deadline and the 10 s body deadline: the refusal is the parser's, not a timeout's.
PROMPT_S = 4.0
ROW = {"age": 39, "fnlwgt": 77516, "education_num": 13, "capital_gain": 2174, "capital_loss": 0, "hours_per_week": 40}
BODY = json.dumps(ROW).encode()
HEAD = b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"


@pytest.fixture(scope="module")
def server(tiny_brew):
    with ServerProcess(tiny_brew) as proc:
        yield proc


def exchange(server, data: bytes) -> tuple[bytes, float]:
    """Send ``data``; everything the server sends until it closes the connection, and how long that took."""
    started = time.monotonic()
    with socket.create_connection(address(server), timeout=PROMPT_S) as sock:
        sock.sendall(data)
        return read_all(sock, PROMPT_S), time.monotonic() - started


def responses(raw: bytes) -> list[tuple[int, dict]]:
    """Every (status, JSON body) in ``raw``, a stream of responses with Content-Length bodies."""
    out = []
    while raw:
        head, rest = raw.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(b":", 1) for line in lines[1:])}
        length = int(headers[b"content-length"])
        out.append((int(lines[0].split(b" ")[1]), json.loads(rest[:length]) if length else None))
        raw = rest[length:]
    return out


def refused(server, data: bytes, *words: str) -> str:
    """The one 400 ``data`` gets, promptly, then the connection closes; returns its error message."""
    raw, took = exchange(server, data)
    got = responses(raw)
    assert len(got) == 1, f"exactly one answer, then close: {raw[:400]!r}"
    status, body = got[0]
    assert status == 400, raw[:300]
    assert took < PROMPT_S
    for word in words:
        assert word in body["error"].lower(), body
    return body["error"]


def chunked(framing: bytes) -> bytes:
    return HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + framing


@pytest.mark.parametrize(
    "headers",
    [
        b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n" % (len(BODY) + 5),
        b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: 0\r\n",
    ],
    ids=["CL.TE", "TE.CL", "TE.CL0"],
)
def test_content_length_with_transfer_encoding_is_400_and_the_smuggled_request_is_never_answered(server, headers):
    framed = b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY)
    error = refused(server, HEAD + headers + b"\r\n" + framed + SMUGGLED, "content-length", "transfer-encoding")
    assert "ambiguous" in error
    time.sleep(0.3)
    assert not any("/smuggled" in line for line in server.access_log), server.access_log[-5:]


def test_transfer_encoding_in_http_1_0_is_400(server):
    refused(
        server,
        b"POST /predict HTTP/1.0\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\n{}\r\n0\r\n\r\n",
        "transfer-encoding",
    )


@pytest.mark.parametrize("fold", [b" folded", b"\tfolded", b"   "])
def test_obs_fold_is_400_and_close(server, fold):
    refused(server, b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\n" + fold + b"\r\n\r\n" + SMUGGLED, "folding")


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\nHost: t\n\n",
        b"GET / HTTP/1.1\r\nHost: t\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\n\n",
    ],
    ids=["all-LF", "one-header-LF", "end-LF"],
)
def test_bare_lf_in_the_head_is_400_at_once(server, data):
    refused(server, data, "bare lf")


@pytest.mark.parametrize(
    "framing",
    [
        b"%x\n%s\r\n0\r\n\r\n" % (len(BODY), BODY),
        b"%x\r\n%s\n0\r\n\r\n" % (len(BODY), BODY),
        b"%x\r\n%s\r\n0\n\n" % (len(BODY), BODY),
        b"%x\r\n%s\r\n0\r\nX-Trailer: y\n\r\n" % (len(BODY), BODY),
        b"%x;a=b\n%s\r\n0\r\n\r\n" % (len(BODY), BODY),
        b"%x\r\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY),
    ],
    ids=["size-line", "data-end", "last-chunk", "trailer", "extension", "bare-CR"],
)
def test_bare_lf_or_cr_in_chunk_framing_is_400_at_once(server, framing):
    error = refused(server, chunked(framing), "chunk")
    assert "timed out" not in error


def test_an_over_long_chunk_size_line_is_400(server):
    refused(server, chunked(b"1;" + b"a" * 10_000), "chunk")


def test_valid_chunked_bodies_with_extensions_and_trailers_are_served(server):
    half = len(BODY) // 2
    framing = b"%x;name=value\r\n%s\r\n%x\r\n%s\r\n0\r\nX-Trailer: y\r\n\r\n" % (
        half,
        BODY[:half],
        len(BODY) - half,
        BODY[half:],
    )
    raw, _ = exchange(server, chunked(framing).replace(HEAD, HEAD + b"Connection: close\r\n"))
    [(status, body)] = responses(raw)
    assert status == 200 and body["prediction"] in (">$50K", "<=$50K")


def test_valid_pipelined_requests_are_all_answered_in_order(server):
    one = HEAD + b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
    last = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    chunk = chunked(b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY))
    raw, _ = exchange(server, one + chunk + one + last)
    got = responses(raw)
    assert [s for s, _ in got] == [200, 200, 200, 200]
    assert got[0][1] == got[1][1] == got[2][1] and got[3][1] == {"success": True}
