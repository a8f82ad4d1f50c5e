"""What `coldbrew serve --workers N` (N app threads) buys: requests per second with concurrent clients.

The C kernel releases the GIL while it walks the trees, so N threads can walk N requests' trees at once; parsing,
validation and the JSON answer take the GIL in turn. This measures how that adds up: one `coldbrew serve` per
``--workers`` value (all running for the whole measurement), CLIENTS client threads in this process each sending
REQUESTS ``POST /predict`` requests of a batch of ROWS rows on one connection per request; every round runs every
(workers, rows) cell once, in a shuffled order, and the table has the medians over rounds.

    python bench/serve_threads.py [--preset 140mb] [--rows 1,1000] [--workers 1,2] [--rounds 5]

Writes bench/results/serve_threads.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from coldbrew.experiment.dataset import STUDY_PAYLOAD
from coldbrew.experiment.modelcache import cache_path
from coldbrew.experiment.train import PRESETS, compile_study_model
from coldbrew.runtimes.server_process import ServerProcess

CLIENTS = 4
REQUESTS = 10  # per client and cell


def brew_for(preset: str) -> Path:
    """The preset's cached .brew (compiled from its cached pickle if needed)."""
    brew, pkl = cache_path(PRESETS[preset], "brew"), cache_path(PRESETS[preset], "pickle")
    if not brew.exists():
        if not pkl.exists():
            raise SystemExit(f"no {preset} model in the cache: coldbrew train --preset {preset}")
        compile_study_model(pkl, brew, progress=False)
    return brew


def batch(rows: int) -> bytes:
    """``rows`` distinct rows around the study's payload, as a request body."""
    body = [dict(STUDY_PAYLOAD, age=20 + i % 50, fnlwgt=100_000 + 37 * i) for i in range(rows)]
    return json.dumps(body).encode()


def post(url: str, data: bytes) -> None:
    req = urllib.request.Request(url + "predict", data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as response:
        response.read()
        if response.status != 200:
            raise RuntimeError(f"/predict answered {response.status}")


def cell(url: str, data: bytes) -> tuple[float, float]:
    """CLIENTS concurrent clients × REQUESTS requests: (requests per second, median latency in ms)."""
    latencies: list[float] = []

    def client() -> None:
        for _ in range(REQUESTS):
            t = time.perf_counter()
            post(url, data)
            latencies.append(time.perf_counter() - t)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return CLIENTS * REQUESTS / elapsed, statistics.median(latencies) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="140mb")
    parser.add_argument("--rows", default="1,1000", help="batch sizes (rows per request)")
    parser.add_argument("--workers", default="1,2", help="--workers values")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "serve_threads.md")
    args = parser.parse_args()
    path = brew_for(args.preset)
    rows = [int(r) for r in args.rows.split(",")]
    workers = [int(w) for w in args.workers.split(",")]
    bodies = {r: batch(r) for r in rows}
    servers = {w: ServerProcess(str(path), workers=w) for w in workers}
    results: dict[tuple[int, int], list[tuple[float, float]]] = {(w, r): [] for w in workers for r in rows}
    try:
        for server in servers.values():
            for r in rows:
                post(server.url, bodies[r])  # warm: the model's pages and code paths
        cells = list(results)
        order = random.Random(0)
        for i in range(args.rounds):
            order.shuffle(cells)
            for w, r in cells:
                results[w, r].append(cell(servers[w].url, bodies[r]))
            print(f"round {i + 1}/{args.rounds} done", flush=True)
    finally:
        for server in servers.values():
            server.stop()
    load = os.getloadavg()[0]
    lines = [
        "# `coldbrew serve --workers N`: app threads and concurrent clients",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M UTC} by `python bench/serve_threads.py --preset {args.preset} "
        f"--rows {args.rows} --workers {args.workers} --rounds {args.rounds}` — {platform.machine()}, "
        f"{os.cpu_count()} cores shared with other jobs (load average {load:.1f} at the end; the clients run on the "
        f"same cores), Python {platform.python_version()}. Model: `{path.name}` ({path.stat().st_size / 1e6:.1f} MB). "
        f"{CLIENTS} client threads × {REQUESTS} `POST /predict` requests per cell, one connection per request; "
        f"every round runs every cell once in a shuffled order, against servers running side by side; medians of "
        f"{args.rounds} rounds.",
        "",
        "| rows per request | `--workers` | requests/s | × `--workers 1` | median latency |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        base = statistics.median(rps for rps, _ in results[workers[0], r])
        for w in workers:
            rps = statistics.median(x for x, _ in results[w, r])
            ms = statistics.median(m for _, m in results[w, r])
            lines.append(f"| {r:,} | {w} | {rps:,.1f} | {rps / base:.2f}× | {ms:,.1f} ms |")
    lines += [
        "",
        "The C kernel releases the GIL around the tree walk, so threads walk trees in parallel; JSON parsing, "
        "validation and the answer hold the GIL. A one-row request is mostly the latter (and the HTTP round trip), a "
        "request of many rows on a large model mostly the walk.",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
