"""`coldbrew loadtest`: real locust against a real HTTP server on 127.0.0.1, then `coldbrew report` on it."""

from __future__ import annotations

import csv
import json
import re
import socket
import threading
import time
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

from coldbrew.cli import main
from coldbrew.errors import ColdbrewError
from coldbrew.experiment.dataset import STUDY_PAYLOAD
from coldbrew.experiment.loadtest import parse_labels, run_time_seconds

STUDY_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\] .+/INFO/root: \d+\.\d{2}$")


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class FakeLambda:
    """Two environments; each one's first request is slow (1.1 s) and flagged cold, like the lab's."""

    def __init__(self):
        self.lock = threading.Lock()
        self.count = 0
        self.seen: set[str] = set()
        self.bodies: list = []

    def __call__(self, environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        with self.lock:
            env = f"env-{self.count % 2}"
            self.count += 1
            cold = env not in self.seen
            self.seen.add(env)
            self.bodies.append(json.loads(body))
        if cold:
            time.sleep(1.1)
        headers = [
            ("Content-Type", "application/json"),
            ("X-Coldbrew-Env", env),
            ("X-Coldbrew-Cold", "1" if cold else "0"),
        ]
        start_response("200 OK", headers)
        return [b'{"prediction": "<=$50K", "probability": 0.1}']


@pytest.fixture
def fake_lambda():
    app = FakeLambda()
    server = make_server("127.0.0.1", 0, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", app
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.integration
def test_short_run_writes_every_file_and_report_reads_it(fake_lambda, tmp_path, capsys):
    url, app = fake_lambda
    out = tmp_path / "run"
    rc = main(
        [
            "loadtest",
            "--host",
            url,
            "--users",
            "3",
            "--spawn-rate",
            "3",
            "--run-time",
            "5s",
            "--name",
            "t",
            "--out",
            str(out),
            "--label",
            "setup=fake",
            "--label",
            "model_size=tiny",
            "--label",
            "format=brew",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr()
    assert "requests" in printed.out and "coldbrew report" in printed.out
    assert "done in" in printed.err  # the live progress line's last state

    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "complete" and info["locust_exit_code"] == 0
    assert (info["users"], info["spawn_rate"], info["run_time_s"]) == (3, 3, 5)
    assert info["labels"] == {"setup": "fake", "model_size": "tiny", "format": "brew"}
    assert info["payload"] == STUDY_PAYLOAD
    for key in ("requests", "study_log", "html", "stats", "stats_history", "failures", "payload"):
        assert (out / info["files"][key]).is_file(), key

    # Every request the server answered is in both logs, with the study's payload.
    assert app.bodies and all(b == STUDY_PAYLOAD for b in app.bodies)
    records = [json.loads(line) for line in (out / "t_requests.jsonl").read_text().splitlines()]
    study_lines = [line for line in (out / "t_locust_logs.txt").read_text().splitlines() if "/INFO/root:" in line]
    assert len(records) == len(study_lines) == info["requests"] == len(app.bodies) >= 3
    assert all(STUDY_LINE.match(line) for line in study_lines)
    assert [f"{r['latency_ms']:.2f}" for r in records] == [line.rsplit(" ", 1)[1] for line in study_lines]
    assert {r["env"] for r in records} == {"env-0", "env-1"}
    assert sum(r["cold"] for r in records) == 2 and all(r["status"] == 200 for r in records)

    with open(out / "t_stats.csv", newline="") as fh:
        agg = {row["Name"]: row for row in csv.DictReader(fh)}
    # A request still in flight when the run time ends can finish (and reach our listener) after locust wrote
    # its final stats row, so the CSV may count one request per user fewer than the per-request file.
    assert len(records) - 3 <= int(agg["/predict"]["Request Count"]) <= len(records)
    assert "<html" in (out / "t.html").read_text().lower()

    assert main(["report", str(out), "--format", "json"]) == 0
    (group,) = json.loads(capsys.readouterr().out)
    assert (group["setup"], group["model_size"], group["format"]) == ("fake", "tiny", "brew")
    assert group["counts"]["requests"] == len(records)
    assert group["n"] == 2 and group["n"] + group["warm"]["n"] == len(records)
    assert group["true_cold"]["environments"] == 2 and group["true_cold"]["n"] == 2
    assert group["true_cold"]["slow_warm"] == group["true_cold"]["fast_cold"] == 0

    # A second run into the same folder is refused rather than overwriting the first.
    assert main(["loadtest", "--host", url, "--out", str(out)]) == 1
    assert "already holds a run" in capsys.readouterr().err


def test_unreachable_host_fails_fast(tmp_path, capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    started = time.monotonic()
    rc = main(["loadtest", "--host", f"http://127.0.0.1:{port}", "--out", str(tmp_path / "x")])
    assert rc == 1 and time.monotonic() - started < 5
    err = capsys.readouterr().err
    assert "cannot reach" in err and err.count("\n") == 1
    assert not (tmp_path / "x" / "run.json").exists()


def test_option_parsing():
    assert run_time_seconds("60s") == 60 and run_time_seconds("90") == 90 and run_time_seconds("1h30m") == 5400
    assert run_time_seconds("2m") == 120 and run_time_seconds("1.5s") == 2 and run_time_seconds("1500ms") == 2
    for bad in ("soon", "0s", "500ms"):
        with pytest.raises(ColdbrewError, match="--run-time"):
            run_time_seconds(bad)
    assert parse_labels(["setup=DOCKER_DISK", "model_size=140MB"]) == {"setup": "DOCKER_DISK", "model_size": "140MB"}
    for bad in (["setup"], ["p50=1"], ["bad key=x"]):
        with pytest.raises(ColdbrewError):
            parse_labels(bad)


def test_bad_host_url(capsys):
    assert main(["loadtest", "--host", "127.0.0.1:8000"]) == 1
    assert "give a URL like" in capsys.readouterr().err


@pytest.mark.integration
def test_throttles_from_the_studys_rest_front_door_are_counted_as_throttles(tmp_path, capsys):
    """The study's front door (a REST API, as bench runs the lab) answers a Lambda throttle with 500, not 429:
    `loadtest` records the lab's x-lab-outcome and `report` counts those requests as throttled, not as errors,
    exactly as many as the lab refused."""
    from labtools import HANDLERS

    from coldbrew.experiment.bench import STUDY_API
    from coldbrew.experiment.loadtest import run_loadtest
    from coldbrew.lab import Lab, LabConfig

    config = LabConfig(
        handler="sleep.handler",  # every request holds the only environment for 1 s
        task_root=HANDLERS,
        api=STUDY_API,
        max_concurrency=1,
        memory_mb=256,
        report=False,
        function_output=tmp_path / "function.log",
    )
    with Lab(config) as lab:
        run_json = run_loadtest(lab.url, tmp_path / "run", users=4, spawn_rate=50, run_time="4s", progress=None)
        refused = lab.stats()["throttles"]
    records = [json.loads(line) for line in (run_json.parent / "loadtest_requests.jsonl").read_text().splitlines()]
    throttled = [r for r in records if r["outcome"] == "throttled"]
    assert refused > 0 and len(throttled) == refused
    assert {r["status"] for r in throttled} == {500}  # what API Gateway answers; the status alone says "error"
    assert main(["report", str(run_json), "--format", "json"]) == 0
    (group,) = json.loads(capsys.readouterr().out)
    assert group["counts"]["throttled"] == refused
    assert group["counts"]["errors"] == 0
