"""Committed results in a form that lasts: schema 2 (gzipped compact requests, provenance, no machine details),
read transparently beside schema 1 by ``coldbrew report``."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import re
import shutil
from pathlib import Path

import pytest

from coldbrew.cli import main
from coldbrew.errors import ColdbrewError
from coldbrew.experiment.results import SCHEMA, compact_run_folder, load_inputs, public_host, read_requests

RESULTS = Path(__file__).parents[2] / "bench" / "results"


def _v1_run(folder: Path, setup: str, latencies: list[float]) -> Path:
    """A run folder as `coldbrew loadtest` wrote it before schema 2 (port, 16-digit latencies, missing files)."""
    folder.mkdir(parents=True)
    with open(folder / "loadtest_requests.jsonl", "w") as fh:
        for i, ms in enumerate(latencies):
            env = f"e{i % 3}"
            fh.write(
                json.dumps(
                    {
                        "timestamp": f"2026-11-27T23:25:{10 + i:02d}.123Z",
                        "latency_ms": ms,
                        "status": 200,
                        "env": env,
                        "cold": i < 3,
                        "error": None,
                    }
                )
                + "\n"
            )
        fh.write(
            json.dumps(
                {
                    "timestamp": "2026-11-27T23:26:00.000Z",
                    "latency_ms": 2.5,
                    "status": 429,
                    "env": None,
                    "cold": None,
                    "error": "HTTPError('429')",
                }
            )
            + "\n"
        )
    (folder / "run.json").write_text(
        json.dumps(
            {
                "tool": "coldbrew loadtest",
                "status": "complete",
                "host": "http://127.0.0.1:35511",
                "users": 3,
                "labels": {"setup": setup, "model_size": "tiny", "format": "brew"},
                "files": {
                    "requests": "loadtest_requests.jsonl",
                    "html": "loadtest.html",
                    "stats": "loadtest_stats.csv",
                },
            }
        )
    )
    (folder / "bench.json").write_text(json.dumps({"name": setup, "model": "/root/.cache/coldbrew/models/m.brew"}))
    return folder


def _report(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["report", *argv, "--format", "markdown"]) == 0
    return out.getvalue()


@pytest.fixture
def runs(tmp_path) -> Path:
    root = tmp_path / "runs"
    _v1_run(root / "01-disk", "disk", [2345.678901234567, 1200.1234567891234, 999.9876543210987, 4.123456789, 3.9])
    _v1_run(root / "02-s3", "s3", [19000.000000001, 5.5, 6.25, 7.0000000001, 3.3])
    return root


def test_compacting_keeps_every_table_and_drops_machine_details(runs):
    before = _report(str(runs))
    for folder in sorted(runs.iterdir()):
        compact_run_folder(folder, commit="9ea075139efbddcd0bcf40bb7d0b3f0c7333ca43", coldbrew_version="0.1.0")
    assert _report(str(runs)) == before
    folder = runs / "01-disk"
    assert sorted(p.name for p in folder.iterdir()) == ["bench.json", "loadtest_requests.jsonl.gz", "run.json"]
    info = json.loads((folder / "run.json").read_text())
    assert info["schema"] == SCHEMA and info["commit"] == "9ea075139efbddcd0bcf40bb7d0b3f0c7333ca43"
    assert info["host"] == "http://127.0.0.1"
    assert info["files"] == {"requests": "loadtest_requests.jsonl.gz"}
    assert json.loads((folder / "bench.json").read_text())["model"] == "m.brew"
    lines = gzip.decompress((folder / "loadtest_requests.jsonl.gz").read_bytes()).decode().splitlines()
    assert json.loads(lines[0])["latency_ms"] == 2345.679
    assert "null" not in lines[-1] and json.loads(lines[-1])["status"] == 429


def test_compacting_is_reproducible_and_idempotent(runs, tmp_path):
    twin = tmp_path / "twin"
    shutil.copytree(runs, twin)
    for root in (runs, twin):
        for folder in sorted(root.iterdir()):
            compact_run_folder(folder, commit=None)
    packed = "01-disk/loadtest_requests.jsonl.gz"
    assert (runs / packed).read_bytes() == (twin / packed).read_bytes()
    snapshot = (runs / "01-disk" / "run.json").read_text()
    compact_run_folder(runs / "01-disk", commit="ffff")  # already schema 2: left alone
    assert (runs / "01-disk" / "run.json").read_text() == snapshot


def test_old_and_new_forms_read_side_by_side(runs):
    compact_run_folder(runs / "02-s3")
    loaded, _ = load_inputs([runs])
    assert sorted(r.meta["schema"] for r in loaded) == [1, 2]
    assert [r.labels["setup"] for r in loaded] == ["disk", "s3"]


def test_a_gzipped_jsonl_given_directly_is_read(runs, tmp_path):
    plain = runs / "01-disk" / "loadtest_requests.jsonl"
    packed = tmp_path / "r.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert read_requests(packed).latency_ms.tolist() == read_requests(plain).latency_ms.tolist()
    assert "| r.jsonl |" in _report(str(packed))  # labelled by its name, like the plain file


def test_a_newer_schema_is_a_one_line_error(runs, capsys):
    info = json.loads((runs / "01-disk" / "run.json").read_text())
    (runs / "01-disk" / "run.json").write_text(json.dumps({**info, "schema": SCHEMA + 1}))
    assert main(["report", str(runs / "01-disk")]) == 1
    err = capsys.readouterr().err
    assert "newer coldbrew" in err and err.count("\n") == 1


@pytest.mark.parametrize("damage", [lambda b: b[: len(b) // 2], lambda b: b[:10] + b"\x00" * 40 + b[50:]])
def test_a_corrupt_gzip_is_a_one_line_error(runs, damage, capsys):
    folder = runs / "01-disk"
    compact_run_folder(folder)
    packed = folder / "loadtest_requests.jsonl.gz"
    packed.write_bytes(damage(packed.read_bytes()))
    with pytest.raises(ColdbrewError, match="loadtest_requests.jsonl.gz"):
        load_inputs([folder])
    assert main(["report", str(folder)]) == 1
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize(
    "host, public",
    [
        ("http://127.0.0.1:35511", "http://127.0.0.1"),
        ("http://localhost:8000/", "http://localhost/"),
        ("http://[::1]:9000", "http://[::1]"),
        ("https://x.execute-api.eu-west-1.amazonaws.com/prod", "https://x.execute-api.eu-west-1.amazonaws.com/prod"),
    ],
)
def test_public_host_drops_only_loopback_ports(host, public):
    assert public_host(host) == public


def test_committed_results_are_in_the_lasting_form():
    run_files = sorted(RESULTS.rglob("run.json"))
    assert len(run_files) >= 22
    for run_json in run_files:
        for path in (run_json, run_json.parent / "bench.json"):
            text = path.read_text()
            info = json.loads(text)
            assert info["schema"] == SCHEMA and re.fullmatch(r"[0-9a-f]{40}", info["commit"]), path
            assert not re.search(r'"/(root|home|tmp|Users)/', text), f"{path}: a machine path"
            assert not re.search(r"127\.0\.0\.1:\d+|localhost:\d+", text), f"{path}: an ephemeral port"
        listed = json.loads(run_json.read_text())["files"]
        assert all((run_json.parent / name).is_file() for name in listed.values()), run_json
    assert not list(RESULTS.rglob("*.jsonl")), "requests are committed gzipped"
