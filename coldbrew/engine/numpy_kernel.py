"""The numpy fallback kernel: same results, bit for bit, as the C kernel in _kernel.c.

Level-synchronous: every (row, tree) pair advances one level per step, so the Python work is proportional
to the depth, not to the number of trees. Used when the C extension is not built.
"""

from __future__ import annotations

import math

import numpy as np

_CHUNK_CELLS = 1 << 21  # rows x trees (x outputs) handled per step, bounds the temporary arrays


def predict_raw(nodes, tree_offsets, leaf_values, X, out, n_features: int, n_outputs: int, vector: bool) -> None:
    """Add every tree's leaf value to ``out`` in tree order (see ``_kernel.predict_raw``)."""
    n_trees = len(tree_offsets) - 1
    chunk = max(1, _CHUNK_CELLS // (n_trees * (n_outputs if vector else 1)))
    for start in range(0, X.shape[0], chunk):
        stop = min(start + chunk, X.shape[0])
        _predict_chunk(nodes, tree_offsets, leaf_values, X[start:stop], out[start:stop], n_features, n_outputs, vector)


def _predict_chunk(nodes, tree_offsets, leaf_values, X, out, n_features, K, vector) -> None:
    value, feature, right = nodes["value"], nodes["feature"], nodes["right"]
    roots = np.asarray(tree_offsets[:-1], dtype=np.int64)
    sizes = np.asarray(tree_offsets[1:], dtype=np.int64) - roots
    n_rows, n_trees = X.shape[0], roots.shape[0]
    rows = np.arange(n_rows)[:, None]
    at = np.zeros((n_rows, n_trees), dtype=np.int64)  # tree-relative node index
    while True:
        f = feature[roots + at]
        split = f >= 0
        if not split.any():
            break
        if np.any(f[split] >= n_features) or np.any(f[~split] != -1):
            raise ValueError(f"corrupt model: feature index out of bounds in tree {_first_bad_tree(split, f, n_features)}")
        r = right[roots + at].astype(np.int64)
        bad = split & ((r <= at + 1) | (r >= sizes))
        if bad.any():
            raise ValueError(f"corrupt model: child index out of bounds in tree {np.argwhere(bad)[0, 1]}")
        x = X[rows, np.where(split, f, 0)].astype(np.float64)
        go_left = x <= value[roots + at]  # a NaN threshold sends every row right, as in the C kernel
        at = np.where(split, np.where(go_left, at + 1, r), at)
    leaves = roots + at
    # Every reached node is a leaf now; its marker must be exactly -1, as the C kernel demands (-2 is corrupt).
    if np.any(f != -1):
        raise ValueError(f"corrupt model: feature index out of bounds in tree {_first(f != -1)}")
    if vector:
        li = right[leaves]
        bad = (li < 0) | (li >= leaf_values.shape[0])
        if bad.any():
            raise ValueError(f"corrupt model: leaf index out of bounds in tree {_first(bad)}")
        steps = leaf_values[li]  # (rows, trees, K)
        bad = ~np.isfinite(steps).all(axis=2)
    else:
        steps = value[leaves].reshape(n_rows, n_trees // K, K)
        bad = ~np.isfinite(value[leaves])
    if bad.any():
        raise ValueError(f"corrupt model: non-finite leaf value in tree {_first(bad)}")
    # Sequential accumulation in tree order: add.accumulate never reorders (np.sum's pairwise would).
    stacked = np.concatenate([out[:, None, :], steps], axis=1)
    out[...] = np.add.accumulate(stacked, axis=1)[:, -1, :]


def _first(bad: np.ndarray) -> int:
    """The tree (column) of the first True in a (rows, trees) mask."""
    return int(np.argwhere(bad)[0, 1])


def _first_bad_tree(split, f, n_features) -> int:
    bad = (split & (f >= n_features)) | (~split & (f != -1))
    return int(np.argwhere(bad)[0, 1])


def expit(x: np.ndarray) -> None:
    """In place, x -> 1 / (1 + exp(-x)), scipy's expit formula with libm's exp (as the C kernel).

    ``math.exp`` is libm's; ``np.exp`` is not always (numpy >= 2.4 uses its own SIMD exp, which can differ in
    the last bit), so the fallback pays a Python loop over one value per row to stay bit-identical. Where libm's
    exp overflows (``-x`` above ~709.78) C gets ``inf`` and 0.0; ``math.exp`` raises instead, so that is 0.0 here.
    """
    x[...] = [_expit1(v) for v in x.tolist()]


def _expit1(v: float) -> float:
    try:
        return 1.0 / (1.0 + math.exp(-v))
    except OverflowError:
        return 0.0
