"""`coldbrew serve` as a user runs it: a real subprocess (waitress), stopped by a signal."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import psutil
import pytest

from coldbrew.experiment.dataset import STUDY_PAYLOAD
from coldbrew.runtimes.local import GRACEFUL_TIMEOUT_S, READY_PREFIX

pytestmark = pytest.mark.integration  # every test here spawns a process or a server


def start(*args, env=None):
    """Spawn ``coldbrew serve ARGS --port 0``; returns ``(process, startup record, base url)`` once listening."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "coldbrew", "serve", *args, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
    )
    record, deadline = None, time.monotonic() + 120
    for line in proc.stdout:
        if line.startswith("{"):
            record = json.loads(line)
        elif line.startswith(READY_PREFIX):
            return proc, record, line[len(READY_PREFIX) :].strip()
        assert time.monotonic() < deadline
    proc.kill()
    raise AssertionError(f"server exited with {proc.wait()} before listening")


def post(url, payload):
    request = urllib.request.Request(
        url + "predict", data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read())


def sklearn_answers(tiny_model, rows):
    """scikit-learn's own answers for ``rows`` (the study's Flask app: predict_proba on a DataFrame, P(>$50K))."""
    import pickle

    import pandas as pd

    from coldbrew.experiment.dataset import FEATURES

    model = pickle.loads(tiny_model.read_bytes())
    frame = pd.DataFrame(rows, columns=list(FEATURES))
    return [
        {"prediction": str(label), "probability": float(p)}
        for label, p in zip(model.predict(frame), model.predict_proba(frame)[:, 1], strict=True)
    ]


def stop(proc, sig):
    """Send ``sig``; returns the exit code and the process's (former) children still alive afterwards."""
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(sig)
    try:
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    _, alive = psutil.wait_procs(children, timeout=5)
    return code, children, alive


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_serves_then_stops_cleanly(tiny_model, sig):
    proc, record, url = start(str(tiny_model), "--allow-pickle", "--workers", "2")
    try:
        assert url.startswith("http://127.0.0.1:")
        assert record["event"] == "coldbrew.startup" and record["model"]["source"] == "DISK"
        assert set(record["timings_ms"]) == {"imports", "fetch", "load", "warmup"}
        status, body = post(url, STUDY_PAYLOAD)
        assert (status, body) == (200, sklearn_answers(tiny_model, [STUDY_PAYLOAD])[0])
    finally:
        code, children, alive = stop(proc, sig)
    assert code == 0
    assert children == [] and alive == [], "one process: nothing outlives the server"
    log = proc.stdout.read()
    # docs/serving.md: client, request line, status, response bytes, duration
    access = [line for line in log.splitlines() if "/predict" in line]
    assert len(access) == 1, "one access-log line per request"
    assert re.fullmatch(r'127\.0\.0\.1 "POST //?predict HTTP/1\.1" 200 (\d+) bytes \d+ ms', access[0]), access
    assert log.count("coldbrew.startup") == 0, "the start-up line is logged once, before listening"


def test_workers_are_threads_running_the_app(tiny_brew):
    """docs/serving.md: ``--workers N`` is N threads running the app, beside the thread reading the sockets."""
    for workers in (1, 3):
        proc, _, url = start(str(tiny_brew), "--workers", str(workers))
        try:
            assert post(url, STUDY_PAYLOAD)[0] == 200
            server = psutil.Process(proc.pid)
            assert server.num_threads() == 1 + workers and server.children() == []
        finally:
            assert stop(proc, signal.SIGTERM)[0] == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_request_in_flight_finishes_after_the_stop_signal(tiny_brew, sig):
    """docs/serving.md: a stop lets requests in flight finish (here: one whose body is still arriving), refuses new
    connections, then exits 0."""
    proc, _, url = start(str(tiny_brew))
    host, port = url.split("//", 1)[1].rstrip("/").rsplit(":", 1)
    body = json.dumps(STUDY_PAYLOAD).encode()
    try:
        with socket.create_connection((host, int(port)), timeout=30) as client:
            client.sendall(
                b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body[:10])
            )
            # Once a later connection is answered, the server's loop has read this one's head (sent earlier).
            assert post(url, STUDY_PAYLOAD)[0] == 200
            proc.send_signal(sig)
            deadline = time.monotonic() + GRACEFUL_TIMEOUT_S
            while True:  # the server stops listening once it has the signal
                try:
                    socket.create_connection((host, int(port)), timeout=1).close()
                except (ConnectionRefusedError, ConnectionResetError):
                    break  # refused, or reset: the listener closed while this connect was in its backlog
                assert time.monotonic() < deadline, "still accepting connections after the stop signal"
                time.sleep(0.05)
            assert proc.poll() is None, "the server exited with a request in flight"
            client.sendall(body[10:])
            response = b""
            while chunk := client.recv(65536):
                response += chunk
                if b"\r\n\r\n" in response and response.endswith(b"}"):
                    break
        assert response.startswith(b"HTTP/1.1 200 "), response[:200]
        assert json.loads(response.split(b"\r\n\r\n", 1)[1])["prediction"]
        assert proc.wait(timeout=GRACEFUL_TIMEOUT_S + 5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_reads_model_from_the_environment_like_lambda(tiny_brew, tiny_model):
    proc, record, url = start(env={"MODEL_SOURCE": "DISK", "MODEL_URI": str(tiny_brew), "COLDBREW_WARMUP": "1"})
    try:
        assert record["model"]["format"] == "brew"
        assert record["timings_ms"]["warmup"] is not None
        row = {**STUDY_PAYLOAD, "capital_gain": 15024}
        assert post(url, [STUDY_PAYLOAD, row]) == (200, sklearn_answers(tiny_model, [STUDY_PAYLOAD, row]))
    finally:
        assert stop(proc, signal.SIGTERM)[0] == 0


@pytest.mark.parametrize(
    "args, env, needle",
    [
        ([], {"MODEL_SOURCE": "FTP", "MODEL_URI": "m.pkl"}, "MODEL_SOURCE"),
        ([], {"MODEL_SOURCE": "", "MODEL_URI": ""}, "MODEL_URI"),
        (["/nonexistent/model.pkl"], {}, "/nonexistent/model.pkl"),
        (["s3://bucket-only"], {}, "s3://bucket/key"),
        (["NOT_A_MODEL"], {}, "NOT_A_MODEL"),
    ],
)
def test_bad_configuration_is_one_line_and_non_zero(args, env, needle, tmp_path):
    (tmp_path / "NOT_A_MODEL").write_bytes(b"this is not a pickle")
    result = subprocess.run(
        [sys.executable, "-m", "coldbrew", "serve", *args, "--port", "0"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, **env},
        timeout=120,
    )
    assert result.returncode == 1  # docs/serving.md: "and exit status 1"
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("coldbrew serve: error:") and needle in lines[0], result.stderr
    assert READY_PREFIX not in result.stdout


@pytest.mark.parametrize("host", ["127.0.0.1", "nosuch.invalid"], ids=["port-in-use", "unresolvable-host"])
def test_an_address_it_cannot_listen_on_is_one_line_and_non_zero(tiny_brew, host):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "coldbrew", "serve", str(tiny_brew), "--host", host, "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"coldbrew serve: error: cannot listen on {host}:{port}: "), lines
    assert READY_PREFIX not in result.stdout
