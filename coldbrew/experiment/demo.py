"""`coldbrew demo`: train the tiny model, serve it, send the study's payload, show the start-up timings.

The model is trained once into the model cache (``coldbrew.experiment.modelcache``) and, when the compiler is
available, compiled to .brew beside it. Each format is then served by a fresh ``coldbrew serve`` process on a
free loopback port, sent the study's payload, and stopped — the two side by side are the product's point.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

ROWS = [
    ("imports", "imports"),
    ("fetch", "model fetch"),
    ("load", "model load"),
    ("warmup", "warm-up"),
]


def _ms(value) -> str:
    return "—" if value is None else f"{value:,.1f} ms"


def _size(n: int) -> str:
    return f"{n / 1e3:,.1f} kB" if n < 1e6 else f"{n / 1e6:,.1f} MB"


def format_table(results: dict[str, dict]) -> str:
    """Start-up timings per format as an aligned text table."""
    names = list(results)
    rows = [["", *names]]
    for key, label in ROWS:
        rows.append([label, *(_ms(results[n]["startup"]["timings_ms"][key]) for n in names)])
    rows.append(["start-up total (logged)", *(_ms(results[n]["startup"]["total_ms"]) for n in names)])
    rows.append(["spawn → first 200", *(_ms(results[n]["first_200_ms"]) for n in names)])
    rows.append(["model file", *(_size(results[n]["size"]) for n in names)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=False)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def ensure_models(pickle_only: bool) -> dict[str, Path]:
    """The tiny model as pickle (and .brew), trained/compiled into the cache only when missing or stale."""
    from coldbrew.experiment.modelcache import cache_path
    from coldbrew.experiment.train import PRESETS, train

    recipe = PRESETS["tiny"]
    models = {"pickle": cache_path(recipe, "pickle")}
    from coldbrew.experiment.train import pickle_is_labelled

    if models["pickle"].exists() and not pickle_is_labelled(models["pickle"]):
        models["pickle"].unlink()  # trained before the study's display labels: it would answer "True"/"False"
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


def serve_and_ask(path: Path) -> dict:
    """Serve ``path`` in a fresh process, POST the study payload, stop; returns what a client saw."""
    from coldbrew.experiment.dataset import STUDY_PAYLOAD
    from coldbrew.runtimes.server_process import ServerProcess

    # The pickle is the demo's own freshly trained model: opting in to unpickling it is safe.
    with ServerProcess(str(path), env={"COLDBREW_ALLOW_PICKLE": "1"}) as server:
        status, body = server.request("POST", "/predict", STUDY_PAYLOAD)
        first_200_ms = (time.perf_counter() - server.spawned_at) * 1000.0
        health = server.request("GET", "/")[0]
        startup = server.startup
    if status != 200 or health != 200:
        raise RuntimeError(f"serving {path} answered {status} {body}")
    return {"response": body, "startup": startup, "first_200_ms": first_200_ms, "size": path.stat().st_size}
