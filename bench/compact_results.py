"""Rewrite committed load-test results (``bench/results/*_runs/``) in the compact, versioned form (schema 2).

    python bench/compact_results.py bench/results/seed_experiment_runs --commit 9ea0751...
    python bench/compact_results.py bench/results/warming_runs --commit b43c25c...

Each run folder's ``loadtest_requests.jsonl`` becomes ``loadtest_requests.jsonl.gz`` (latencies to the microsecond,
null fields left out), ``run.json`` and ``bench.json`` get ``schema: 2`` and the commit that produced them, lose
machine paths and loopback ports, and list only files that exist. ``coldbrew report`` reads both forms, so the
tables it prints are the same before and after (checked by this script, which refuses to keep a change otherwise).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import sys
import tempfile
from pathlib import Path

from coldbrew.cli import main as coldbrew
from coldbrew.experiment.results import RUN_FILE, compact_run_folder


def tables(folder: Path) -> str:
    """The tables ``coldbrew report FOLDER --with-study --format markdown`` prints (what the results pages quote)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        if coldbrew(["report", str(folder), "--with-study", "--format", "markdown"]) != 0:
            raise SystemExit(f"coldbrew report {folder} failed")
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a folder of run folders (each with a run.json)")
    parser.add_argument("--commit", required=True, help="the git commit whose code produced these runs")
    parser.add_argument("--version", default="0.1.0", help="coldbrew's version at that commit")
    args = parser.parse_args(argv)
    before = tables(args.folder)
    with tempfile.TemporaryDirectory() as scratch:
        backup = Path(scratch) / "backup"
        shutil.copytree(args.folder, backup)
        for run_json in sorted(args.folder.rglob(RUN_FILE)):
            compact_run_folder(run_json.parent, commit=args.commit, coldbrew_version=args.version)
        if tables(args.folder) != before:
            shutil.rmtree(args.folder)
            shutil.copytree(backup, args.folder)
            print(f"{args.folder}: the report's numbers changed; restored the original files", file=sys.stderr)
            return 1
    print(f"{args.folder}: compacted; the report's numbers are unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
