"""`coldbrew demo` end to end: trains into a private model cache, serves both formats, prints the table."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import psutil
import pytest

from coldbrew.experiment.demo import format_table


@pytest.mark.integration
def test_demo_trains_serves_and_reports(tmp_path):
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    result = subprocess.run(
        [sys.executable, "-m", "coldbrew", "demo"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLDBREW_CACHE": str(tmp_path)},
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "training the tiny model" in out and "compiling it to .brew" in out
    responses = [json.loads(m) for m in re.findall(r"→ (\{.*\})", out)]
    assert len(responses) == 2 and responses[0] == responses[1]
    assert responses[0]["prediction"] in (">$50K", "<=$50K")
    assert "identical responses: yes" in out
    for label in ("imports", "model fetch", "model load", "warm-up", "spawn → first 200", "model file"):
        assert re.search(rf"^{re.escape(label)}\s+\S", out, re.M), label
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["gbm-n20-d3.brew", "gbm-n20-d3.pkl"]
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before, "no server left running"


def test_table_is_aligned():
    record = {"timings_ms": {"imports": 512.25, "fetch": 0.1, "load": 3021.0, "warmup": None}, "total_ms": 3533.35}
    table = format_table(
        {
            "pickle": {"startup": record, "first_200_ms": 3900.0, "size": 33_480},
            "brew": {"startup": record, "first_200_ms": 700.0, "size": 140_000_000},
        }
    )
    lines = table.splitlines()
    assert len({len(line) for line in lines[1:]}) == 1, "numbers are right-aligned to one width"
    assert "3,021.0 ms" in table and "—" in table and "33.5 kB" in table and "140.0 MB" in table
