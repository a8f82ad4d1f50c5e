"""What freezing idle environments costs per request: warm latency through the lab, freeze on vs off.

    python bench/lab_freeze.py [--requests 500] [--rounds 3]

Each round starts one lab per setting (alternating which goes first) hosting tests/handlers/echo.py,
warms its one environment, then sends --requests sequential GETs on one keep-alive connection and
takes the p50 and p99 of the client-side latency. The table holds the median over rounds of each.
Freezing adds a SIGSTOP at each /next and a SIGCONT per invocation, plus a /proc scan for the environment's
process tree whenever a process was created on the machine since the last one.
Results: bench/results/lab_freeze.md.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from coldbrew.lab import Lab, LabConfig

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"


def latencies(freeze: bool, requests: int, workdir: Path) -> list[float]:
    """Client-side ms of ``requests`` warm GETs through a fresh lab."""
    config = LabConfig(
        handler="echo.handler",
        task_root=ROOT / "tests" / "handlers",
        memory_mb=256,
        report=False,
        freeze=freeze,
        function_output=workdir / "function.log",
    )
    with Lab(config) as lab:
        conn = http.client.HTTPConnection("127.0.0.1", lab.port, timeout=30)
        conn.request("GET", "/")
        conn.getresponse().read()  # the cold start
        out = []
        for _ in range(requests):
            started = time.perf_counter()
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            out.append((time.perf_counter() - started) * 1000)
            assert response.status == 200
        conn.close()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    p50 = {True: [], False: []}
    p99 = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for freeze in (True, False) if round_ % 2 == 0 else (False, True):
                values = sorted(latencies(freeze, args.requests, Path(tmp)))
                p50[freeze].append(statistics.median(values))
                p99[freeze].append(values[int(0.99 * (len(values) - 1))])
                print(
                    f"round {round_ + 1} freeze={freeze}: p50 {p50[freeze][-1]:.3f} ms p99 {p99[freeze][-1]:.3f} ms",
                    flush=True,
                )
    row = {f: (statistics.median(p50[f]), statistics.median(p99[f])) for f in (True, False)}
    load = os.getloadavg()[0]
    lines = [
        "# Freezing idle environments: cost per warm request (`bench/lab_freeze.py`)",
        "",
        f"{args.requests} sequential warm GETs through the lab's front door (keep-alive) to `tests/handlers/echo.py`, "
        f"median over {args.rounds} rounds of each round's p50/p99; one lab per setting per round, order alternating. "
        f"Machine: {os.cpu_count()} cores shared (load average {load:.1f} at the end). "
        f"Run {time.strftime('%Y-%m-%d')}.",
        "",
        "| setting | p50 | p99 |",
        "|---|---:|---:|",
        f"| freeze (default) | {row[True][0]:.3f} ms | {row[True][1]:.3f} ms |",
        f"| `--no-freeze` | {row[False][0]:.3f} ms | {row[False][1]:.3f} ms |",
        f"| **cost of freezing** | **{row[True][0] - row[False][0]:+.3f} ms** | {row[True][1] - row[False][1]:+.3f} ms |",
        "",
        "Freezing SIGSTOPs the environment's processes when its runtime asks for the next event and SIGCONTs them "
        "when one arrives. The process tree comes from a /proc scan (about 2-6 ms with 100-200 processes), reused "
        "while /proc/loadavg shows no process created since; on a machine that starts processes all the time "
        "the scan runs at every invocation.",
        "",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "lab_freeze.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
