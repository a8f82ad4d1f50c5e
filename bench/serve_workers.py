"""Which gunicorn worker `coldbrew serve` should run: cold start (spawn → first 200) and stop time, side by side.

For each worker class — ``sync`` (coldbrew's choice until issue #10), ``gthread`` (4 threads) and coldbrew's
gevent worker (the current choice) — N fresh `coldbrew serve MODEL.brew --port 0` processes are timed from
spawn to the first 200 from POST /predict (the study's payload), then from SIGTERM to exit. Runs are
interleaved (one of each class per round) so machine load hits all classes alike. Writes
bench/results/serve_workers.md.

    python bench/serve_workers.py [-n 9]

The model is the tiny preset compiled to .brew (trained and compiled into the model cache if missing): with a
6 kB model, what remains is the server's own start-up, which is what differs between worker classes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from coldbrew.experiment.dataset import STUDY_PAYLOAD
from coldbrew.experiment.modelcache import cache_path
from coldbrew.experiment.train import PRESETS, train
from coldbrew.runtimes.local import READY_PREFIX, WORKER_CLASS

# `coldbrew serve` with the worker class (and threads) swapped in before the server is built.
LAUNCH = """
import sys
import coldbrew.runtimes.local as local
local.WORKER_CLASS = sys.argv[1]
threads = int(sys.argv[2])
if threads:
    init = local.LocalServer.__init__
    def patched(self, *a, **k):
        init(self, *a, **k)
        self.cfg.set("threads", threads)
    local.LocalServer.__init__ = patched
from coldbrew.cli import main
sys.exit(main(["serve", sys.argv[3], "--port", "0"]))
"""

CLASSES = [("sync", "sync", 0), ("gthread, 4 threads", "gthread", 4), ("gevent (coldbrew's worker)", WORKER_CLASS, 0)]


def model() -> Path:
    """The tiny preset as .brew, trained and compiled into the model cache if missing."""
    from coldbrew.convert.sklearn import compile_model

    pkl, brew = cache_path(PRESETS["tiny"], "pickle"), cache_path(PRESETS["tiny"], "brew")
    if not pkl.exists():
        train(PRESETS["tiny"], pkl, progress=False)
    if not brew.exists():
        compile_model(pkl, brew, progress=False)
    return brew


def one_run(worker_class: str, threads: int, path: Path) -> dict:
    """Spawn, wait for the ready line, time the first 200 from /predict, then SIGTERM and time the exit."""
    spawned = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, worker_class, str(threads), str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = None
        for line in proc.stdout:
            if line.startswith(READY_PREFIX):
                url = line[len(READY_PREFIX) :].strip()
                break
        if url is None:
            raise RuntimeError(f"{worker_class}: server exited with {proc.wait()} before listening")
        listening = (time.perf_counter() - spawned) * 1000.0
        req = urllib.request.Request(
            url + "predict", data=json.dumps(STUDY_PAYLOAD).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=60) as response:
            response.read()
            status = response.status
        first_200 = (time.perf_counter() - spawned) * 1000.0
        if status != 200:
            raise RuntimeError(f"{worker_class}: /predict answered {status}")
        stopping = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        return {"first_200": first_200, "listening": listening, "stop": (time.perf_counter() - stopping) * 1000.0}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=9, help="fresh processes per worker class (default: 9)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "serve_workers.md")
    args = parser.parse_args()

    path = model()
    one_run("sync", 0, path)  # warm the page cache and the interpreter's .pyc files; not counted
    load_before = os.getloadavg()
    runs: dict[str, list[dict]] = {label: [] for label, _, _ in CLASSES}
    for i in range(args.runs):
        for label, worker_class, threads in CLASSES:
            runs[label].append(one_run(worker_class, threads, path))
            print(
                f"round {i + 1}/{args.runs} {label:>28}: {runs[label][-1]['first_200']:7,.0f} ms to first 200, "
                f"{runs[label][-1]['stop']:7,.0f} ms to stop",
                flush=True,
            )
    load_after = os.getloadavg()

    table = [
        "| worker | runs | spawn → first 200: median | min | max | spawn → listening: median "
        "| SIGTERM → exit: median |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, _, _ in CLASSES:
        first = [r["first_200"] for r in runs[label]]
        stop = statistics.median(r["stop"] for r in runs[label])
        listening = statistics.median(r["listening"] for r in runs[label])
        table.append(
            f"| {label} | {len(first)} | **{statistics.median(first):,.0f} ms** | {min(first):,.0f} ms "
            f"| {max(first):,.0f} ms | {listening:,.0f} ms | {stop:,.0f} ms |"
        )
    print("\n" + "\n".join(table))

    import gevent
    import gunicorn

    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = "\n".join(
        [
            "# `coldbrew serve`: worker classes side by side",
            "",
            f"Measured {stamp} by `python bench/serve_workers.py -n {args.runs}`. Each run is a fresh",
            "`coldbrew serve MODEL.brew --port 0` (tiny preset, 6 kB .brew, 1 worker, model preloaded) with the worker",
            "class swapped in, timed from spawn to the first 200 from `POST /predict`, then from SIGTERM to exit;",
            "`spawn → listening` is when it printed its ready line (the first request then waits for the worker's boot).",
            "Runs are interleaved, one of each class per round.",
            "",
            *table,
            "",
            "Conditions:",
            "",
            f"- Python {platform.python_version()}, gunicorn {gunicorn.__version__}, gevent {gevent.__version__}; "
            f"{os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}",
            f"- load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after: a shared machine with other "
            "jobs running, so treat differences under ~20 % as noise.",
            "",
        ]
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
