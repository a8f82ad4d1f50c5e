"""The baseline every later issue must beat: cold start of `coldbrew serve` with the study's pickle.

For each preset, N fresh `coldbrew serve MODEL.pkl --port 0` processes; each is timed from spawn to the first
200 from POST /predict (the study's payload), then stopped. Prints median/min/max and writes
bench/results/cold_start_baseline.md with the machine and conditions.

    python bench/cold_start_baseline.py [-n 5] [--presets tiny,140mb]

The tiny model is trained into the model cache if missing; larger presets must already be cached
(`python bench/calibrate_presets.py`) and are skipped with a note otherwise.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from coldbrew.experiment.dataset import STUDY_PAYLOAD
from coldbrew.experiment.modelcache import cache_path
from coldbrew.experiment.train import PRESETS, train
from coldbrew.runtimes.server_process import ServerProcess


def model_for(preset: str) -> Path | None:
    """The preset's cached pickle (training the tiny one if needed), or None if it isn't cached."""
    path = cache_path(PRESETS[preset], "pickle")
    if not path.exists() and preset == "tiny":
        train(PRESETS["tiny"], path, progress=False)
    return path if path.exists() else None


def one_cold_start(path: Path) -> dict:
    """Spawn a server for ``path``, time spawn → first 200 from /predict, stop it."""
    # The study's pickle, trained by coldbrew itself: the explicit opt-in to unpickling it.
    with ServerProcess(str(path), env={"COLDBREW_ALLOW_PICKLE": "1"}) as server:
        status, body = server.request("POST", "/predict", STUDY_PAYLOAD)
        first_200_ms = (time.perf_counter() - server.spawned_at) * 1000.0
        if status != 200:
            raise RuntimeError(f"/predict answered {status}: {body}")
        timings = server.startup["timings_ms"]
    return {"first_200": first_200_ms, "imports": timings["imports"], "load": timings["load"]}


def human_size(n: int) -> str:
    return f"{n / 1e3:,.1f} kB" if n < 1e6 else f"{n / 1e6:,.1f} MB"


def stats(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def machine() -> list[str]:
    """Lines describing the machine and software, for the results file."""
    from importlib.metadata import version

    import numpy
    import sklearn

    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        with open("/proc/meminfo") as fh:
            mem = f"{int(fh.readline().split()[1]) / 1e6:.1f} GB RAM"
    except OSError:
        mem = "unknown RAM"
    return [
        f"- machine: {cpu}, {os.cpu_count()} logical CPUs, {mem}; {platform.system()} {platform.release()}",
        f"- software: Python {platform.python_version()}, numpy {numpy.__version__}, "
        f"scikit-learn {sklearn.__version__}, waitress {version('waitress')} (1 app thread)",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=5, help="fresh processes per preset (default: 5)")
    parser.add_argument("--presets", default="tiny,140mb", help="comma-separated presets (default: tiny,140mb)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "cold_start_baseline.md")
    args = parser.parse_args()

    load_before = os.getloadavg()
    rows, notes = [], []
    for preset in args.presets.split(","):
        path = model_for(preset)
        if path is None:
            notes.append(f"- {preset}: skipped, {cache_path(PRESETS[preset], 'pickle')} is not cached")
            print(notes[-1][2:])
            continue
        runs = []
        for i in range(args.runs):
            runs.append(one_cold_start(path))
            took = runs[-1]["first_200"]
            print(f"{preset:>6} run {i + 1}/{args.runs}: {took:8,.0f} ms spawn → first 200", flush=True)
        rows.append((preset, path, runs))
    load_after = os.getloadavg()

    header = "| preset | pickle | runs | spawn → first 200: median | min | max | imports (median) | load (median) |"
    table = [header, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for preset, path, runs in rows:
        med, lo, hi = stats([r["first_200"] for r in runs])
        imports = statistics.median(r["imports"] for r in runs)
        load = statistics.median(r["load"] for r in runs)
        table.append(
            f"| {preset} | {human_size(path.stat().st_size)} | {len(runs)} | **{med:,.0f} ms** | {lo:,.0f} ms "
            f"| {hi:,.0f} ms | {imports:,.0f} ms | {load:,.0f} ms |"
        )
    print("\n" + "\n".join(table))
    loads = {preset: statistics.median(r["load"] for r in runs) for preset, _, runs in rows}
    if "tiny" in loads and len(loads) > 1:
        reading = [
            "Reading it: the tiny pickle is 33 kB, so its `load` is almost all the import of scikit-learn that"
            " unpickling triggers; the extra load time of a larger pickle over tiny is the unpickling itself:"
        ]
        reading += [f"{preset} +{ms - loads['tiny']:,.0f} ms" for preset, ms in loads.items() if preset != "tiny"]
        notes.append("- " + " ".join(reading[:1]) + " " + ", ".join(reading[1:]) + ".")

    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = "\n".join(
        [
            "# Cold-start baseline: `coldbrew serve` with the study's pickle",
            "",
            f"Measured {stamp} by `python bench/cold_start_baseline.py -n {args.runs} --presets {args.presets}`.",
            "Each run is a fresh `coldbrew serve MODEL.pkl --port 0` process (waitress, model loaded first), timed",
            "from spawn to the first 200 from `POST /predict` with the study's payload. `imports` and `load` are",
            "the server's own start-up log (docs/serving.md): process start → loading begins, and unpickling.",
            "",
            *table,
            "",
            *notes,
            *([""] if notes else []),
            "Conditions:",
            "",
            *machine(),
            f"- load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after: a shared machine, other "
            "jobs were running, so treat differences under ~20 % as noise.",
            "- the model file is in the page cache after the first run (the study's containers read it from disk "
            "or S3 on every cold start, so Lambda numbers are higher).",
            "",
        ]
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
