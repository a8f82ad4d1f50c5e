"""Attacks on the lab's front door and on its process hygiene, against a real lab (issue #10, part 4).

A handler's response is untrusted: it can carry CR/LF to split the HTTP response, values outside
Latin-1, or shapes no front door can map. A client can send oversized or chunked bodies. A handler
can start processes that leave its process group. Each test attacks the real lab (awslambdaric
processes) and would fail on the lab before this hardening.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from labtools import LabFactory, call, head_and_body, raw_exchange
from proctools import alive, survivors

pytestmark = pytest.mark.integration

SPLITTING = ["crlf_value", "lf_value", "crlf_name", "crlf_multi", "crlf_cookie", "crlf_body_split", "surrogate"]
MALFORMED = [
    "status_text",
    "status_range",
    "status_null",
    "bad_base64",
    "headers_list",
    "headers_nested",
    "body_object",
    "multi_not_list",
]


@pytest.fixture
def lab_factory(tmp_path):
    factory = LabFactory(tmp_path)
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def bad_lab(tmp_path_factory):
    """One lab hosting tests/handlers/bad_response.py for the whole module."""
    factory = LabFactory(tmp_path_factory.mktemp("bad"))
    yield factory("bad_response.handler")
    factory.close()


@pytest.mark.parametrize("case", SPLITTING)
def test_a_header_that_would_split_the_response_is_a_502_and_never_written(bad_lab, case):
    raw = raw_exchange(bad_lab, f"GET /?case={case} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    status, headers, body = head_and_body(raw)
    assert status == 502 and json.loads(body) == {"message": "Internal Server Error"}
    assert b"X-Injected" not in raw and raw.count(b"HTTP/1.1 ") == 1
    assert not any(name.lower() == b"x-ok" for name, _ in headers)


def test_a_non_latin1_header_value_is_sent_as_utf8_and_the_connection_lives_on(bad_lab):
    request = b"GET /?case=non_latin1 HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", bad_lab.port), timeout=30) as sock:
        for _ in range(2):  # keep-alive: the second request on the same connection is answered too
            sock.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data or not data.endswith(b"ok"):
                chunk = sock.recv(65536)
                assert chunk, "the lab dropped the connection"
                data += chunk
            status, headers, body = head_and_body(data)
            assert status == 200 and body == b"ok"
            assert (b"X-Name", "caf\u00e9 \u2615".encode()) in headers


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_response_is_a_502_not_a_lab_error(bad_lab, case):
    status, headers, body = call(bad_lab, f"/?case={case}")
    assert status == 502 and json.loads(body) == {"message": "Internal Server Error"}
    assert headers["x-lab-env"]  # the function ran; its answer was refused


def test_a_malformed_response_does_not_cost_the_environment(bad_lab):
    first = call(bad_lab, "/?case=bad_base64")
    second = call(bad_lab, "/?case=no_status")
    assert first[0] == 502 and second[0] == 200 and json.loads(second[2]) == {"hello": "world"}
    assert second[1]["x-lab-cold"] == "0"


def _send_chunked(lab, chunks, chunk_size_line=None) -> bytes:
    with socket.create_connection(("127.0.0.1", lab.port), timeout=30) as sock:
        try:
            sock.sendall(
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            )
            if chunk_size_line is not None:
                sock.sendall(chunk_size_line + b"\r\nabc\r\n0\r\n\r\n")
            for chunk in chunks:
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the lab answered and closed before the whole body was sent
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    return data


def test_a_chunked_body_over_the_cap_is_a_413_and_never_invoked(lab_factory):
    lab = lab_factory()
    status, _, _ = head_and_body(_send_chunked(lab, [b"x" * (1024 * 1024)] * 12))
    assert status == 413
    assert lab.stats()["invocations"] == 0
    status, _, body = head_and_body(_send_chunked(lab, [b'{"a": ', b"1}"]))
    assert status == 200 and json.loads(body)["body"] == '{"a": 1}'


@pytest.mark.parametrize("line", [b"zz", b"-5", b"1" * 2000], ids=["not hex", "negative", "2000 digits"])
def test_an_invalid_chunk_size_line_is_a_400(lab_factory, line):
    lab = lab_factory()
    status, _, _ = head_and_body(_send_chunked(lab, [], chunk_size_line=line))
    assert status == 400 and lab.stats()["invocations"] == 0


def test_a_declared_length_over_the_cap_is_a_413_before_reading_it(lab_factory):
    lab = lab_factory()
    raw = raw_exchange(lab, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n", timeout=10)
    assert head_and_body(raw)[0] == 413


@pytest.mark.parametrize("how", ["lab stop", "lab stop, snapshot", "idle reaping"])
def test_no_process_an_environment_started_survives_it(lab_factory, tmp_path, how):
    """Children that call setsid, and orphaned grandchildren in their own session, die with the environment."""
    pids_dir = tmp_path / "pids"
    pids_dir.mkdir()
    lab = lab_factory(
        "spawner.handler", snapshot="snapshot" in how, idle_timeout="1s" if how == "idle reaping" else "10m"
    )
    status, _, body = call(lab, f"/?dir={pids_dir}")
    assert status == 200, body
    pids = [int(name.split(".")[0]) for name in body.decode().split(",")]
    assert len(pids) == 2 and all(alive(pid) for pid in pids)
    if how == "idle reaping":
        deadline = time.monotonic() + 15
        while lab.stats()["environments"]["total"] and time.monotonic() < deadline:
            time.sleep(0.1)
    else:
        lab.stop()
    assert not survivors(pids)


def test_an_invocation_cut_off_by_shutdown_is_logged_as_such_and_each_stop_once(lab_factory, tmp_path):
    log = tmp_path / "events.jsonl"
    lab = lab_factory("sleep.handler", log=log, timeout="60s", provisioned=2)
    caller = threading.Thread(target=call, args=(lab, "/?s=30"), kwargs={"timeout": 60}, daemon=True)
    caller.start()  # one environment busy, one idle
    deadline = time.monotonic() + 20
    while lab.stats()["environments"]["busy"] != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    lab.stop()
    events = [json.loads(line) for line in log.read_text().splitlines()]
    cut = [e for e in events if e["event"] == "invoke" and e["outcome"] != "ok"]
    assert [(e["outcome"], e["errorType"]) for e in cut] == [("shutdown", "Lab.Shutdown")]
    assert "Sandbox.Timedout" not in log.read_text()
    stops = [e["env"] for e in events if e["event"] == "env_stop"]
    assert sorted(stops) == sorted(set(stops)) and len(stops) == 2


# ---- issue #23: deadlines, descriptor exhaustion, RFC 9112 framing, the warm path, deep JSON -----------------------
def _read_all(sock: socket.socket, limit_s: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes (or ``limit_s`` passes), and when it closed (seconds)."""
    started = time.monotonic()
    sock.settimeout(limit_s)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data, time.monotonic() - started


@pytest.mark.parametrize("sent", [b"", b"GET / HTTP/1.1\r\nHost: x\r\n"], ids=["idle", "half a head"])
def test_a_connection_without_a_complete_head_is_closed_at_the_head_deadline(lab_factory, sent):
    """As `coldbrew serve`: 5 s for the request line and headers (an idle connection too), then closed."""
    lab = lab_factory()
    with socket.create_connection(("127.0.0.1", lab.port), timeout=30) as sock:
        sock.sendall(sent)
        data, closed_after = _read_all(sock, 20)
    assert data == b"" and 4 <= closed_after < 9
    assert lab.stats()["invocations"] == 0


def test_an_idle_keep_alive_connection_is_closed_at_the_head_deadline(lab_factory):
    lab = lab_factory()
    with socket.create_connection(("127.0.0.1", lab.port), timeout=30) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while b"\r\n\r\n" not in first:
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        rest, closed_after = _read_all(sock, 20)
    assert 4 <= closed_after < 9


def test_a_stalled_body_is_a_400_at_the_body_deadline(lab_factory):
    """A body that stops arriving for 10 s is answered 400 and never invoked."""
    lab = lab_factory()
    with socket.create_connection(("127.0.0.1", lab.port), timeout=30) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
        data, answered_after = _read_all(sock, 30)
    assert head_and_body(data)[0] == 400 and 9 <= answered_after < 15
    assert lab.stats()["invocations"] == 0


def test_a_body_that_keeps_moving_is_not_cut_by_the_body_deadline(lab_factory):
    lab = lab_factory()
    with socket.create_connection(("127.0.0.1", lab.port), timeout=30) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\n"
        )
        for byte in (b"1", b"2", b"3"):  # 3 s between bytes: below the per-read deadline, 6 s in all
            time.sleep(3)
            sock.sendall(byte)
        data, _ = _read_all(sock, 30)
    status, _, body = head_and_body(data)
    assert status == 200 and json.loads(body)["body"] == "123"


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize(
    "head",
    [
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        b"Transfer-Encoding: chunked, identity\r\n",
        b"Transfer-Encoding: xchunked\r\n",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        b"Content-Length: 5\r\nContent-Length: 6\r\n",
    ],
    ids=["CL+TE", "TE+CL", "TE list", "TE not chunked", "TE twice", "CL twice"],
)
def test_ambiguous_framing_is_refused_and_the_smuggled_request_never_invoked(lab_factory, head):
    """RFC 9112 section 6.3: both lengths, or a length two parsers could read differently, is an error; the
    connection is closed, so the request hidden after the body is never read."""
    lab = lab_factory()
    raw = raw_exchange(lab, b"POST / HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n0\r\n\r\n" + SMUGGLED, timeout=15)
    assert raw == b"" or (head_and_body(raw)[0] == 400 and raw.count(b"HTTP/1.1 ") == 1)
    assert lab.stats()["invocations"] == 0


@pytest.mark.parametrize(
    "header",
    [b"X-A: a\r\n b\r\n", b"X-A: a\r\n\tb\r\n", b"X-A : a\r\n", b"no colon here\r\n"],
    ids=["obs-fold space", "obs-fold tab", "space before colon", "no colon"],
)
def test_an_obs_folded_or_malformed_header_line_is_a_400(lab_factory, header):
    lab = lab_factory()
    raw = raw_exchange(lab, b"GET / HTTP/1.1\r\nHost: x\r\n" + header + b"Connection: close\r\n\r\n", timeout=15)
    assert head_and_body(raw)[0] == 400
    assert lab.stats()["invocations"] == 0


@pytest.mark.parametrize(
    "body",
    [b"3\nabc\r\n0\r\n\r\n", b"3\r\nabc\n0\r\n\r\n", b"3\r\nabc\r\n0\n\n", b"3\r\nabcXY0\r\n\r\n"],
    ids=["LF size line", "LF after data", "LF last chunk", "no CRLF after data"],
)
def test_bare_lf_chunk_framing_is_a_400(lab_factory, body):
    lab = lab_factory()
    request = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + body
    raw = raw_exchange(lab, request, timeout=15)
    assert head_and_body(raw)[0] == 400
    assert lab.stats()["invocations"] == 0


def test_crlf_chunk_framing_and_trailers_still_work(lab_factory):
    lab = lab_factory()
    request = (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    status, _, body = head_and_body(raw_exchange(lab, request, timeout=30))
    assert status == 200 and json.loads(body)["body"] == "abcde"


def test_a_100k_deep_json_body_on_raw_invoke_is_a_400_without_a_traceback(lab_factory, capfd):
    lab = lab_factory()
    deep = b"[" * 100_000 + b"]" * 100_000
    status, headers, body = call(lab, "/2015-03-31/functions/function/invocations", body=deep)
    assert status == 400 and json.loads(body)["errorType"] == "InvalidRequestContentException"
    assert lab.stats()["invocations"] == 0
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("path", ["/_warm/", "/%5Fwarm", "/%5fwarm", "//_warm", "/_warm%2F"])
def test_only_the_exact_warm_path_is_the_warm_route(tmp_path, tiny_brew, path):
    """With the warm route open, a path that only decodes or normalises to /_warm is an ordinary request (the app's
    404), never a warm-up, even with the right secret; /_warm itself is one (the control)."""
    from coldbrew.lab import Lab, LabConfig

    config = LabConfig(
        model_uri=tiny_brew, warm_secret="s3cret", memory_mb=256, function_output=tmp_path / "function.log"
    )
    with Lab(config) as lab:
        secret = {"X-Coldbrew-Warm-Secret": "s3cret", "Content-Type": "application/json"}
        status, _, body = call(lab, "/_warm", body=b'{"hold_ms": 0}', headers=secret)
        assert status == 200 and json.loads(body)["held_ms"] == 0
        status, _, body = call(lab, path, body=b'{"hold_ms": 0}', headers=secret)
        assert status == 404 and "held_ms" not in json.loads(body)


LAB_UNDER_ULIMIT = """
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (1024, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
from coldbrew.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_1100_idle_connections_under_ulimit_1024_get_503s_one_log_line_and_the_lab_recovers(tmp_path):
    """`ulimit -n 1024`, then 1,100 idle connections: the lab stays reachable (503 at its connection cap, never
    a hang), writes one line about it (no traceback flood), and answers 200 once the idle ones time out."""
    import resource
    import subprocess
    import sys

    from labtools import HANDLERS
    from proctools import terminate

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 1400:
        pytest.skip(f"the test client needs 1,400 file descriptors; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1400), hard))
    err = tmp_path / "stderr.txt"
    with err.open("w") as err_file:
        proc = subprocess.Popen(
            [sys.executable, "-c", LAB_UNDER_ULIMIT, "lab", "--handler", "echo.handler", "--code", str(HANDLERS)],
            stdout=subprocess.PIPE,
            stderr=err_file,
            text=True,
        )
    sockets: list[socket.socket] = []
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("coldbrew lab: http://127.0.0.1:"), line + err.read_text()
        port = int(line.split()[2].rsplit(":", 1)[1].strip("/"))
        for _ in range(1100):
            sockets.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        started = time.monotonic()
        raw = b""
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            raw, _ = _read_all(sock, 10)
        assert head_and_body(raw)[0] in (200, 503) and time.monotonic() - started < 5  # reachable, never a hang
        deadline = time.monotonic() + 30
        status = 0
        while time.monotonic() < deadline:  # the idle connections reach the head deadline: the lab recovers
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                status = head_and_body(_read_all(sock, 10)[0])[0]
            if status == 200:
                break
            time.sleep(0.5)
        assert status == 200
    finally:
        for sock in sockets:
            sock.close()
        terminate(proc)
    log = err.read_text()
    assert "Traceback" not in log
    assert len([line for line in log.splitlines() if "connection" in line or "descriptor" in line]) <= 2, log
