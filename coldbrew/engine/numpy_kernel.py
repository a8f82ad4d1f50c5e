"""The numpy fallback kernel: same results, bit for bit, as the C kernel in _kernel.c.

Level-synchronous: every (row, tree) pair advances one level per step, so the Python work is proportional
to the depth, not to the number of trees. Used when the C extension is not built.
"""

from __future__ import annotations

import math

import numpy as np

from coldbrew.format.spec import MAX_DEPTH

_CHUNK_CELLS = 1 << 21  # rows x trees (x outputs) handled per step, bounds the temporary arrays


def predict_raw(
    nodes,
    tree_offsets,
    leaf_values,
    X,
    out,
    n_features: int,
    n_outputs: int,
    vector: bool,
    max_steps: int = -1,
    threads: int = 1,
) -> None:
    """Add every tree's leaf value to ``out`` in tree order (see ``_kernel.predict_raw``; ``threads`` is ignored)."""
    n_trees = len(tree_offsets) - 1
    chunk = max(1, _CHUNK_CELLS // (n_trees * (n_outputs if vector else 1)))
    for start in range(0, X.shape[0], chunk):
        stop = min(start + chunk, X.shape[0])
        _predict_chunk(
            nodes, tree_offsets, leaf_values, X[start:stop], out[start:stop], n_features, n_outputs, vector, max_steps
        )


class _Steps:
    """The bounds both kernels put on a walk: no walk deeper than ``MAX_DEPTH``, no row passing more than
    ``max_steps`` splits over all trees (negative: no budget). ``level(split)`` is called once per level with the
    (rows, trees) mask of the walks that pass a split at that level."""

    def __init__(self, n_rows: int, max_steps: int):
        self.depth, self.max_steps = 0, max_steps
        self.per_row = np.zeros(n_rows, dtype=np.int64)

    def level(self, split: np.ndarray) -> None:
        if self.depth >= MAX_DEPTH:
            raise ValueError(
                f"corrupt model: tree {_first(split)} is deeper than the format's limit of {MAX_DEPTH} levels"
            )
        self.depth += 1
        if self.max_steps >= 0:
            self.per_row += split.sum(axis=1)
            if np.any(self.per_row > self.max_steps):
                raise ValueError(
                    f"corrupt model: a row took more than {self.max_steps} steps, the header's n_trees x max_depth"
                )


def _predict_chunk(nodes, tree_offsets, leaf_values, X, out, n_features, K, vector, max_steps) -> None:
    value, feature, right = nodes["value"], nodes["feature"], nodes["right"]
    roots = np.asarray(tree_offsets[:-1], dtype=np.int64)
    sizes = np.asarray(tree_offsets[1:], dtype=np.int64) - roots
    n_rows, n_trees = X.shape[0], roots.shape[0]
    rows = np.arange(n_rows)[:, None]
    at = np.zeros((n_rows, n_trees), dtype=np.int64)  # tree-relative node index
    bounds = _Steps(n_rows, max_steps)
    while True:
        f = feature[roots + at]
        split = f >= 0
        if not split.any():
            break
        r = _checked_children(f, split, right[roots + at], at, sizes, n_features)
        bounds.level(split)
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


def _checked_children(f, split, right, at, sizes, n_features) -> np.ndarray:
    """The right-child indices of the current nodes, after the checks the C kernel makes at every node: a split's
    feature is in range, a leaf's feature is -1, and a split's right child lies after it and inside its tree."""
    if np.any(f[split] >= n_features) or np.any(f[~split] != -1):
        raise ValueError(f"corrupt model: feature index out of bounds in tree {_first_bad_tree(split, f, n_features)}")
    r = right.astype(np.int64)
    bad = split & ((r <= at + 1) | (r >= sizes))
    if bad.any():
        raise ValueError(f"corrupt model: child index out of bounds in tree {np.argwhere(bad)[0, 1]}")
    return r


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


# ---- format version 2 (docs/format.md section 10): the same bits as _kernel.predict_raw2 and its outputs ----


def predict_raw2(
    nodes,
    node_flags,
    tree_offsets,
    tree_groups,
    cat_offsets,
    cat_words,
    X,
    out,
    n_features: int,
    n_outputs: int,
    split_lt: bool,
    acc32: bool,
    max_steps: int = -1,
    threads: int = 1,
    linear_offsets=None,
    linear_features=None,
    linear_coeffs=None,
    linear_const=None,
    linear_skip: bool = False,
) -> None:
    """Add every tree's scalar leaf to ``out[row, tree_groups[t]]`` in tree order (see ``_kernel.predict_raw2``;
    ``threads`` is ignored). With the ``linear_*`` arrays, a leaf's value is its linear model (section 13)."""
    n_trees = len(tree_offsets) - 1
    groups = np.asarray(tree_groups, dtype=np.int64)
    if np.any((groups < 0) | (groups >= n_outputs)):
        raise ValueError(
            f"corrupt model: tree group out of bounds in tree {int(np.argmax((groups < 0) | (groups >= n_outputs)))}"
        )
    chunk = max(1, _CHUNK_CELLS // n_trees)
    for start in range(0, X.shape[0], chunk):
        stop = min(start + chunk, X.shape[0])
        leaves = _leaves_v2(
            nodes, node_flags, tree_offsets, cat_offsets, cat_words, X[start:stop], n_features, split_lt, max_steps
        )
        steps = nodes["value"][leaves]
        if linear_offsets is not None:
            steps = _linear_values(
                leaves,
                steps,
                X[start:stop],
                (linear_offsets, linear_features, linear_coeffs, linear_const),
                n_features,
                np.float32 if acc32 else np.float64,
                linear_skip,
            )
        if acc32:
            steps = steps.astype(np.float32)
        for k in range(n_outputs):
            mine = steps[:, groups == k]
            stacked = np.concatenate([out[start:stop, k : k + 1], mine], axis=1)
            out[start:stop, k] = np.add.accumulate(stacked, axis=1, dtype=out.dtype)[:, -1]


def _linear_values(leaves, fallback, X, linear, n_features, dtype, skip: bool) -> np.ndarray:
    """Linear leaves, vectorised (docs/format.md section 13): ``const[leaf]``, then ``+= coeff * x`` for each of the
    leaf's coefficients in order, in ``dtype`` (float64: LightGBM's ``Tree::Predict``; float32: XGBoost's
    ``GBLinear::Pred``), no fused multiply-add. A NaN input: its term is skipped (``skip``), else the leaf's value
    (``fallback``) is the answer."""
    offsets, features, coeffs, const = linear
    offsets = np.asarray(offsets, dtype=np.int64)
    c0, c1 = offsets[leaves], offsets[leaves + 1]
    bad = (c0 < 0) | (c1 < c0) | (c1 > len(coeffs))
    if bad.any():
        raise ValueError(f"corrupt model: linear leaf out of bounds in tree {int(np.argwhere(bad)[0, 1])}")
    count = c1 - c0
    const = np.asarray(const, dtype=np.float64)[leaves]
    bad = ~np.isfinite(const)
    for c in range(int(count.max()) if count.size else 0):  # every coefficient of a reached leaf is checked
        active = c < count
        bad |= active & ~np.isfinite(np.asarray(coeffs, dtype=np.float64)[np.where(active, c0 + c, 0)])
    if bad.any():
        raise ValueError(f"corrupt model: non-finite leaf value in tree {int(np.argwhere(bad)[0, 1])}")
    value = const.astype(dtype)
    coeffs = np.asarray(coeffs, dtype=np.float64).astype(dtype)
    nan = np.zeros(leaves.shape, dtype=bool)
    rows = np.arange(leaves.shape[0])[:, None]
    for c in range(int(count.max()) if count.size else 0):
        active = c < count
        at = np.where(active, c0 + c, 0)
        f = np.asarray(features, dtype=np.int64)[at] if len(features) else np.zeros(at.shape, dtype=np.int64)
        bad = active & ((f < 0) | (f >= n_features))
        if bad.any():
            raise ValueError(f"corrupt model: linear leaf out of bounds in tree {int(np.argwhere(bad)[0, 1])}")
        x = X[rows, np.where(active, f, 0)].astype(dtype)
        missing = active & np.isnan(x)
        if not skip:
            nan |= missing
        step = active & ~nan & ~missing
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused after the sums
            value = np.where(step, value + coeffs[at] * np.where(step, x, dtype(0.0)), value)
    return value.astype(np.float64) if skip else np.where(nan, fallback, value.astype(np.float64))


def _leaves_v2(
    nodes, node_flags, tree_offsets, cat_offsets, cat_words, X, n_features, split_lt, max_steps
) -> np.ndarray:
    value, feature, right = nodes["value"], nodes["feature"], nodes["right"]
    roots = np.asarray(tree_offsets[:-1], dtype=np.int64)
    sizes = np.asarray(tree_offsets[1:], dtype=np.int64) - roots
    n_rows, n_trees = X.shape[0], roots.shape[0]
    rows = np.arange(n_rows)[:, None]
    at = np.zeros((n_rows, n_trees), dtype=np.int64)
    n_bitsets = max(len(cat_offsets) - 1, 0)
    bounds = _Steps(n_rows, max_steps)
    while True:
        idx = roots + at
        f = feature[idx]
        split = f >= 0
        if not split.any():
            break
        r = _checked_children(f, split, right[idx], at, sizes, n_features)
        fl = node_flags[idx].astype(np.int64)
        miss = (fl >> 1) & 3
        cat = (fl & 0x08) != 0
        bad = split & (((fl & ~0x7F) != 0) | (~cat & (miss == 3)) | (cat & (((fl >> 4) & 3) == 3)))
        if bad.any():
            raise ValueError(f"corrupt model: node flags out of bounds in tree {np.argwhere(bad)[0, 1]}")
        x = X[rows, np.where(split, f, 0)]
        thr = value[idx]
        nan = np.isnan(x)
        default_left = (fl & 0x01) != 0
        xz = np.where(nan & (miss != 0), 0.0, x)
        compared = xz < thr if split_lt else xz <= thr
        left = np.where(nan & (miss == 0), default_left, np.where((miss == 2) & (xz == 0.0), default_left, compared))
        live_cat = split & cat
        if live_cat.any():
            left = np.where(
                live_cat,
                _categorical_left(thr, fl, x, nan, default_left, live_cat, cat_offsets, cat_words, n_bitsets),
                left,
            )
        bounds.level(split)
        at = np.where(split, np.where(left, at + 1, r), at)
    # Every reached node is a leaf now; its marker must be exactly -1, as the C kernel demands (-2 is corrupt).
    if np.any(f != -1):
        raise ValueError(f"corrupt model: feature index out of bounds in tree {_first(f != -1)}")
    return roots + at


def _categorical_left(thr, fl, x, nan, default_left, live, cat_offsets, cat_words, n_bitsets) -> np.ndarray:
    b = np.where(live, thr, 0.0)
    if np.any(live & ~((b >= 0) & (b < n_bitsets))):
        raise ValueError(
            f"corrupt model: categorical bitset out of bounds in tree {np.argwhere(live & ~((b >= 0) & (b < n_bitsets)))[0, 1]}"
        )
    bi = b.astype(np.int64)
    w0 = np.asarray(cat_offsets, dtype=np.int64)[bi]
    w1 = np.asarray(cat_offsets, dtype=np.int64)[np.minimum(bi + 1, len(cat_offsets) - 1)]
    if np.any(live & ((w0 < 0) | (w1 < w0) | (w1 > len(cat_words)))):
        raise ValueError("corrupt model: categorical bitset out of bounds")
    nbits = ((w1 - w0) * 32).astype(np.float64)
    mode = (fl >> 4) & 3
    with np.errstate(invalid="ignore"):
        inside = np.where(
            mode == 0,
            (x >= 0) & (x < nbits) & (x == np.floor(x)),
            np.where(mode == 1, (x >= 0) & (x < nbits), (x > -1) & (x < nbits)),
        )
    inside &= live & ~nan
    c = np.where(inside, x, 0.0).astype(np.int64)  # toward zero, as C's (int64_t)x
    words = np.asarray(cat_words, dtype=np.uint32)
    word = words[np.where(inside, w0 + c // 32, 0)] if len(words) else np.zeros_like(c, dtype=np.uint32)
    bit = ((word.astype(np.int64) >> (c % 32)) & 1) != 0
    outside_left = (fl & 0x40) != 0
    return np.where(nan, default_left, np.where(inside, bit, outside_left))


_LIBM = None


def _libm():
    """glibc's libm through ctypes, for expf (the libraries' own float32 exp); None where there is none."""
    global _LIBM
    if _LIBM is None:
        import ctypes

        lib = None
        for name in ("libm.so.6", "libm.dylib", None):
            try:
                lib = ctypes.CDLL(name)
                lib.expf.restype, lib.expf.argtypes = ctypes.c_float, [ctypes.c_float]
                break
            except (OSError, AttributeError):
                lib = None
        _LIBM = lib or False
    return _LIBM or None


def _expf(v: float) -> float:
    lib = _libm()
    if lib is not None:
        return lib.expf(v)
    return float(np.float32(math.exp(v)))  # no libm to call: double exp rounded once (may differ in rare last bits)


def sigmoid_f32(x: np.ndarray) -> None:
    """In place on float32: XGBoost's ``1.0f / (expf(min(-x, 88.7f)) + 1.0f + 1e-16f)`` (as ``_kernel.sigmoid_f32``)."""
    f32 = np.float32
    eps, one, cap = f32(1e-16), f32(1.0), f32(88.7)
    res = []
    for v in x.tolist():
        nv = f32(-v)
        nv = cap if cap < nv else nv  # std::min(-x, 88.7f), operand order kept  # noqa: FURB136
        denom = (f32(_expf(float(nv))) + one) + eps
        res.append(one / denom)
    x[...] = np.array(res, dtype=np.float32)


def softmax_f32(p: np.ndarray, n_outputs: int) -> None:
    """In place on float32 rows: XGBoost's ``common::Softmax`` (as ``_kernel.softmax_f32``)."""
    f32 = np.float32
    for row in p:
        wmax = row[0]
        for v in row[1:]:
            wmax = f32(max(v, wmax)) if not np.isnan(v) else wmax  # fmaxf ignores a NaN operand
        wsum = 0.0
        e = []
        for v in row.tolist():
            ev = f32(_expf(float(f32(v) - wmax)))
            e.append(ev)
            wsum += float(ev)
        row[...] = np.array(e, dtype=np.float32) / f32(wsum)


def softmax_seq(p: np.ndarray, n_outputs: int) -> None:
    """In place on float64 rows: LightGBM's ``Common::Softmax`` with libm's exp (as ``_kernel.softmax_seq``)."""
    for row in p:
        values = row.tolist()
        wmax = values[0]
        for v in values[1:]:
            wmax = wmax if v < wmax else v  # std::max(v, wmax), operand order kept  # noqa: FURB136
        e = [math.exp(v - wmax) for v in values]
        wsum = 0.0
        for v in e:
            wsum += v
        row[...] = [v / wsum for v in e]


def exp_f64(x: np.ndarray) -> None:
    """In place on float64: x -> exp(x) with libm's exp (``math.exp``), as ``_kernel.exp_f64``."""
    x[...] = [_exp1(v) for v in x.tolist()]


def _exp1(v: float) -> float:
    try:
        return math.exp(v)
    except OverflowError:  # C's exp gives infinity; the caller refuses a non-finite answer
        return math.inf


def exp_f32(x: np.ndarray) -> None:
    """In place on float32: x -> expf(x), the C library's float32 exp (as ``_kernel.exp_f32``)."""
    x[...] = np.array([_expf(v) for v in x.tolist()], dtype=np.float32)


def exp_cb(x: np.ndarray) -> None:
    """In place on float64: CatBoost's fast exp (``coldbrew/engine/cbexp.py``), as ``_kernel.exp_cb``."""
    x[...] = _cb_fast_exp(x)


def softmax_cb(p: np.ndarray, n_outputs: int) -> None:
    """In place on float64 rows: CatBoost's ``CalcSoftmax`` (as ``_kernel.softmax_cb``): the first largest value
    (``np.max`` of finite rows), its fast exp of ``v - max``, the sum left to right from 0.0, each divided by it."""
    if not len(p):
        return
    e = _cb_fast_exp(p - p.max(axis=1, keepdims=True))
    total = np.zeros(len(p))
    for k in range(n_outputs):
        total = total + e[:, k]
    p[...] = e / total[:, None]


def _cb_fast_exp(x: np.ndarray) -> np.ndarray:
    """fmath::expd_v's vector lanes, element-wise in numpy float64 (each operation rounded once, no FMA)."""
    from coldbrew.engine import cbexp

    table = _cb_table()
    x = np.asarray(x, dtype=np.float64)
    x = np.where(x < cbexp.X_MAX, x, cbexp.X_MAX)  # _mm_min_pd: NaN -> the bound, as the C lanes
    x = np.where(x > cbexp.X_MIN, x, cbexp.X_MIN)
    d = x * cbexp.A + cbexp.B
    di = d.view(np.uint64)
    t = (d - cbexp.B) * cbexp.RA - x
    u = ((di + np.uint64(cbexp.ADJ)) >> np.uint64(cbexp.SBIT)) << np.uint64(52)
    scale = (u | table[(di & np.uint64((1 << cbexp.SBIT) - 1)).astype(np.intp)]).view(np.float64)
    y = (cbexp.C3 - t) * (t * t)
    y = y * cbexp.C2
    y = (y - t) + cbexp.C1
    with np.errstate(over="ignore", invalid="ignore"):
        return y * scale


_CB_TABLE: np.ndarray | None = None


def _cb_table() -> np.ndarray:
    global _CB_TABLE
    if _CB_TABLE is None:
        from coldbrew.engine import cbexp

        _CB_TABLE = np.array(cbexp.table(), dtype=np.uint64)
    return _CB_TABLE
