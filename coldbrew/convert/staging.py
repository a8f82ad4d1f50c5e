"""Checking a .brew file with an input stage against the library on raw rows (strings, unseen and missing
categories), and writing one: shared by the Pipeline converter and the by-name converters."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from coldbrew.convert import trees as tb
from coldbrew.errors import ModelFormatError


def mark_nullable(stage: dict, *, model_refuses_nan: bool = False) -> dict:
    """Each column's ``nullable``: false where some feature reads it through a vocab that refuses a missing value
    (``missing: "error"``) with no impute before it; a missing number reaches the model, which routes it (or, when
    ``model_refuses_nan``, refuses it: scikit-learn's GradientBoosting, so the column is not nullable either)."""
    for j, col in enumerate(stage["columns"]):
        col["nullable"] = True
        for f in stage["features"]:
            if f["column"] == j and not _missing_answered(f["ops"], model_refuses_nan):
                col["nullable"] = False
    return stage


def _missing_answered(ops: list, model_refuses_nan: bool) -> bool:
    """True if a missing value run through ``ops`` gets an answer: not refused by a vocab, and (when the model
    refuses NaN) turned into a number on the way (impute, a vocab's number, onehot, table)."""
    for op in ops:
        kind = op["kind"]
        if kind == "impute":
            return True
        if kind == "vocab":
            if op["missing"] == "error":
                return False
            if op["missing"] is not None:  # a number: no longer missing
                return True
        elif kind in ("onehot", "table"):  # NaN gives 0.0 / the default
            return True
    return not model_refuses_nan


def _inverse(ops: list, t: float) -> float | None:
    """The raw number an arithmetic op chain maps (about) to ``t``; None if the chain is not all arithmetic."""
    x = t
    for op in reversed(ops):
        kind, v = op["kind"], float(op["value"]) if op["kind"] in ("sub", "add", "mul", "div") else 0.0
        if kind == "sub":
            x += v
        elif kind == "add":
            x -= v
        elif kind == "mul":
            x /= v
        elif kind == "div":
            x *= v
        elif kind != "impute":
            return None
    return x if np.isfinite(x) else None


def threshold_values(stage: dict, arrays: dict | None) -> dict[int, list[float]]:
    """Column -> raw numbers at (and next to) the model's numeric thresholds on the features read from it through
    arithmetic only (scalers, imputers), mapped back through the ops; the float64 neighbours of each cover the
    rounding of the inverse."""
    if arrays is None or "node_flags" not in arrays:
        return {}
    nodes, flags = arrays["nodes"], arrays["node_flags"]
    numeric = (nodes["feature"] >= 0) & ((flags & 0x08) == 0)
    out: dict[int, list[float]] = {}
    for j, f in enumerate(stage["features"]):
        ts = np.unique(nodes["value"][numeric & (nodes["feature"] == j)])[:64]
        for t in ts.tolist():
            x = _inverse(f["ops"], float(t))
            if x is None:
                break
            near = [x, *np.nextafter(x, [-np.inf, np.inf]).tolist()]
            near += [np.nextafter(near[1], -np.inf).item(), np.nextafter(near[2], np.inf).item()]
            out.setdefault(f["column"], []).extend(v for v in near if np.isfinite(v))
    return out


def probe_frame(stage: dict, header: dict, n: int = 240, seed: int = 0, arrays: dict | None = None):
    """Raw rows for the self-check: known, unseen and missing categories, numbers near the model's thresholds
    mapped back through the scalers, NaNs."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    near = threshold_values(stage, arrays)
    data: dict[str, list] = {}
    for ci, col in enumerate(stage["columns"]):
        ops = [op for f in stage["features"] if f["column"] == ci for op in f["ops"]]
        vocabs = [op for op in ops if op["kind"] == "vocab"]
        unseen = not any(op["unknown"] == "error" for op in vocabs)  # a category the model refuses is not sent
        missing = not any(op["missing"] == "error" for op in vocabs) or any(op["kind"] == "impute" for op in ops)
        known = [v for op in vocabs for v in op["values"]]
        known += [op["value"] for op in ops if op["kind"] == "impute"]
        if col["type"] == "any":
            values: list = [str(v) for v in rng.choice(["p", "q"], n)]
        elif col["type"] == "string":
            pool = known + (["__unseen__", "", "UNSEEN"] if unseen or not known else [])
            values = [str(rng.choice(pool)) for _ in range(n)]
        else:
            pool = [float(v) for v in known] or [0.0]
            if unseen:
                pool += [0.0, 1.0, -1.0, 0.5]
            pool += [float(op["value"]) for op in ops if op["kind"] in ("sub", "add")]
            scale = max([abs(v) for v in pool] + [1.0])
            edges = near.get(ci, [])
            values = [
                float(rng.choice(edges))
                if edges and r < 0.4
                else float(rng.choice(pool))
                if r < 0.7 or not unseen
                else float(rng.normal() * scale)
                for r in rng.random(n)
            ]
        if missing:
            values = [None if r < 0.08 else v for v, r in zip(values, rng.random(n), strict=True)]
        data[col["name"]] = values
    frame = {}
    for col in stage["columns"]:
        v = data[col["name"]]
        if col["type"] == "number":
            frame[col["name"]] = np.array([np.nan if x is None else x for x in v], dtype=np.float64)
        else:
            # a null is pandas's missing value, NaN (what pd.DataFrame makes of None in a string column)
            frame[col["name"]] = pd.Series([np.nan if x is None else x for x in v], dtype=object)
    rows = [[data[c["name"]][i] for c in stage["columns"]] for i in range(n)]
    return pd.DataFrame(frame), rows


def check_stage(path: Path, label: Path, reference, frame, rows, *, classifier: bool) -> None:
    """The compiled file against the library on the raw rows: every kernel, lists in and the DataFrame in."""
    from coldbrew.engine.brew import KERNELS, BrewPredictor

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            proba_ref, pred_ref = reference(frame)
    except Exception as exc:  # noqa: BLE001 - any library error means "cannot verify"
        raise ModelFormatError(f"{label}: the library itself failed to predict on the check rows: {exc}") from None
    pred_ref = np.asarray(pred_ref)
    for kernel in KERNELS:
        p = BrewPredictor(path, verify=True, kernel=kernel)
        for X in (frame, rows):
            got = p.predict(X)
            got = np.asarray(got, dtype=pred_ref.dtype) if isinstance(got, list) else got
            ok = got.dtype == pred_ref.dtype and np.array_equal(got, pred_ref, equal_nan=pred_ref.dtype.kind == "f")
            if ok and classifier and proba_ref is not None:
                gp = p.predict_proba(X)
                gp = np.asarray(gp, dtype=proba_ref.dtype) if isinstance(gp, list) else gp
                ok = gp.dtype == proba_ref.dtype and np.array_equal(gp, proba_ref)
            if not ok:
                where = "lists" if X is rows else "a DataFrame"
                raise ModelFormatError(
                    f"{label}: compiled predictions differ from the library's ({kernel} kernel, {where} in); "
                    "nothing written"
                )


def finish_by_name(est, dst, header: dict, arrays: dict, started: float, *, what: str, reference: str, frame_of=None):
    """Write a bare model with categories by name, checked against ``est`` on a DataFrame of raw rows (string
    categories: known, unseen and missing); ``frame_of`` adapts the frame to what the library expects."""
    from coldbrew import __version__

    header.setdefault("created_by", f"coldbrew {__version__}")
    classifier = header["classes"] is not None
    frame, rows = probe_frame(header["inputs"], header, arrays=arrays)
    if frame_of is not None:
        frame = frame_of(frame)

    def ref(X):
        X = X if frame_of is None or X is frame else frame_of(X)
        return (est.predict_proba(X) if classifier else None), est.predict(X)

    size = tb.write_staged(
        dst, header, arrays, lambda p: check_stage(p, Path(dst), ref, frame, rows, classifier=classifier)
    )
    return tb.compile_stats(
        Path(dst), header, what=what, size=size, started=started, checked=len(rows), reference=reference
    )
