"""Shared by the format-version-2 converters (HistGradientBoosting, XGBoost, LightGBM): trees → .brew arrays.

Each converter describes its trees in the library's own node numbering (``Tree``); ``build`` lays them out in
pre-order (left child next), packs the per-node flags and categorical bitsets (docs/format.md section 10) and
returns the header counts and arrays. ``check_compiled`` re-reads the written file and compares it, bit for bit
and on both kernels, with the library's own predictions.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from coldbrew.errors import ColdbrewError, ModelFormatError
from coldbrew.format import NODE_DTYPE, spec


class UnsupportedModelError(ColdbrewError):
    """The input holds a model (type, objective, option or version) that .brew cannot represent exactly."""


@dataclass
class Tree:
    """One tree in the library's numbering: ``left[i] == -1`` marks a leaf; ``value`` is the threshold of a
    numeric split or the leaf value; ``cats`` maps a categorical split node to its "go left" bitset (uint32
    words, bit ``c % 32`` of word ``c // 32`` set when category ``c`` goes left)."""

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    value: np.ndarray
    flags: np.ndarray
    cats: dict[int, np.ndarray] = field(default_factory=dict)
    #: XGBoost vector leaves (rows of leaf values; a leaf's ``right`` is its row), split by the converter
    vector: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: LightGBM linear leaves: leaf node -> (constant, feature indices, coefficients); ``value`` stays the leaf's
    #: fallback output (docs/format.md section 13)
    linear: dict[int, tuple[float, np.ndarray, np.ndarray]] | None = None


def summed_scalar_leaves(dtype: str, compare: str, zero_threshold: float = 0) -> dict:
    """Header fields saying how a version 2 model is evaluated, which every converter writes.

    Scalar leaves (already scaled by the learning rate) summed per output group in ``dtype``; the inputs cast to
    ``dtype``, |x| <= ``zero_threshold`` read as 0, and a split sends x left on ``x < t`` (``compare="lt"``) or
    ``x <= t`` (``"le"``).
    """
    return {
        "leaf": "scalar",
        "combine": "sum",
        "leaf_values_scaled": True,
        "input_dtype": dtype,
        "split_compare": compare,
        "accumulate": dtype,
        "input_zero_threshold": zero_threshold,
    }


def flags(
    *,
    default_left: bool,
    missing: int = spec.MISSING_NAN,
    categorical: bool = False,
    cat_mode: int = 0,
    outside_left: bool = False,
) -> int:
    """One node_flags byte (docs/format.md section 10.2)."""
    value = (spec.FLAG_DEFAULT_LEFT if default_left else 0) | (missing << spec.MISSING_SHIFT)
    if categorical:
        value |= spec.FLAG_CATEGORICAL | (cat_mode << spec.CAT_SHIFT) | (spec.FLAG_OUTSIDE_LEFT if outside_left else 0)
    return value


def build(trees: list[Tree], groups: list[int]) -> tuple[dict, dict[str, np.ndarray]]:
    """Header counts and arrays (nodes, node_flags, tree_offsets, tree_groups, cat_offsets/cat_words if any)."""
    records, flag_parts, sizes = [], [], []
    bitsets: list[np.ndarray] = []
    linear = any(t.linear is not None for t in trees)
    lin_const: list[np.ndarray] = []
    lin_counts: list[np.ndarray] = []
    lin_features: list[np.ndarray] = []
    lin_coeffs: list[np.ndarray] = []
    n_leaves = max_depth = 0
    for tree in trees:
        order, depth = _preorder(tree.left, tree.right)
        position = np.empty(len(tree.left), dtype=np.int64)
        position[order] = np.arange(len(order))
        left, right = tree.left[order], tree.right[order]
        split = left != -1
        rec = np.zeros(len(order), dtype=NODE_DTYPE)
        rec["feature"] = np.where(split, tree.feature[order], -1)
        rec["value"] = np.where(split, tree.value[order], tree.value[order])
        rec["right"] = np.where(split, position[np.where(split, right, 0)], 0)
        fl = np.where(split, tree.flags[order], 0).astype(np.uint8)
        for node, words in tree.cats.items():
            p = position[node]
            rec["value"][p] = float(len(bitsets))
            bitsets.append(np.asarray(words, dtype=np.uint32))
        if linear:  # per node of this tree in its new order: constant, coefficient count, features, coefficients
            const = np.zeros(len(order), dtype=np.float64)
            count = np.zeros(len(order), dtype=np.int64)
            for p, node in enumerate(order):
                entry = (tree.linear or {}).get(int(node))
                if entry is not None and not split[p]:
                    const[p] = entry[0]
                    count[p] = len(entry[1])
                    lin_features.append(np.asarray(entry[1], dtype=np.int32))
                    lin_coeffs.append(np.asarray(entry[2], dtype=np.float64))
            lin_const.append(const)
            lin_counts.append(count)
        records.append(rec)
        flag_parts.append(fl)
        sizes.append(len(order))
        n_leaves += int((~split).sum())
        max_depth = max(max_depth, depth)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    arrays = {
        "nodes": np.concatenate(records),
        "node_flags": np.concatenate(flag_parts),
        "tree_offsets": offsets,
        "tree_groups": np.asarray(groups, dtype=np.int32),
    }
    counts = {
        "n_trees": len(trees),
        "n_nodes": int(offsets[-1]),
        "n_leaves": n_leaves,
        "max_depth": max_depth,
        "n_cat_bitsets": len(bitsets),
        "n_cat_words": int(sum(len(b) for b in bitsets)),
    }
    if linear:
        counts_all = np.concatenate(lin_counts)
        arrays["linear_offsets"] = np.concatenate([[0], np.cumsum(counts_all)]).astype(np.int64)
        arrays["linear_features"] = np.concatenate(lin_features or [np.zeros(0)]).astype(np.int32)
        arrays["linear_coeffs"] = np.concatenate(lin_coeffs or [np.zeros(0)]).astype(np.float64)
        arrays["linear_const"] = np.concatenate(lin_const)
        counts["n_linear_coeffs"] = int(counts_all.sum())
    if bitsets:
        arrays["cat_offsets"] = np.concatenate([[0], np.cumsum([len(b) for b in bitsets])]).astype(np.int64)
        arrays["cat_words"] = np.concatenate(bitsets).astype(np.uint32)
    return counts, arrays


def _preorder(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, int]:
    """Node ids in pre-order (left subtree first) from root 0, and the tree's depth."""
    order: list[int] = []
    stack, depth = [(0, 0)], 0
    n = len(left)
    while stack:
        i, d = stack.pop()
        if not 0 <= i < n or len(order) > n:
            raise UnsupportedModelError(f"tree structure is corrupt (node {i} out of range or a cycle)")
        order.append(i)
        depth = max(depth, d)
        if left[i] != -1:
            stack.append((int(right[i]), d + 1))
            stack.append((int(left[i]), d + 1))
    if len(order) != n:
        raise UnsupportedModelError(f"tree structure is corrupt ({n - len(order)} nodes unreachable from the root)")
    return np.asarray(order, dtype=np.int64), depth


def bitset_words(categories, n_bits: int | None = None) -> np.ndarray:
    """uint32 words with bit ``c`` set for every category ``c`` (non-negative ints)."""
    cats = [int(c) for c in categories]
    size = max([n_bits or 0] + [c + 1 for c in cats] + [1])
    words = np.zeros((size + 31) // 32, dtype=np.uint32)
    for c in cats:
        words[c // 32] |= np.uint32(1) << np.uint32(c % 32)
    return words


def probe_rows(
    thresholds: dict[int, list[float]],
    n_features: int,
    n: int = 96,
    seed: int = 0,
    dtype=np.float64,
    categorical: dict[int, int] | None = None,
) -> np.ndarray:
    """Rows sitting on, just below and just above the model's thresholds, with NaNs, zeros and categories."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features)) * 10
    for f, values in thresholds.items():
        v = np.asarray(values, dtype=dtype)
        near = np.concatenate([v, np.nextafter(v, dtype(-np.inf)), np.nextafter(v, dtype(np.inf))])
        near = near[np.isfinite(near)]
        if not len(near):
            continue
        X[:, f] = rng.choice(near.astype(np.float64), size=n)
    for f, n_cats in (categorical or {}).items():
        X[:, f] = rng.integers(-1, n_cats + 2, size=n) + rng.choice([0.0, 0.0, 0.5], size=n)
    X[rng.random(X.shape) < 0.08] = np.nan
    X[rng.random(X.shape) < 0.03] = 0.0
    return X


def check_compiled(dst: Path, reference, X: np.ndarray, *, classifier: bool, label: Path | None = None) -> None:
    """Re-read ``dst`` (checksum) and compare with ``reference(X)`` -> (proba or None, predict) on every kernel.

    ``label``: the path errors name (the file being checked may be a temporary one; default ``dst``)."""
    from coldbrew.engine.brew import KERNELS, BrewPredictor

    shown = dst if label is None else label

    try:
        proba_ref, pred_ref = reference(X)
    except Exception as exc:  # noqa: BLE001 - the library's own error types vary; any means "cannot verify"
        raise ModelFormatError(
            f"{shown}: the library itself failed to predict with this model: {_one_line(exc)}"
        ) from None
    raw = None
    from coldbrew.format import BrewFile

    inputs = BrewFile(dst).header.get("inputs")
    if inputs is not None and X.dtype == object:  # rows of raw values already (CatBoost): also sent as lists
        raw = [[None if isinstance(v, float) and v != v else v for v in row] for row in X.tolist()]
    elif inputs is not None:  # categories by name: the library answers on codes, coldbrew on the names
        from coldbrew.convert.names import by_name_rows

        X, raw = by_name_rows(inputs, X)
        proba_ref, pred_ref = reference(X)
    for kernel in KERNELS:
        predictor = BrewPredictor(dst, verify=True, kernel=kernel)
        for given in (X,) if raw is None else (np.array(raw, dtype=object), raw):
            got = predictor.predict(given)
            got = np.asarray(got, dtype=pred_ref.dtype) if isinstance(got, list) else got
            floats = pred_ref.dtype.kind == "f"  # NaN == NaN only where there can be one (labels may be strings)
            ok = got.dtype == pred_ref.dtype and np.array_equal(got, pred_ref, equal_nan=floats)
            if ok and classifier and proba_ref is not None:
                got_p = predictor.predict_proba(given)
                got_p = np.asarray(got_p, dtype=proba_ref.dtype) if isinstance(got_p, list) else got_p
                ok = got_p.dtype == proba_ref.dtype and np.array_equal(got_p, proba_ref)
            if not ok:
                raise ModelFormatError(
                    f"{shown}: compiled predictions differ from the library's ({kernel} kernel); nothing written"
                )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def library_in_subprocess(library: str, code: str, path: Path, X: np.ndarray) -> dict[str, np.ndarray]:
    """Run ``code`` (which reads ``path`` and ``rows``, and saves arrays to ``out`` with ``np.savez``) in a fresh
    interpreter and return the arrays. A model *file* goes to the library in a child process because the
    libraries can crash the process on a damaged file (seen: xgboost and lightgbm segfaults on edited files); a
    crash or error there is a one-line ModelFormatError instead."""
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="coldbrew-check-") as tmp:
        rows, out = Path(tmp) / "rows.npy", Path(tmp) / "out.npz"
        np.save(rows, X)
        proc = subprocess.run(
            [sys.executable, "-c", code, str(path), str(rows), str(out)], capture_output=True, text=True, check=False
        )
        if proc.returncode:
            lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
            why = lines[-1] if proc.returncode > 0 and lines else f"the process died (exit status {proc.returncode})"
            raise ModelFormatError(f"{path}: {library} itself cannot load or predict with this file: {why[:300]}")
        with np.load(out, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}


def finish(dst: str | os.PathLike, header: dict, arrays: dict, reference, X, *, classifier: bool) -> int:
    """Write, then verify against the library; nothing is left at ``dst`` if anything fails. Returns bytes written."""

    def check(path: Path) -> None:
        if reference is not None:
            check_compiled(path, reference, X, classifier=classifier, label=Path(dst))

    return write_staged(dst, header, arrays, check)


def write_staged(dst: str | os.PathLike, header: dict, arrays: dict, check: Callable[[Path], None]) -> int:
    """Write the file beside ``dst`` under a temporary name, run ``check`` on it, then rename it to ``dst``.

    On any failure (a refusal, a mismatch, an interrupt) the temporary file and any folder made for it are removed
    and ``dst`` is untouched: an earlier file there survives, and nothing new is left. Returns bytes written.
    """
    import secrets

    from coldbrew.format import write_brew

    dst = Path(dst)
    made = [d for d in reversed(dst.parent.absolute().parents) if not d.exists()]
    if not dst.parent.exists():
        made.append(dst.parent.absolute())
    tmp = dst.with_name(f".{dst.name}.{secrets.token_hex(4)}.compiling")
    try:
        size = write_brew(tmp, header, arrays)
        check(tmp)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        for d in reversed(made):
            try:
                d.rmdir()
            except OSError:
                break
        raise
    return size


def compile_stats(
    dst: Path, header: dict, *, what: str, size: int, started: float, checked: int, reference: str | None
) -> dict:
    """The statistics every converter returns (and ``coldbrew compile`` prints)."""
    import time

    return {
        "src": None,
        "dst": str(dst),
        "estimator": what,
        "kind": header["kind"],
        # the library's own tree count (a forest classifier's trees are stored once per class, section 11)
        "n_trees": (header.get("source") or {}).get("n_estimators", header["n_trees"]),
        "n_nodes": header["n_nodes"],
        "max_depth": header["max_depth"],
        "input_bytes": None,
        "output_bytes": size,
        "seconds": time.perf_counter() - started,
        "checked_rows": checked,
        "reference": reference,
    }


def write_checked(
    header: dict,
    arrays: dict,
    dst: str | os.PathLike,
    reference,
    class_labels,
    started: float,
    *,
    what: str,
    library: str,
    probe: Callable[[dict, dict], np.ndarray],
) -> dict:
    """Label, stamp, write and check a converted model against ``library`` (when ``reference`` is given).

    ``reference(X) -> (proba or None, predict)`` is the library's own answer on the probe rows
    ``X = probe(header, arrays)``; the file is removed if it differs. Returns the converter statistics
    (:func:`compile_stats`). Each library's converter binds ``library`` and ``probe`` once (``functools.partial``).
    """
    from coldbrew import __version__

    X = probe(header, arrays)
    set_class_labels(header, class_labels)
    header["created_by"] = f"coldbrew {__version__}"
    dst = Path(dst)
    size = finish(dst, header, arrays, reference, X, classifier=header["classes"] is not None)
    return compile_stats(
        dst,
        header,
        what=what,
        size=size,
        started=started,
        checked=len(X) if reference is not None else 0,
        reference=library if reference is not None else None,
    )


def probe_rows_from_arrays(header: dict, arrays: dict, n: int = 128, dtype=np.float64) -> np.ndarray:
    """Probe rows (:func:`probe_rows`) from a version 2 model's own numeric thresholds and categorical features."""
    nodes, fl = arrays["nodes"], arrays["node_flags"]
    split = (nodes["feature"] >= 0) & ((fl & spec.FLAG_CATEGORICAL) == 0)
    thresholds: dict[int, list[float]] = {}
    for f, v in zip(nodes["feature"][split][:20000], nodes["value"][split][:20000], strict=True):
        thresholds.setdefault(int(f), []).append(float(v))
    cat_features = {}
    if header.get("feature_categorical"):
        cat_features = {i: 40 for i, c in enumerate(header["feature_categorical"]) if c}
    X = probe_rows(thresholds, header["n_features"], n=n, dtype=dtype, categorical=cat_features)
    if "n_linear_coeffs" in header:  # near a huge threshold (LightGBM writes DBL_MAX) linear leaves overflow
        X = np.clip(X, -1e6, 1e6)
    return X


#: Feature names given by the user (``coldbrew compile --feature-names``) for the compile under way; set by
#: :func:`coldbrew.convert.feature_names_given`, applied by :func:`set_class_labels` at every converter's write.
FEATURE_NAMES: ContextVar[list[str] | None] = ContextVar("coldbrew_feature_names", default=None)


def set_feature_names(header: dict, names: list[str] | None) -> None:
    """Name the model's features ``names`` (one distinct non-empty string each). A model that already names its
    features keeps them: different names given are refused, equal ones accepted."""
    if names is None:
        return
    names = [str(n) for n in names]
    n = header["n_features"]
    if len(names) != n:
        raise UnsupportedModelError(f"--feature-names has {len(names)} names, the model has {n} features")
    if len(set(names)) != len(names) or not all(names):
        raise UnsupportedModelError("--feature-names must be distinct, non-empty names")
    have = header.get("feature_names")
    if have is not None and list(have) != names:
        raise UnsupportedModelError(
            f"--feature-names {','.join(names)[:200]} differ from the names the model was trained with "
            f"({','.join(map(str, have))[:200]})"
        )
    header["feature_names"] = names


def set_class_labels(header: dict, class_labels: list[str] | None) -> None:
    """Store ``class_labels`` (display strings aligned with ``classes``) in ``header``; null when not given.

    Also applies the feature names of :data:`FEATURE_NAMES` (every converter calls this just before writing)."""
    set_feature_names(header, FEATURE_NAMES.get())
    if class_labels is None:
        header.setdefault("class_labels", None)
        return
    classes = header.get("classes")
    if classes is None:
        raise UnsupportedModelError("--class-labels given, but the model is a regressor (it has no classes)")
    if len(class_labels) != len(classes):
        raise UnsupportedModelError(
            f"--class-labels has {len(class_labels)} labels, the model has {len(classes)} classes "
            f"({', '.join(map(str, classes))})"
        )
    labels = [str(v) for v in class_labels]
    if len(set(labels)) != len(labels) or not all(labels):
        raise UnsupportedModelError(f"--class-labels must be distinct, non-empty strings, got {labels}")
    header["class_labels"] = labels
