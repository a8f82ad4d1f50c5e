"""`coldbrew warm` against the lab hosting the real handler: warm-ups land on distinct environments."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from coldbrew.experiment.warm import warm_round
from coldbrew.lab import Lab, LabConfig

pytestmark = pytest.mark.integration  # every test here spawns a process or a server

X = 3
SECRET = "lab-warm-secret-0123456789"


def lab_for(tmp_path, model, **options) -> Lab:
    options.setdefault("warm_secret", SECRET)
    return Lab(LabConfig(model_uri=model, memory_mb=1024, function_output=tmp_path / "function.log", **options))


def test_a_round_creates_exactly_x_environments_and_a_second_round_none(tmp_path, tiny_brew):
    with lab_for(tmp_path, tiny_brew, idle_timeout="10m") as lab:
        first = warm_round(lab.url, X, hold_ms=400, secret=SECRET)
        assert (first.distinct_envs, first.cold, first.errors) == (X, X, 0)
        assert lab.stats()["cold_starts"] == X
        second = warm_round(lab.url, X, hold_ms=400, number=2, secret=SECRET)
        assert (second.distinct_envs, second.cold, second.errors) == (X, 0, 0)
        assert lab.stats()["cold_starts"] == X


def test_after_the_idle_timeout_the_next_round_is_cold_again(tmp_path, tiny_brew):
    with lab_for(tmp_path, tiny_brew, idle_timeout="1s") as lab:
        assert warm_round(lab.url, 2, hold_ms=300, secret=SECRET).cold == 2
        deadline = time.monotonic() + 30
        while lab.stats()["environments"].get("idle", 0) and time.monotonic() < deadline:
            time.sleep(0.2)
        again = warm_round(lab.url, 2, hold_ms=300, number=2, secret=SECRET)
        assert (again.distinct_envs, again.cold) == (2, 2)


def test_cli_json_rounds_and_exit_status(tmp_path, tiny_brew):
    with lab_for(tmp_path, tiny_brew, max_concurrency=2) as lab:
        ok = subprocess.run(
            [
                sys.executable,
                "-m",
                "coldbrew",
                "warm",
                lab.url,
                "--concurrency",
                "2",
                "--count",
                "2",
                "--every",
                "100ms",
                "--json",
                "--secret",
                SECRET,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert ok.returncode == 0, ok.stderr
        rounds = [json.loads(line) for line in ok.stdout.splitlines()]
        assert [r["round"] for r in rounds] == [1, 2]
        assert all(r["requested"] == 2 and r["distinct_envs"] == 2 and r["errors"] == 0 for r in rounds)
        assert [r["cold"] for r in rounds] == [2, 0]
        # Three at once against a cap of two: one is throttled, so fewer than X answered -> non-zero exit.
        short = subprocess.run(
            [sys.executable, "-m", "coldbrew", "warm", lab.url, "-x", "3", "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "COLDBREW_WARM_SECRET": SECRET},
        )
        assert short.returncode == 1
        last = json.loads(short.stdout.splitlines()[-1])
        assert last["distinct_envs"] == 2 and last["errors"] == 1


def test_unreachable_url_is_a_one_line_error():
    proc = subprocess.run(
        [sys.executable, "-m", "coldbrew", "warm", "http://127.0.0.1:9", "-x", "1", "--secret", "s"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "cannot reach" in proc.stderr and "Traceback" not in proc.stderr


def _post_warm(url: str, secret: str | None = None) -> int:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Coldbrew-Warm-Secret"] = secret
    request = urllib.request.Request(url + "/_warm", data=b'{"hold_ms": 0}', method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_lab_routes_warm_ups_as_deployed(tmp_path, tiny_brew):
    """Route off by default (404, no invocation); on with a secret: 403 without it, 200 with it."""
    with lab_for(tmp_path, tiny_brew, warm_secret=None) as lab:
        assert _post_warm(lab.url) == 404 and _post_warm(lab.url, SECRET) == 404
        assert lab.stats()["invocations"] == 0  # API Gateway answers a missing route itself
    with lab_for(tmp_path, tiny_brew) as lab:
        assert _post_warm(lab.url) == 403 and _post_warm(lab.url, "not-the-secret") == 403
        assert _post_warm(lab.url, SECRET) == 200


def test_cli_refuses_without_a_secret_or_target():
    for argv in (
        ["http://127.0.0.1:9", "-x", "1"],
        ["-x", "1"],
        ["http://127.0.0.1:9", "-x", "1", "--secret", "s", "--hold", "2s"],
    ):
        env = {k: v for k, v in os.environ.items() if k != "COLDBREW_WARM_SECRET"}
        proc = subprocess.run(
            [sys.executable, "-m", "coldbrew", "warm", *argv],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


class HandlersAsLambda:
    """The part of boto3's Lambda client `warm --function` uses, backed by real handlers (one per environment)."""

    def __init__(self, model, n):
        import io
        import threading

        from coldbrew.runtimes.aws_lambda import init_from_env

        self._io, self._lock, self.calls = io, threading.Lock(), []
        self.envs = [init_from_env({"MODEL_SOURCE": "DISK", "MODEL_URI": str(model)}) for _ in range(n)]

    def invoke(self, FunctionName, Payload):
        with self._lock:
            env = self.envs[len(self.calls) % len(self.envs)]
            self.calls.append((FunctionName, json.loads(Payload)))
        answer = env(json.loads(Payload), None)
        return {"StatusCode": 200, "Payload": self._io.BytesIO(json.dumps(answer).encode())}


def test_direct_round_invokes_the_function_with_the_warm_event(tiny_brew, capsys):
    from coldbrew.experiment.warm import direct_round

    client = HandlersAsLambda(tiny_brew, X)
    first = direct_round("coldbrew-model:live", X, hold_ms=2000, client=client)  # direct: up to 10 s
    assert (first.distinct_envs, first.cold, first.errors) == (X, X, 0)
    assert client.calls == [("coldbrew-model:live", {"coldbrew": "warm", "hold_ms": 2000})] * X
    second = direct_round("coldbrew-model:live", X, hold_ms=0, number=2, client=client)
    assert (second.distinct_envs, second.cold) == (X, 0)


def test_cli_function_without_a_region_is_a_one_line_error():
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_CONFIG_FILE"] = os.devnull
    proc = subprocess.run(
        [sys.executable, "-m", "coldbrew", "warm", "--function", "coldbrew-model", "-x", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert proc.returncode == 1 and "--region" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
