"""Isolated cold starts (`coldbrew bench --isolated N`) and the HTML report that opens with them (issue 13 §4).

Unit tests use hand-made samples; the integration tests run real labs on the tiny model and real
headless Chromium on the page.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import os
import re
import shutil
import subprocess
import tomllib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from coldbrew.cli import main
from coldbrew.errors import ColdbrewError
from coldbrew.experiment.coldstats import summarize
from coldbrew.experiment.htmlreport import headlines, render_html
from coldbrew.experiment.isolated import (
    ISOLATED_HEADERS,
    IsolatedResult,
    Sample,
    isolated_rows,
    read_isolated,
    write_isolated,
)
from coldbrew.experiment.report import write_report
from coldbrew.experiment.results import load_inputs

ROOT = Path(__file__).resolve().parents[2]
DISK_LOG = Path(__file__).parents[1] / "data" / "DOCKER_DISK_TEST_ROUND_5_locust_logs.txt"
MACHINE = {
    "cores": "2 CPU cores",
    "cpu": "2 × Test CPU",
    "ram": "4 GB RAM",
    "os": "Linux test",
    "software": "Python 3",
    "load": "0.1, 0.1, 0.1",
}


def result(setup, size, fmt, latencies, *, init_cpu=None, failed=0) -> IsolatedResult:
    samples = [Sample(ms, 200, ms - 5, init_cpu, 1.0, 0.5) for ms in latencies]
    samples += [Sample(29_000.0, 504)] * failed
    return IsolatedResult(setup, size, fmt, 1000, samples)


# ---------------------------------------------------------------- the table


def test_rows_give_the_distribution_and_put_the_studys_rows_after_ours():
    cells = [
        result("disk", "140mb", "pickle", [1000, 2000, 3000, 4000, 5000], init_cpu=900.0, failed=1),
        result("disk", "140mb", "brew", [100, 200, 300, 400, 500], init_cpu=50.0),
        result("disk", "tiny", "brew", [10, 20, 30]),
    ]
    rows = isolated_rows(cells)
    col = {h: i for i, h in enumerate(ISOLATED_HEADERS)}
    pickle, brew = rows[0], rows[1]
    # 5 ok samples 1..5 s: linear percentiles p25 2 s, p50 3 s, p75 4 s, p95 4.8 s; the 504 is a failure
    assert [pickle[col[k]] for k in ("n", "failed", "mean", "p25", "p50", "p75", "p95", "max")] == [
        "5",
        "1",
        "3,000",
        "2,000",
        "3,000",
        "4,000",
        "4,800",
        "5,000",
    ]
    assert pickle[col["init CPU p50"]] == "900" and brew[col["format"]] == ".brew" and brew[col["p50"]] == "300"
    # his published DOCKER_DISK 140MB row (mean 10,629, p50 5,572, max 29,326) right after our 140mb rows
    study = [r for r in rows if r[col["source"]].startswith("study")]
    assert rows.index(study[0]) == 2
    assert [study[0][col[k]] for k in ("mean", "p50", "max")] == ["10,629", "5,572", "29,326"]
    assert rows[-1][:3] == ["disk", "tiny", ".brew"] and len(rows) == 3 + len(study)  # no study row for tiny


def test_isolated_json_round_trip_and_bad_files(tmp_path):
    cells = [result("s3", "tiny", "pickle", [1234.5678, 1500.0], init_cpu=1000.0)]
    write_isolated(cells, tmp_path, MACHINE, "coldbrew bench --quick --no-load")
    back, doc = read_isolated(tmp_path / "isolated.json")
    assert doc["command"] == "coldbrew bench --quick --no-load" and doc["machine"] == MACHINE
    assert back[0].samples[0].latency_ms == 1234.57 and back[0].samples[1].init_cpu_ms == 1000.0
    assert "| s3 | tiny | pickle | lab, one at a time | 2 | 0 |" in (tmp_path / "isolated.md").read_text()
    bad = tmp_path / "bad.json"
    for text in ("not json", json.dumps({"schema": 99, "cells": []}), json.dumps({"schema": 1})):
        bad.write_text(text)
        with pytest.raises(ColdbrewError, match="not an isolated cold-start file"):
            read_isolated(bad)


def test_isolated_needs_a_disk_or_s3_setup(tmp_path):
    from coldbrew.experiment.isolated import measure_isolated

    with pytest.raises(ColdbrewError, match="disk, s3"):
        measure_isolated("warmed", "tiny", "brew", tmp_path / "m.brew", 1, tmp_path)


# ---------------------------------------------------------------- the page


def test_headline_per_setup_compares_formats_and_the_study():
    cells = [
        result("disk", "140mb", "pickle", [2000, 2000, 2000], init_cpu=1800.0),
        result("disk", "140mb", "brew", [200, 200, 200], init_cpu=150.0),
        result("s3", "140mb", "brew", [800, 800]),
    ]
    lines = headlines([], cells)
    assert [h["setup"] for h in lines] == ["Model read from disk", "Model downloaded from S3"]
    disk = lines[0]["sentence"]
    assert ".brew starts cold in 0.20 s, pickle in 2.00 s" in disk and "10.0× faster" in disk
    assert "The study measured 5.57 s for pickle on AWS" in disk
    assert "init CPU 1.80 s" in lines[0]["details"][0]
    assert "pickle" not in lines[1]["details"][0].split("—")[1].split(";")[0]  # s3 has no pickle sample


def test_study_log_groups_get_their_own_headline():
    runs, columns = load_inputs([DISK_LOG])
    (line,) = headlines(summarize(runs, columns))
    assert line["setup"] == "DOCKER_DISK, 140MB model"
    assert "24.79 s (median of 85)" in line["sentence"] or "24.8 s (median of 85)" in line["sentence"]


def test_the_template_is_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["coldbrew"]
    template = (ROOT / "coldbrew" / "experiment" / "templates" / "report.html.j2").relative_to(ROOT / "coldbrew")
    assert any(fnmatch.fnmatch(str(template), g) for g in globs)
    assert any(dep.lower().startswith("jinja2") for dep in config["project"]["optional-dependencies"]["bench"])


def test_page_escapes_what_it_is_given():
    runs, columns = load_inputs([DISK_LOG])
    page = render_html(
        summarize(runs, columns),
        [],
        extra_sections=[("<script>x</script>", ["a"], [["<b>"]])],
        machine={**MACHINE, "cpu": "<img src=x>"},
    )
    assert "<script>x</script>" not in page and "&lt;script&gt;" in page and "<img src=x>" not in page


class _Outline(HTMLParser):
    """Headings, figure captions, image sources and text of a DOM Chromium dumped, in document order."""

    def __init__(self):
        super().__init__()
        self.items: list[tuple[str, str]] = []
        self.images: list[str] = []
        self._tag: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("h1", "h2", "h3", "figcaption", "p", "table"):
            self._tag, self._text = tag, []
            if tag == "table":
                self.items.append(("table", ""))
        if tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_data(self, data):
        if self._tag:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == self._tag and tag != "table":
            self.items.append((tag, " ".join("".join(self._text).split())))
            self._tag = None


def _chromium() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if not found:
        pytest.skip("chromium is not installed (Debian package `chromium`): cannot check the page in a browser")
    return found


@pytest.mark.integration
def test_page_in_headless_chromium_opens_with_the_answer(tmp_path):
    chromium = _chromium()
    runs, columns = load_inputs([DISK_LOG])
    from coldbrew.experiment.published import study_reference_rows

    groups = summarize(runs, columns) + study_reference_rows(columns)
    cells = [
        result("disk", "140mb", "pickle", [2100, 1900, 2000], init_cpu=1800.0),
        result("disk", "140mb", "brew", [190, 210, 200], init_cpu=150.0),
    ]
    page = tmp_path / "report.html"
    write_report(runs, columns, groups, threshold_ms=1000, html=page, isolated=cells, machine=MACHINE)
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    outline = _Outline()
    outline.feed(dom)
    kinds = [kind for kind, _ in outline.items]
    texts = dict(outline.items[::-1])  # the first text of each kind
    assert kinds[:2] == ["h1", "h2"] and texts["h2"] == "The answer"
    first_table = kinds.index("table")
    headline = next(text for kind, text in outline.items if kind == "p")
    assert headline.startswith("Model read from disk: .brew starts cold in 0.20 s, pickle in 2.00 s")
    caveat = next(i for i, (kind, text) in enumerate(outline.items) if text.startswith("This is not AWS."))
    assert caveat < first_table and "2 CPU cores" in outline.items[caveat][1]
    assert any("Measured on: 2 × Test CPU" in text for _, text in outline.items)
    assert any("no status codes" in text for _, text in outline.items)  # the study log's caveat
    captions = [text for kind, text in outline.items if kind == "figcaption"]
    assert captions[0].startswith("Isolated cold starts per model size")
    assert outline.items.index(("figcaption", captions[0])) < first_table
    assert all(" " in c and not re.fullmatch(r"[\w.-]+", c) for c in captions)  # words, not file ids
    assert any(c.startswith("Latency over the run") and "140MB model" in c for c in captions)
    assert len(outline.images) == len(captions) == 4  # isolated, over time, histogram, comparison
    for src in outline.images:
        assert base64.b64decode(src.removeprefix("data:image/png;base64,"))[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.integration
def test_bench_isolated_runs_one_environment_at_a_time(tmp_path, monkeypatch, capsys, tiny_model, tiny_brew):
    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    shutil.copy(tiny_model, cache / "models" / "gbm-n20-d3.pkl")
    shutil.copy(tiny_brew, cache / "models" / "gbm-n20-d3.brew")
    monkeypatch.setenv("COLDBREW_CACHE", str(cache))
    out = tmp_path / "bench"
    code = main(
        [
            "bench",
            "--sizes",
            "tiny",
            "--setups",
            "disk,warmed",
            "--formats",
            "pickle,brew",
            "--isolated",
            "3",
            "--no-load",
            "--out",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    cells, _ = read_isolated(out / "isolated.json")
    assert [(c.setup, c.format) for c in cells] == [("disk", "pickle"), ("disk", "brew")]  # warmed: not isolated
    for cell in cells:
        assert [s.status for s in cell.samples] == [200] * 3
        # CPU time is measured and bounded by what the cores could give in the wall time (an init's threads,
        # e.g. BLAS, can use more CPU than wall time, so not "cpu <= wall"); 10 ms: the clock tick's resolution.
        cores = os.cpu_count() or 1
        assert all(s.init_cpu_ms is not None and 0 < s.init_cpu_ms <= s.init_ms * cores + 10 for s in cell.samples)
    folders = sorted((out / "isolated").iterdir())
    assert [f.name for f in folders] == ["01-disk-tiny-pickle", "02-disk-tiny-brew"]
    for folder in folders:
        events = [json.loads(line) for line in (folder / "lab_events.jsonl").read_text().splitlines()]
        lifecycle = [e["event"] for e in events if e["event"] in ("page_cache_evicted", "env_start", "env_stop")]
        # each sample: the model's page cache dropped, a fresh environment, and that one gone before the next
        assert lifecycle == ["page_cache_evicted", "env_start", "env_stop"] * 3
        assert len({e["env"] for e in events if e["event"] == "env_start"}) == 3
    pickle_env = (out / "isolated" / "01-disk-tiny-pickle" / "lab_events.jsonl").read_text()
    assert "Isolated cold starts" in captured.out and not (out / "runs").exists()
    assert "| disk | tiny | .brew | lab, one at a time | 3 | 0 |" in (out / "results.md").read_text()
    assert "env_ready" in pickle_env and "The answer" in (out / "report.html").read_text()


def test_report_regenerates_the_isolated_table_from_its_json(tmp_path, capsys):
    cells = [
        result("disk", "140mb", "pickle", [1000, 3000], init_cpu=900.0),
        result("disk", "140mb", "brew", [100, 300], init_cpu=50.0),
    ]
    write_isolated(cells, tmp_path, MACHINE, "coldbrew bench --quick --no-load")
    page = tmp_path / "page.html"
    assert (
        main(["report", "--isolated", str(tmp_path / "isolated.json"), "--format", "markdown", "--html", str(page)])
        == 0
    )
    out = capsys.readouterr().out
    assert out.strip() == (tmp_path / "isolated.md").read_text().strip()  # the same table bench wrote
    assert "| disk | 140mb | pickle | study (AWS Lambda, 2021) |" in out
    html = page.read_text()
    assert "Measured on: 2 × Test CPU" in html and ".brew starts cold in 0.20 s, pickle in 2.00 s" in html
    (tmp_path / "bad.json").write_text("{}")
    assert main(["report", "--isolated", str(tmp_path / "bad.json")]) == 1
    assert "not an isolated cold-start file" in capsys.readouterr().err


def test_the_reproducing_command_drops_the_machine_specific_out_folder():
    from coldbrew.experiment.bench import reproducing_command

    assert (
        reproducing_command(["bench", "--quick", "--out", "/tmp/x", "--no-load"]) == "coldbrew bench --quick --no-load"
    )
    assert reproducing_command(["bench", "--out=/tmp/x", "--isolated", "5"]) == "coldbrew bench --isolated 5"


def test_headline_under_load_tells_no_answer_from_no_cold_start():
    def group(fmt, measured, cold):
        return {
            "setup": "disk",
            "model_size": "tiny",
            "format": fmt,
            "labels": ["setup", "model_size", "format"],
            "n": cold,
            "p50": 1500.0 if cold else None,
            "threshold_ms": 1000.0,
            "reference": None,
            "counts": {"measured": measured},
            "inits": None,
        }

    (line,) = headlines([group("brew", 10, 0), group("pickle", 0, 0)])
    assert (
        "under load on this machine: .brew: no request over 1000 ms, pickle: no request answered"
        in (line["details"][0])
    )
