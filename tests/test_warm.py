"""`coldbrew warm` against the lab hosting the real handler: warm-ups land on distinct environments."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from coldbrew.experiment.warm import warm_round
from coldbrew.lab import Lab, LabConfig

pytestmark = pytest.mark.integration  # every test here spawns a process or a server

X = 3


def lab_for(tmp_path, model, **options) -> Lab:
    return Lab(LabConfig(model_uri=model, memory_mb=1024, function_output=tmp_path / "function.log", **options))


def test_a_round_creates_exactly_x_environments_and_a_second_round_none(tmp_path, tiny_brew):
    with lab_for(tmp_path, tiny_brew, idle_timeout="10m") as lab:
        first = warm_round(lab.url, X, hold_ms=400)
        assert (first.distinct_envs, first.cold, first.errors) == (X, X, 0)
        assert lab.stats()["cold_starts"] == X
        second = warm_round(lab.url, X, hold_ms=400, number=2)
        assert (second.distinct_envs, second.cold, second.errors) == (X, 0, 0)
        assert lab.stats()["cold_starts"] == X


def test_after_the_idle_timeout_the_next_round_is_cold_again(tmp_path, tiny_brew):
    with lab_for(tmp_path, tiny_brew, idle_timeout="1s") as lab:
        assert warm_round(lab.url, 2, hold_ms=300).cold == 2
        deadline = time.monotonic() + 30
        while lab.stats()["environments"].get("idle", 0) and time.monotonic() < deadline:
            time.sleep(0.2)
        again = warm_round(lab.url, 2, hold_ms=300, number=2)
        assert (again.distinct_envs, again.cold) == (2, 2)


def test_cli_json_rounds_and_exit_status(tmp_path, tiny_brew):
    with lab_for(tmp_path, tiny_brew, max_concurrency=2) as lab:
        ok = subprocess.run([sys.executable, "-m", "coldbrew", "warm", lab.url, "--concurrency", "2", "--count", "2",
                             "--every", "100ms", "--json"], capture_output=True, text=True, timeout=120)
        assert ok.returncode == 0, ok.stderr
        rounds = [json.loads(line) for line in ok.stdout.splitlines()]
        assert [r["round"] for r in rounds] == [1, 2]
        assert all(r["requested"] == 2 and r["distinct_envs"] == 2 and r["errors"] == 0 for r in rounds)
        assert [r["cold"] for r in rounds] == [2, 0]
        # Three at once against a cap of two: one is throttled, so fewer than X answered -> non-zero exit.
        short = subprocess.run([sys.executable, "-m", "coldbrew", "warm", lab.url, "-x", "3", "--json"],
                               capture_output=True, text=True, timeout=120)
        assert short.returncode == 1
        last = json.loads(short.stdout.splitlines()[-1])
        assert last["distinct_envs"] == 2 and last["errors"] == 1


def test_unreachable_url_is_a_one_line_error():
    proc = subprocess.run([sys.executable, "-m", "coldbrew", "warm", "http://127.0.0.1:9", "-x", "1"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "cannot reach" in proc.stderr and "Traceback" not in proc.stderr
