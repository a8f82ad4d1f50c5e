"""Do the lab's init limits fire on time when many environments start at once?

    python bench/lab_timers.py [--starts 30] [--limit 3s] [--label NAME]

Sends --starts concurrent requests to a fresh lab hosting tests/handlers/slow_init.py (an init that
sleeps 60 s), so every request starts an environment whose init overruns --init-timeout. From the
event log it takes, per environment, the init time at which the lab gave up (``init_error`` with
``init_ms``, the first per environment) and reports how late that was against the limit: on time means
within a few hundred ms under a burst of process starts on a small machine. Appends one row to
bench/results/lab_timers.md (run it once per checkout to compare, e.g. with PYTHONPATH pointing at an
older one).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from coldbrew.lab import Lab, LabConfig

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results" / "lab_timers.md"
HEADER = [
    "# Init limits under a burst of cold starts (`bench/lab_timers.py`)",
    "",
    "Each row: one run, N concurrent cold starts of an init that sleeps 60 s against an init limit; "
    "lateness = the init time at which the lab gave up minus the limit (p50 / max over environments).",
    "",
    "| run | code | N | limit | late p50 | late max | load average |",
    "|---|---|---:|---:|---:|---:|---:|",
]


def call(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=30)
    parser.add_argument("--limit", type=float, default=3.0, help="init limit, seconds")
    parser.add_argument("--label", default="this checkout")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "events.jsonl"
        config = LabConfig(
            handler="slow_init.handler",
            task_root=ROOT / "tests" / "handlers",
            memory_mb=256,
            env={"SLOW_INIT_S": "60"},
            init_timeout=args.limit,
            timeout=args.limit + 1,
            max_concurrency=args.starts,
            report=False,
            log=log,
            function_output=Path(tmp) / "function.log",
        )
        with Lab(config) as lab, ThreadPoolExecutor(args.starts) as pool:
            statuses = list(pool.map(call, [lab.url + "/"] * args.starts))
        events = [json.loads(line) for line in log.read_text().splitlines()]
    first: dict[str, float] = {}
    for event in events:
        if event["event"] == "init_error" and event["env"] not in first:
            first[event["env"]] = event["init_ms"]
    late = sorted(ms - args.limit * 1000 for ms in first.values())
    load = os.getloadavg()[0]
    row = (
        f"| {time.strftime('%Y-%m-%d %H:%M')} | {args.label} | {args.starts} | {args.limit:g} s | "
        f"{statistics.median(late):.0f} ms | {max(late):.0f} ms | {load:.1f} |"
    )
    print(f"statuses {sorted(set(statuses))}, {len(first)} environments gave up; late ms: {[round(x) for x in late]}")
    lines = RESULTS.read_text(encoding="utf-8").splitlines() if RESULTS.exists() else HEADER
    RESULTS.write_text("\n".join([*lines, row]) + "\n", encoding="utf-8")
    print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
