"""Start-up telemetry: load_from_env times imports, fetch, load and warm-up, and logs one JSON line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import pytest

from coldbrew.app.startup import load_from_env, process_age_ms
from coldbrew.errors import ConfigError, ModelFormatError, SourceError

PHASES = {"imports", "fetch", "load", "warmup"}


def test_disk_model_timings_and_log_line(tiny_model):
    started = load_from_env({"MODEL_SOURCE": "DISK", "MODEL_URI": str(tiny_model), "COLDBREW_ALLOW_PICKLE": "1"})
    assert set(started.timings) == PHASES
    assert started.timings["load"] > 0 and started.timings["fetch"] >= 0
    assert started.timings["warmup"] is None
    assert started.model == {
        "uri": str(tiny_model),
        "source": "DISK",
        "format": "pickle",
        "size_bytes": tiny_model.stat().st_size,
        "kernel": None,  # a pickle is predicted by its library, not by a coldbrew kernel
    }
    line = started.log_line()
    assert "\n" not in line
    record = json.loads(line)
    assert record["event"] == "coldbrew.startup"
    assert set(record["timings_ms"]) == PHASES
    assert record["total_ms"] == pytest.approx(started.total_ms, abs=0.01)


def test_warmup_runs_one_prediction_when_asked(tiny_model):
    started = load_from_env({"MODEL_URI": str(tiny_model), "COLDBREW_WARMUP": "1", "COLDBREW_ALLOW_PICKLE": "true"})
    assert started.timings["warmup"] > 0
    assert started.model["source"] == "DISK", "MODEL_SOURCE may be left out for a path"


def test_brew_model_reports_brew_format(tiny_brew):
    started = load_from_env({"MODEL_SOURCE": "DISK", "MODEL_URI": str(tiny_brew)})
    assert started.model["format"] == "brew"


def test_verify_switch_checks_the_checksum_and_eager_still_serves(tiny_brew, tmp_path):
    damaged = tmp_path / "damaged.brew"
    data = bytearray(tiny_brew.read_bytes())
    data[-1] ^= 0x01  # one bit in the last array's padding or data: structurally fine, checksum wrong
    damaged.write_bytes(bytes(data))
    environ = {"MODEL_URI": str(damaged)}
    load_from_env(environ)  # the cheap checks alone do not read every byte
    with pytest.raises(ModelFormatError, match="(?i)checksum|sha"):
        load_from_env({**environ, "COLDBREW_VERIFY": "1"})
    eager = load_from_env({"MODEL_URI": str(tiny_brew), "COLDBREW_EAGER": "yes", "COLDBREW_VERIFY": "true"})
    assert eager.model["format"] == "brew"


@pytest.mark.integration
def test_s3_model_is_fetched_and_timed(tiny_model, s3_server, monkeypatch, tmp_path):
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the S3 download cache lives under $TMPDIR
    s3_server.create_bucket("startup-models")
    s3_server.upload(tiny_model, "startup-models", "tiny.pkl")
    started = load_from_env(
        {"MODEL_SOURCE": "S3", "MODEL_URI": "s3://startup-models/tiny.pkl", "COLDBREW_ALLOW_PICKLE": "yes"}
    )
    assert started.model["source"] == "S3"
    assert started.model["size_bytes"] == tiny_model.stat().st_size
    assert started.timings["fetch"] > 0
    assert any(tmp_path.rglob("*")), "downloaded into the (patched) temp dir"


@pytest.mark.parametrize(
    "environ, error, needle",
    [
        ({"MODEL_SOURCE": "FTP", "MODEL_URI": "x.pkl"}, ConfigError, "MODEL_SOURCE"),
        ({"MODEL_SOURCE": "DISK"}, ConfigError, "MODEL_URI"),
        ({"MODEL_SOURCE": "DISK", "MODEL_URI": "/nonexistent/model.pkl"}, (SourceError, ModelFormatError), "model.pkl"),
    ],
)
def test_bad_settings_raise_one_line_errors(environ, error, needle):
    with pytest.raises(error) as info:
        load_from_env(environ)
    assert needle in str(info.value) and "\n" not in str(info.value)


@pytest.mark.integration
def test_process_age_counts_from_process_start():
    """A fresh interpreter sleeps 300 ms, then measures its age and reads the clock: the age is at least the sleep
    and at most the time since this test spawned it, plus the one clock tick of /proc's resolution (docs/serving.md).
    An age counted from anywhere else (boot, the parent, a timer started in Python) falls outside that window."""
    code = (
        "import time; time.sleep(0.3); from coldbrew.app.startup import process_age_ms; age = process_age_ms(); "
        "print(age, time.clock_gettime(time.CLOCK_BOOTTIME))"
    )
    spawned = time.clock_gettime(time.CLOCK_BOOTTIME)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    age, measured_at = float(out[0]), float(out[1])
    tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
    assert 300 <= age <= (measured_at - spawned) * 1000 + tick_ms
    assert process_age_ms() > age, "this long-lived pytest process is older"


@pytest.mark.integration
def test_serving_a_brew_model_imports_nothing_heavy(tiny_brew):
    """The whole local serving path for a .brew model stays clear of scikit-learn, scipy, pandas and boto3."""
    code = (
        "import sys, coldbrew.runtimes.local, coldbrew.app; from coldbrew.app.startup import load_from_env; "
        f"load_from_env({{'MODEL_URI': {str(tiny_brew)!r}}}); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'scipy', 'pandas', 'boto3', 'flask'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
