"""Requests `coldbrew serve` cannot parse or will not read: a one-line 4xx JSON body naming the problem, then close.

These errors are found by the HTTP server before the app runs (a bad request line, bad chunking, headers or a body
over the limits), so the app's own error handling never sees them; coldbrew's server answers them in the app's
shape (``{"error", "field", "index"}``). Each test attacks the real server (``coldbrew serve`` in a child process)
over a raw socket; waitress alone answers these with ``text/plain`` bodies, and a body over ``--max-body-bytes``
only once it has buffered up to 1 GB.
"""

from __future__ import annotations

import json
import socket

import pytest
from servetools import address, read_all

from coldbrew.runtimes.server_process import ServerProcess

pytestmark = pytest.mark.integration

PROMPT_S = 10.0  # an answer must arrive within this on a loaded 2-core machine
LIMIT = 1_048_576  # `coldbrew serve`'s default --max-body-bytes
ROW = {"age": 39, "fnlwgt": 77516, "education_num": 13, "capital_gain": 2174, "capital_loss": 0, "hours_per_week": 40}
HEAD = b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"


@pytest.fixture(scope="module")
def server(tiny_brew):
    with ServerProcess(tiny_brew) as proc:
        yield proc


def exchange(server, data: bytes, seconds: float = PROMPT_S) -> bytes:
    """Send ``data``, then read until the server closes the connection (at most ``seconds``)."""
    with socket.create_connection(address(server), timeout=seconds) as sock:
        sock.sendall(data)
        return read_all(sock, seconds)


def json_error(response: bytes, status: int) -> str:
    """The error message of a ``status`` answer in the app's JSON shape (asserted), on one line."""
    head, body = response.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    assert lines[0].split(b" ")[1] == str(status).encode(), response[:300]
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(b":", 1) for line in lines[1:])}
    assert headers[b"content-type"] == b"application/json", head
    assert int(headers[b"content-length"]) == len(body) and b"\n" not in body, body
    parsed = json.loads(body)
    assert parsed.keys() == {"error", "field", "index"} and parsed["field"] is None and parsed["index"] is None
    assert isinstance(parsed["error"], str) and parsed["error"], parsed
    return parsed["error"]


def still_serves(server) -> None:
    body = json.dumps(ROW).encode()
    response = exchange(server, HEAD + b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
    assert response.startswith(b"HTTP/1.1 200 "), response[:200]


@pytest.mark.parametrize(
    "request_bytes, status, words",
    [
        (b"GARBAGE\r\nHost: t\r\n\r\n", 400, "malformed request"),
        (b"get / HTTP/1.1\r\nHost: t\r\n\r\n", 400, "method"),
        (HEAD + b"Content-Length: 12abc\r\n\r\n", 400, "content-length"),
        (HEAD + b"Content-Length: 2\r\nX-Bad: a\rb\r\n\r\n{}", 400, "bare cr"),
        (HEAD + b"Transfer-Encoding: gzip\r\n\r\n", 501, "transfer-encoding"),
        (HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n", 400, "chunk"),
        (HEAD + b"Transfer-Encoding: chunked\r\n\r\n1;a=\x00\r\n{\r\n0\r\n\r\n", 400, "chunk"),
        (b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 300_000 + b"\r\n\r\n", 431, "262144 bytes"),
    ],
    ids=["request-line", "lowercase-method", "content-length", "bare-cr", "gzip", "chunk-end", "chunk-ext", "431"],
)
def test_unparseable_requests_are_one_line_json(server, request_bytes, status, words):
    message = json_error(exchange(server, request_bytes), status)
    assert words in message.lower(), message
    still_serves(server)


def test_a_declared_length_over_the_limit_is_413_before_any_body_is_sent(server):
    message = json_error(exchange(server, HEAD + b"Content-Length: 1000000000\r\n\r\n"), 413)
    assert "1000000000" in message and str(LIMIT) in message, message


def test_expect_100_continue_over_the_limit_gets_the_413_not_an_invitation(server):
    response = exchange(server, HEAD + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % (2 * LIMIT))
    assert not response.startswith(b"HTTP/1.1 100"), response[:200]
    json_error(response, 413)


def test_a_chunked_body_over_the_limit_is_413_and_readable_after_sending_it_all(server):
    """The server stops reading at the limit but drains the rest before closing (a lingering close): a client that
    sends its whole body before reading still gets the 413, not a connection reset."""
    chunk = b" " * 65536
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(LIMIT // len(chunk) + 2)) + b"0\r\n\r\n"
    request = HEAD + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + body
    message = json_error(exchange(server, request), 413)
    assert str(LIMIT) in message, message
    still_serves(server)


def test_a_chunked_body_at_the_limit_is_served(server):
    """The limit counts the body's bytes, not the chunked framing around them."""
    row = json.dumps(ROW).encode()
    payload = row + b" " * (LIMIT - len(row))
    body = b"".join(b"%x\r\n%s\r\n" % (len(payload[i : i + 100]), payload[i : i + 100]) for i in range(0, LIMIT, 100))
    request = HEAD + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + body + b"0\r\n\r\n"
    response = exchange(server, request)
    assert response.startswith(b"HTTP/1.1 200 "), response[:300]
