"""The C kernel's walks, before and after: coldbrew's own batch and single-row figures on the peers' models.

Measures one coldbrew checkout (the one on ``sys.path``, or ``--tree DIR``: another checkout with its kernel built
in place) on bench/peer_models.py's LightGBM 500 x 63 leaves and XGBoost 2,000 x depth 8 models, each in its own
fresh process, with the checkouts interleaved round by round:

- batch: ns per tree x row of ``predict_proba`` over the 10,000 rows with 5% NaN, median of 7 calls after two
  warm-up calls, with 1 and with 2 threads (and the 2-thread speed-up);
- single row: p50 of ``predict_proba`` over 400 calls, a different row each call, numpy in (one-row matrix) and
  lists in.

Every answer is checked bit-exact (values and dtype) against the library's own ``predict_proba`` before it is
timed. The machine is shared (2 cores, other jobs): medians of ``--rounds`` fresh processes per figure; compare the
checkouts' ratios within one run.

    python bench/walks.py --before /path/to/old/checkout [--rounds 3]

Writes bench/results/walks.md and walks.json.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
MODELS = {"lgbm": "LightGBM 500 x 63 leaves", "xgb": "XGBoost 2,000 x depth 8"}

CHILD = r"""
import json, statistics, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
from coldbrew.engine.brew import BrewPredictor
brew, lib, rows, name = sys.argv[2:6]
X = np.load(rows)
if name == "lgbm":
    import lightgbm
    b = lightgbm.Booster(model_file=lib)
    want = b.predict(X)
else:
    import xgboost
    m = xgboost.XGBClassifier(n_jobs=1); m.load_model(lib)
    want = m.predict_proba(X)[:, 1]
res = {}
for threads in (1, 2):
    p = BrewPredictor(brew, threads=threads)
    T = p.header["n_trees"]
    got = p.predict_proba(X)[:, 1]
    assert got.dtype == want.dtype and np.array_equal(got, want), "not bit-exact"
    p.predict_proba(X)
    ts = []
    for _ in range(7):
        t = time.perf_counter(); p.predict_proba(X); ts.append(time.perf_counter() - t)
    res[f"batch_{threads}"] = statistics.median(ts) / len(X) / T * 1e9
p = BrewPredictor(brew, threads=1)
L = X[:400].tolist()
for i in range(0, 400, 40):
    assert p.predict_proba(X[i : i + 1])[:, 1].tolist() == want[i : i + 1].tolist(), "single row not bit-exact"
    assert p.predict_proba([L[i]])[0][1] == want[i], "single row (lists) not bit-exact"
lat, lat_l = [], []
for i in range(400):
    r = X[i : i + 1]
    t = time.perf_counter(); p.predict_proba(r); lat.append(time.perf_counter() - t)
    t = time.perf_counter(); p.predict_proba([L[i]]); lat_l.append(time.perf_counter() - t)
res["single_np_us"] = statistics.median(lat) * 1e6
res["single_list_us"] = statistics.median(lat_l) * 1e6
print("RESULT " + json.dumps(res))
"""


def run(tree: Path, name: str, info: dict, rows: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "COLDBREW_THREADS": ""}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(tree), str(info["brew"]), str(info["lib"]), str(rows), name],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    return json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, required=True, help="the old checkout (kernel built in place)")
    ap.add_argument("--before-label", default="before")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "bench"))
    import numpy as np

    peer_models = importlib.import_module("peer_models")  # the sibling script that trains and caches the models

    models = peer_models.train()
    _, _, holes, _ = peer_models.data()
    rows = Path(peer_models.folder()) / "walks-rows.npy"
    np.save(rows, holes)
    trees = {args.before_label: args.before, "after": ROOT}
    samples: dict = {name: {label: [] for label in trees} for name in MODELS}
    load = os.getloadavg()[0]
    for rnd in range(args.rounds):
        for name in MODELS:
            for label, tree in trees.items():
                samples[name][label].append(run(tree, name, models[name], rows))
                print(f"[{time.strftime('%H:%M:%S')}] round {rnd + 1} {name} {label}: {samples[name][label][-1]}")
    results = {
        name: {label: {k: statistics.median(s[k] for s in runs) for k in runs[0]} for label, runs in by.items()}
        for name, by in samples.items()
    }
    (RESULTS / "walks.json").write_text(json.dumps(results, indent=1) + "\n")
    lines = [
        "# The C kernel's walks, before and after: one run of `python bench/walks.py`",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.machine()}, {os.cpu_count()} cores shared "
        f"with other jobs (load average at start {load:.1f}); Python {platform.python_version()}. "
        f"`{args.before_label}`: {args.before_label} checkout; `after`: this checkout. Medians of {args.rounds} "
        "fresh processes per figure, checkouts interleaved; every answer checked bit-exact against the library "
        "first. Batch: 10,000 census rows with 5% NaN, `predict_proba`, median of 7 calls. Single row: p50 over "
        "400 calls, a different row each call.",
        "",
        "| model | checkout | batch ns/tree·row, 1 thread | 2 threads | speed-up | single row p50, numpy | lists |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, by in results.items():
        for label, r in by.items():
            lines.append(
                f"| {MODELS[name]} | {label} | {r['batch_1']:.1f} | {r['batch_2']:.1f} | "
                f"{r['batch_1'] / r['batch_2']:.2f}x | {r['single_np_us']:.1f} µs | {r['single_list_us']:.1f} µs |"
            )
    (RESULTS / "walks.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
