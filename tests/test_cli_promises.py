"""Command-line options and answers the docs promise, checked against an independent reference.

Expected values come from scikit-learn (or from reading the files a command wrote), never from the code under test:
`coldbrew train`'s printed accuracy, `coldbrew serve`'s answers and `--max-body-bytes`, `coldbrew loadtest
--payload`, `coldbrew package --arch/--memory/--timeout`.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from lambdatools import STUDY_ROW

from coldbrew.experiment.dataset import FEATURES, STUDY_PAYLOAD

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
READY = "coldbrew: serving on "

pytestmark = pytest.mark.integration


def _sklearn_answers(tiny_model: Path, rows: list[dict]) -> list[dict]:
    """What the study's Flask app answered: predict / predict_proba on a DataFrame, the second class's probability."""
    import pandas as pd

    model = pickle.loads(tiny_model.read_bytes())
    frame = pd.DataFrame(rows, columns=list(FEATURES))
    labels, probabilities = model.predict(frame), model.predict_proba(frame)[:, 1]
    return [{"prediction": str(label), "probability": float(p)} for label, p in zip(labels, probabilities, strict=True)]


# --------------------------------------------------------------------------------------------------- train


def test_train_prints_the_accuracy_scikit_learn_measures_on_the_studys_split(tmp_path):
    """docs/presets.md: the study's split, train_test_split(test_size=0.33, random_state=42) on the Adult data."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    out = tmp_path / "model.pkl"
    proc = subprocess.run(
        [sys.executable, "-m", "coldbrew", "train", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=ENV,
    )
    assert proc.returncode == 0, proc.stderr
    printed = re.search(r"test accuracy\s+([0-9.]+)", proc.stdout)
    assert printed, proc.stdout

    with gzip.open(REPO / "coldbrew" / "data" / "adult.csv.gz", "rt") as fh:
        frame = pd.read_csv(fh)
    y = frame["income"].map({">50K": ">$50K", "<=50K": "<=$50K"})
    assert not y.isna().any()
    _, x_test, _, y_test = train_test_split(frame[list(FEATURES)], y, test_size=0.33, random_state=42)
    model = pickle.loads(out.read_bytes())
    assert printed[1] == f"{model.score(x_test, y_test):.4f}"


# --------------------------------------------------------------------------------------------------- serve


def _start_serve(*args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "coldbrew", "serve", *args, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=ENV,
    )
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        if line.startswith(READY):
            return proc, line[len(READY) :].strip()
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise AssertionError(f"coldbrew serve exited with {proc.wait()} before listening")


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url + "predict", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_serve_answers_what_scikit_learn_answers_and_honours_max_body_bytes(tiny_model, tiny_brew):
    """docs/serving.md: answers are the model's own predict/predict_proba; a body over --max-body-bytes is a 413
    refused from its Content-Length, a body of exactly the limit is served."""
    rows = [
        STUDY_PAYLOAD,
        STUDY_ROW,
        {**STUDY_PAYLOAD, "capital_gain": 99999},
    ]
    expected = _sklearn_answers(tiny_model, rows)
    limit = 250
    one = json.dumps(rows[0]).encode()
    at_limit = one + b" " * (limit - len(one))
    proc, url = _start_serve(str(tiny_brew), "--max-body-bytes", str(limit))
    try:
        assert _post(url, one) == (200, expected[0])
        assert _post(url, at_limit) == (200, expected[0])
        status, body = _post(url, at_limit + b" ")
        assert status == 413 and str(limit) in body["error"] and body["field"] is None, body
        # A batch within the limit: one result per row, in order (the limit is per request, not per row).
        assert _post(url, json.dumps(rows[:2]).encode()) == (200, expected[:2])
        status, body = _post(url, json.dumps(rows).encode())
        assert len(json.dumps(rows)) > limit and status == 413
    finally:
        _stop(proc)


def test_serve_default_body_limit_is_one_mib(tiny_brew):
    """docs/serving.md: 1 MiB (1,048,576 bytes) by default."""
    one = json.dumps(STUDY_PAYLOAD).encode()
    proc, url = _start_serve(str(tiny_brew))
    try:
        assert _post(url, one + b" " * (1_048_576 - len(one)))[0] == 200
        assert _post(url, one + b" " * (1_048_577 - len(one)))[0] == 413
    finally:
        _stop(proc)


# ------------------------------------------------------------------------------------------------ loadtest


def _loadtest(url: str, out: Path, payload: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "coldbrew",
            "loadtest",
            "--host",
            url.rstrip("/"),
            "--users",
            "2",
            "--spawn-rate",
            "2",
            "--run-time",
            "2s",
            "--payload",
            str(payload),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=ENV,
    )


def _statuses(out: Path) -> list[int]:
    path = next(p for p in out.iterdir() if p.name.endswith("_requests.jsonl"))
    return [json.loads(line)["status"] for line in path.read_text().splitlines()]


def test_loadtest_posts_the_payload_file(tmp_path, tiny_brew):
    """docs/experiment.md: `--payload FILE` is the JSON body sent (a model with other features needs it)."""
    good = tmp_path / "good.json"
    good.write_text(json.dumps({**STUDY_PAYLOAD, "age": 61}))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**STUDY_PAYLOAD, "not_a_feature": 1}))
    proc, url = _start_serve(str(tiny_brew))
    try:
        ok = _loadtest(url, tmp_path / "good", good)
        refused = _loadtest(url, tmp_path / "bad", bad)
    finally:
        _stop(proc)
    assert ok.returncode == 0, ok.stderr
    assert json.loads((tmp_path / "good" / "payload.json").read_text()) == {**STUDY_PAYLOAD, "age": 61}
    assert json.loads((tmp_path / "good" / "run.json").read_text())["payload"] == {**STUDY_PAYLOAD, "age": 61}
    assert _statuses(tmp_path / "good") and set(_statuses(tmp_path / "good")) == {200}
    # The server refuses an unknown field with 400: every request of the second run carried the file's body.
    assert refused.returncode == 1, refused.stderr  # docs: exit 1 when every request failed
    assert _statuses(tmp_path / "bad") and set(_statuses(tmp_path / "bad")) == {400}


# ------------------------------------------------------------------------------------------------- package


def _template(path: Path) -> dict:
    from samtranslator.yaml_helper import yaml_parse

    return yaml_parse(path.read_text())


def _package(model, setup: str, out, *options: str) -> subprocess.CompletedProcess:
    """``coldbrew package MODEL --setup SETUP -o OUT OPTIONS...`` as a user runs it."""
    argv = [sys.executable, "-m", "coldbrew", "package", str(model), "--setup", setup, "-o", str(out), *options]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=ENV)


@pytest.mark.parametrize("setup", ["image-disk", "zip-snapstart"])
def test_package_arch_memory_timeout_reach_the_template_and_build(tmp_path, tiny_brew, setup):
    """docs/deploy.md: `--memory MB`, `--timeout S`, `--arch x86_64|arm64` set the function's configuration."""
    out = tmp_path / "out"
    proc = _package(tiny_brew, setup, out, "--arch", "arm64", "--memory", "2048", "--timeout", "15")
    assert proc.returncode == 0, proc.stderr
    template = _template(out / "template.yaml")
    assert template["Parameters"]["MemorySize"]["Default"] == 2048
    assert template["Parameters"]["Timeout"]["Default"] == 15
    function = template["Resources"]["ModelFunction"]["Properties"]
    assert function["Architectures"] == ["arm64"]
    assert function["MemorySize"] == {"Ref": "MemorySize"} and function["Timeout"] == {"Ref": "Timeout"}
    if setup == "zip-snapstart":  # built here: the manifest and the kernel's ELF say arm64
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["arch"] == "arm64" and "manylinux2014_aarch64" in manifest["target"]
        assert "EM_AARCH64" in proc.stdout
    else:
        dockerfile = (out / "Dockerfile").read_text()
        assert "linux/arm64" in dockerfile and "linux/amd64" not in dockerfile
        assert "docker build --platform linux/arm64" in (out / "README.md").read_text()


@pytest.mark.parametrize(
    "option, value, needle",
    [
        ("--memory", "127", "--memory"),
        ("--memory", "10241", "--memory"),
        ("--timeout", "0", "--timeout"),
        ("--timeout", "901", "--timeout"),
    ],
)
def test_package_refuses_values_lambda_refuses(tmp_path, tiny_brew, option, value, needle):
    """Lambda's limits: 128-10240 MB, 1-900 s; anything else is a one-line usage error (exit 2), before any file is written."""
    out = tmp_path / "out"
    proc = _package(tiny_brew, "image-disk", out, option, value)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert not out.exists() or not any(out.iterdir())
