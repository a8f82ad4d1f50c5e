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
