"""`coldbrew bench`: the experiment matrix on real labs with real locust, on the tiny model."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from proctools import descendants, survivors

from coldbrew.cli import main
from coldbrew.experiment.bench import (
    Cell,
    alive_seconds,
    environment_spans,
    pickle_concurrency_cap,
    reference_rows,
)

LOAD = ["--users", "2", "--spawn-rate", "2", "--run-time", "5s", "--isolated", "0"]


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory) -> Path:
    """An empty model cache shared by this module's runs (the first run trains the tiny model)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def cache_env(model_cache, monkeypatch) -> Path:
    monkeypatch.setenv("COLDBREW_CACHE", str(model_cache))
    return model_cache


@pytest.mark.integration
def test_tiny_matrix_end_to_end(cache_env, tmp_path, capsys):
    out = tmp_path / "bench"
    code = main(
        ["bench", "--sizes", "tiny", "--setups", "disk,warmed", "--formats", "pickle,brew", *LOAD, "--out", str(out)]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert (cache_env / "models" / "gbm-n20-d3.pkl").exists() and (cache_env / "models" / "gbm-n20-d3.brew").exists()
    assert "training" in captured.err and "[run 4/4] warmed tiny brew" in captured.err and "ETA" in captured.err

    names = ["disk-tiny-pickle", "disk-tiny-brew", "warmed-tiny-pickle", "warmed-tiny-brew"]
    folders = sorted(p.name for p in (out / "runs").iterdir())
    assert folders == [f"{i:02d}-{name}" for i, name in enumerate(names, 1)]
    for folder in (out / "runs").iterdir():
        for name in (
            "run.json",
            "bench.json",
            "lab_events.jsonl",
            "loadtest_requests.jsonl",
            "loadtest_locust_logs.txt",
        ):
            assert (folder / name).exists(), folder / name
        assert json.loads((folder / "run.json").read_text())["status"] == "complete"

    cold_table = captured.out.split("\n\n")[1].splitlines()
    assert cold_table[0].split()[:4] == ["setup", "model_size", "format", "concurrency"]
    assert [line.split()[:3] for line in cold_table[2:]] == [n.split("-") for n in names]
    assert "env-s alive" in captured.out and all(name in captured.out for name in names)

    warmed = json.loads((out / "runs" / "03-warmed-tiny-pickle" / "bench.json").read_text())
    assert warmed["warm_round"]["distinct_envs"] == 2 and warmed["envs_ready_at_load"] == 2
    assert warmed["env_seconds_before_load"] > 0 and warmed["env_seconds"] >= warmed["env_seconds_before_load"]
    disk = json.loads((out / "runs" / "01-disk-tiny-pickle" / "bench.json").read_text())
    assert disk["warm_round"] is None and disk["envs_ready_at_load"] == 0

    page = (out / "report.html").read_text()
    assert "Runs (environment-seconds" in page and page.count("data:image/png;base64") >= 5
    assert (out / "plots" / "cold_starts.png").exists()
    assert "| disk | tiny | brew | 2 |" in (out / "results.md").read_text()
    assert len(json.loads((out / "results.json").read_text())["runs"]) == 4


@pytest.mark.integration
def test_provisioned_environments_are_ready_before_the_load(cache_env, tmp_path, capsys):
    out = tmp_path / "bench"
    code = main(
        [
            "bench",
            "--sizes",
            "tiny",
            "--setups",
            "provisioned",
            "--formats",
            "brew",
            *LOAD,
            "--max-concurrency",
            "3",
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    info = json.loads((out / "runs" / "01-provisioned-tiny-brew" / "bench.json").read_text())
    assert info["envs_ready_at_load"] == 3 and info["max_concurrency"] == 3
    assert info["lab_cold_starts"] == 0 and info["env_seconds_before_load"] > 0
    requests = (out / "runs" / "01-provisioned-tiny-brew" / "loadtest_requests.jsonl").read_text().splitlines()
    flags = [json.loads(line)["cold"] for line in requests]
    assert flags and not any(flags)  # no request waited for an init, and none says it did


@pytest.mark.integration
def test_ctrl_c_keeps_finished_runs_and_leaves_no_process(cache_env, tmp_path):
    out = tmp_path / "bench"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "coldbrew",
            "bench",
            "--sizes",
            "tiny",
            "--setups",
            "disk,warmed",
            "--formats",
            "brew",
            *LOAD,
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        second = out / "runs" / "02-warmed-tiny-brew" / "loadtest_requests.jsonl"
        deadline = time.monotonic() + 90
        while not second.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert second.exists(), "the second run's load test never started"
        children = descendants(proc.pid)
        assert children, "no lab or locust process was running"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 130, stderr
        assert "interrupted" in stderr and "1 of 2 runs" in stdout
        assert not survivors(children)
        results = (out / "results.md").read_text()
        assert "| disk | tiny | brew |" in results and "warmed" not in results
        assert (out / "report.html").exists()
        assert json.loads((out / "runs" / "02-warmed-tiny-brew" / "run.json").read_text())["status"] == "interrupted"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--sizes", "tiny,2gb"], "--sizes 'tiny,2gb': choose from tiny,140mb,420mb,1090mb"),
        (["--setups", "lambda"], "--setups 'lambda': choose from disk,s3,warmed,provisioned"),
        (["--formats", "onnx"], "--formats 'onnx': choose from pickle,brew"),
        (["--sizes", ","], "--sizes ',': choose from"),
        (["--users", "0"], "--users must be at least 1"),
        (["--spawn-rate", "0"], "--spawn-rate must be positive"),
        (["--run-time", "soon"], "--run-time 'soon'"),
        (["--max-concurrency", "0"], "--max-concurrency must be at least 1"),
        (["--memory-budget-gb", "-1"], "--memory-budget-gb: '-1': not a size"),
        (["--memory-budget-gb", "0"], "--memory-budget-gb must be positive"),
        (["--isolated", "-1"], "--isolated must be 0 or more"),
        (["--no-load", "--isolated", "0"], "--no-load with --isolated 0 leaves nothing to measure"),
    ],
)
def test_invalid_options_are_one_line_errors(argv, message, capsys, tmp_path):
    try:
        status = main(["bench", *argv, "--out", str(tmp_path / "x")])
    except SystemExit as exit:  # a value the option's type refuses: argparse's usage error, status 2
        status = exit.code
    assert status in (1, 2)
    err = capsys.readouterr().err
    assert err.startswith("coldbrew bench: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_a_used_out_folder_is_refused(tmp_path, capsys):
    (tmp_path / "old.txt").write_text("x")
    assert main(["bench", "--sizes", "tiny", "--out", str(tmp_path)]) == 1
    assert "is not empty; choose another --out" in capsys.readouterr().err


def test_pickle_cap_fits_the_budget():
    mb = 2**20
    assert pickle_concurrency_cap(140 * mb, 16 * 1024) == 35  # 1.5 x 140 + 250 = 460 MB each
    assert pickle_concurrency_cap(1090 * mb, 16 * 1024) == 8
    assert pickle_concurrency_cap(5000 * mb, 1024) == 1  # never below one environment


def test_study_rows_are_placed_by_our_setup_names():
    rows = reference_rows(
        [
            Cell("disk", "140mb", "brew", 100, False),
            Cell("warmed", "140mb", "brew", 100, False),
            Cell("s3", "tiny", "brew", 100, False),
        ]
    )
    assert list(rows) == [("disk", "140mb")]
    row = rows[("disk", "140mb")][0]
    assert (row["setup"], row["model_size"], row["format"], row["mean"], row["p50"], row["max"]) == (
        "disk",
        "140mb",
        None,
        10629,
        5572,
        29326,
    )
    assert row["reference"].startswith("study")
    one_round = rows[("disk", "140mb")][1]  # his round-5 log: the numbers tests/data/README.md gives
    assert (one_round["n"], one_round["p50"]) == (85, 24788.91)
    s3 = reference_rows([Cell("s3", "1090mb", "brew", 100, False)])[("s3", "1090mb")]
    assert [(r["setup"], r["p50"]) for r in s3] == [("s3", 19893.34)]


def test_environment_seconds_from_the_event_log(tmp_path):
    log = tmp_path / "events.jsonl"
    events = [
        {"ts": 100.0, "event": "lab_start"},
        {"ts": 101.0, "event": "env_start", "env": "env-0001"},
        {"ts": 102.0, "event": "env_start", "env": "env-0002"},
        {"ts": 103.0, "event": "init_error", "env": "env-0002"},
        {"ts": 104.0, "event": "env_start", "env": "env-0003"},
        {"ts": 111.0, "event": "env_stop", "env": "env-0003"},
        {"ts": 121.0, "event": "lab_stop"},
    ]
    log.write_text("".join(json.dumps(e) + "\n" for e in events))
    spans = environment_spans(log)
    assert spans == {"env-0001": (101.0, 121.0), "env-0002": (102.0, 103.0), "env-0003": (104.0, 111.0)}
    assert alive_seconds(spans) == 28.0
    assert alive_seconds(spans, until=105.0) == 4.0 + 1.0 + 1.0
