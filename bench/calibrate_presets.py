"""Find the n_estimators at which the study's recipe reaches each preset's pickle size.

One boosting run (max_depth fixed) serves all sizes: boosting stages are deterministic for a fixed
random_state, so the first k stages of a long run are exactly a k-stage model. At each size crossing the
script pickles the k-stage model into the model cache (so `coldbrew bench` needn't retrain it) and
records stage, nodes, pickle size and elapsed time in bench/results/presets.md.

    python bench/calibrate_presets.py [--max-depth none] [--targets 140,420,1090]
"""

from __future__ import annotations

import argparse
import copy
import pickle
import platform
import time
from pathlib import Path

import sklearn
from sklearn.ensemble import GradientBoostingClassifier

from coldbrew.atomicfile import atomic_write
from coldbrew.experiment.dataset import study_split
from coldbrew.experiment.modelcache import cache_path
from coldbrew.experiment.train import Recipe, count_nodes

BYTES_PER_NODE = 72  # measured: sklearn 1.9 pickles a regression-tree node in 72 bytes


def truncated(model, stages: int):
    """A copy of a (partly) fitted GBM keeping only its first ``stages`` stages."""
    clone = copy.copy(model)
    clone.estimators_ = model.estimators_[:stages].copy()
    clone.train_score_ = model.train_score_[:stages].copy()
    clone.n_estimators = clone.n_estimators_ = stages
    return clone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-depth", default="none")
    parser.add_argument("--targets", default="140,420,1090", help="pickle sizes in MB (10^6 bytes)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "presets.md")
    args = parser.parse_args()
    depth = None if args.max_depth == "none" else int(args.max_depth)
    targets = sorted(int(t) for t in args.targets.split(","))
    X_train, X_test, y_train, y_test = study_split()
    model = GradientBoostingClassifier(learning_rate=1.0, random_state=0, n_estimators=100_000, max_depth=depth)
    rows, started, nodes = [], time.perf_counter(), 0

    def monitor(i, est, _locals):
        nonlocal nodes
        nodes += est.estimators_[i, 0].tree_.node_count
        want = targets[len(rows)]
        if nodes * BYTES_PER_NODE < want * 1e6:
            if i % 100 == 0:
                print(
                    f"stage {i:6d}  nodes {nodes:>11,}  ~{nodes * BYTES_PER_NODE / 1e6:7.1f} MB  "
                    f"{time.perf_counter() - started:7.1f} s",
                    flush=True,
                )
            return False
        snap = truncated(est, i + 1)
        recipe = Recipe(n_estimators=i + 1, max_depth=depth)
        path = cache_path(recipe, "pickle")
        with atomic_write(path) as fh:
            pickle.dump(snap, fh, protocol=pickle.HIGHEST_PROTOCOL)
        size = path.stat().st_size
        acc = snap.score(X_test, y_test)
        rows.append((want, i + 1, count_nodes(snap), size, time.perf_counter() - started, acc))
        print(f"== {want} MB target: n_estimators={i + 1} -> {size / 1e6:.1f} MB, saved {path}", flush=True)
        return len(rows) == len(targets)

    model.fit(X_train, y_train, monitor=monitor)
    lines = [
        "# Preset calibration",
        "",
        f"`python bench/calibrate_presets.py --max-depth {args.max_depth}` — scikit-learn {sklearn.__version__}, "
        f"Python {platform.python_version()}, {platform.machine()}, pickle protocol {pickle.HIGHEST_PROTOCOL}.",
        "",
        "| target | n_estimators | max_depth | nodes | pickle size | off target | cumulative fit time | test accuracy |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for want, n, nd, size, secs, acc in rows:
        lines.append(
            f"| {want} MB | {n:,} | {args.max_depth} | {nd:,} | {size / 1e6:,.1f} MB | "
            f"{(size / (want * 1e6) - 1) * 100:+.1f} % | {secs:,.0f} s | {acc:.4f} |"
        )
    args.out.write_text("\n".join(lines) + "\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
