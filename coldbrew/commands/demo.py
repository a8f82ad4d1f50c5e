"""`coldbrew demo`: train the tiny model, serve it as pickle and .brew, print the answers and timings side by side
(the table is ``coldbrew.experiment.demo``)."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

from coldbrew.experiment.demo import format_table


def add_arguments(parser) -> None:
    parser.add_argument("--pickle-only", action="store_true", help="serve only the pickle, not the .brew version")


def _ensure_models(pickle_only: bool) -> dict[str, Path]:
    """The tiny model as pickle (and .brew), trained/compiled into the cache only when missing or stale."""
    from coldbrew.experiment.modelcache import cache_path
    from coldbrew.experiment.train import PRESETS, train

    recipe = PRESETS["tiny"]
    models = {"pickle": cache_path(recipe, "pickle")}
    if not models["pickle"].exists():
        print(f"training the tiny model (n_estimators={recipe.n_estimators}, max_depth={recipe.max_depth}) ...")
        result = train(recipe, models["pickle"], progress=False)
        print(f"  test accuracy {result.accuracy:.4f}, {result.seconds:.1f} s")
    if not pickle_only and importlib.util.find_spec("coldbrew.convert.sklearn") is not None:
        from coldbrew.experiment.train import brew_is_labelled, compile_study_model

        brew = cache_path(recipe, "brew")
        stale = not brew.exists() or brew.stat().st_mtime < models["pickle"].stat().st_mtime
        if stale or not brew_is_labelled(brew):
            print("compiling it to .brew ...")
            compile_study_model(models["pickle"], brew, progress=False)
        models["brew"] = brew
    return models


def _serve_and_ask(path: Path) -> dict:
    """Serve ``path`` in a fresh process, POST the study payload, stop; returns what a client saw."""
    from coldbrew.experiment.dataset import STUDY_PAYLOAD
    from coldbrew.runtimes.local import ServerProcess

    # The pickle is the demo's own freshly trained model: opting in to unpickling it is safe.
    with ServerProcess(str(path), env={"COLDBREW_ALLOW_PICKLE": "1"}) as server:
        status, body = server.request("POST", "/predict", STUDY_PAYLOAD)
        first_200_ms = (time.perf_counter() - server.spawned_at) * 1000.0
        health = server.request("GET", "/")[0]
        startup = server.startup
    if status != 200 or health != 200:
        raise RuntimeError(f"serving {path} answered {status} {body}")
    return {"response": body, "startup": startup, "first_200_ms": first_200_ms, "size": path.stat().st_size}


def run(args) -> int:
    from coldbrew.experiment.dataset import STUDY_PAYLOAD

    models = _ensure_models(args.pickle_only)
    print(f"\nPOST /predict {json.dumps(STUDY_PAYLOAD)}\n")
    results = {}
    for fmt, path in models.items():
        print(f"serving {path} ...", flush=True)
        results[fmt] = _serve_and_ask(path)
    print()
    width = max(len(fmt) for fmt in results)
    for fmt, result in results.items():
        print(f"{fmt.ljust(width)}  → {json.dumps(result['response'])}")
    if len(results) > 1:
        same = len({json.dumps(r["response"]) for r in results.values()}) == 1
        print(f"identical responses: {'yes' if same else 'NO'}")
    print("\nstart-up (each in a fresh process):\n")
    print(format_table(results))
    return 0
