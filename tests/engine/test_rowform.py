"""The C kernel's row form (single rows and batches once the predictor has built it: ``warm()``): the library's bits on
every family it covers, at the thresholds (each split's threshold, its float64 and float32 neighbours) and with missing
values, as numpy rows and as lists, one row at a time, a few and a batch on 1 and 2 threads; and the same bits as the
walks without it. Float32 models hold float32 thresholds ("f32"), float64 ones their thresholds' ranks ("bins")."""

from __future__ import annotations

import os
import platform
import struct
import warnings

import numpy as np
import pytest

from coldbrew.convert import compile_file
from coldbrew.engine.brew import KERNELS, BrewPredictor

pytestmark = pytest.mark.skipif("c" not in KERNELS, reason="the row form is the C kernel's")


def _rows(p: BrewPredictor, X: np.ndarray, nan: bool, n: int = 240) -> np.ndarray:
    """Rows of X with one split's feature set to its threshold or a float64 / float32 neighbour of it, and (nan)
    some values missing."""
    rng = np.random.default_rng(7)
    nodes = p._nodes
    splits = np.flatnonzero((nodes["feature"] >= 0) & np.isfinite(nodes["value"]))  # HGB: some are infinite
    rows = X[rng.integers(0, len(X), n)].astype(np.float64).copy()
    for i, s in enumerate(rng.choice(splits, n)):
        t = float(nodes["value"][s])
        t32 = np.float32(t)
        near = [t, np.nextafter(t, -np.inf), np.nextafter(t, np.inf), float(t32)]
        near += [float(np.nextafter(t32, np.float32(-np.inf))), float(np.nextafter(t32, np.float32(np.inf)))]
        rows[i, nodes["feature"][s]] = near[i % len(near)]
    if nan:
        rows[rng.random(rows.shape) < 0.1] = np.nan
    return rows


FORMS = {"f32": (1, 0), "bins": (1, 1)}  # rfhead_t's narrow and bins fields


def _qs_kind() -> int:
    """The bit vectors this CPU runs: 1 with AVX-512 F and VL, 2 with AVX2 (and no AVX-512), else 0 (the walks)."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read().split()
    except OSError:
        return 0
    if platform.machine() != "x86_64":
        return 0
    return 1 if "avx512f" in flags and "avx512vl" in flags else 2 if "avx2" in flags else 0


def _head(p: BrewPredictor) -> tuple[int, ...]:
    """rfhead_t's narrow, lockstep, spread, v2, bins, leaf32 and qs fields."""
    return struct.unpack_from("<7i", p._rowform, 48)


def _pf_bytes(p: BrewPredictor) -> int:
    """rfhead_t.pf_bytes: the perfect trees' size (0: none)."""
    return struct.unpack_from("<q", p._rowform, 96)[0]


def _check(
    path, est, X, *, nan: bool, form: str | None, proba: bool = True, leaves: int | None = None, small: bool = True
):
    """leaves: rfhead_t.leaf32, 1 when the leaves hold their float32 values, 2 when they index a table of them.
    small: every tree has at most 64 leaves (bit vectors where the CPU has them); else the perfect trees."""
    p = BrewPredictor(path, threads=1)
    rows = _rows(p, X, nan)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        want = est.predict_proba(rows) if proba else est.predict(rows)
    method = p.predict_proba if proba else p.predict
    method(rows[:1])  # a fresh predictor's first call: the checked walks
    p.warm()  # the compact and row forms, built now
    if form is None:
        assert p._rowform is None
    else:
        assert p._rowform is not None
        head = _head(p)
        assert (head[0], head[4]) == FORMS[form]
        assert leaves is None or head[5] == leaves
        assert head[6] == (_qs_kind() if small else 0)  # trees of at most 64 leaves: bit vectors where it can
        if not small:
            assert _pf_bytes(p) > 0  # deeper trees, at most 12 levels: batches walk the perfect trees
    listed = rows.tolist()
    for i in range(len(rows)):
        got = method(rows[i : i + 1])
        assert got.dtype == want.dtype and np.array_equal(got, want[i : i + 1]), i
        assert method([listed[i]]) == want[i : i + 1].tolist(), i
    small = method(rows[:9])  # a few rows: each through the row form
    assert np.array_equal(small, want[:9])
    for threads in (1, 2):  # a batch: blocks of rows through each tree (bit vectors where the CPU has them)
        p.threads = threads
        batch = method(rows)
        assert batch.dtype == want.dtype and np.array_equal(batch, want)
    p.threads = 1
    if form is not None:  # the batch walks, without bit vectors: the same bits
        walked = BrewPredictor(path, threads=2)
        os.environ["COLDBREW_QS"] = "0"
        try:
            walked.warm()
        finally:
            del os.environ["COLDBREW_QS"]
        assert _head(walked)[6] == 0 and _pf_bytes(walked) == 0
        batch = (walked.predict_proba if proba else walked.predict)(rows)
        assert batch.dtype == want.dtype and np.array_equal(batch, want)
    form, p._rowform = p._rowform, None  # the walks without it: the same bits
    for i in range(0, len(rows), 7):
        assert np.array_equal(method(rows[i : i + 1]), want[i : i + 1]), i
    p._rowform = form


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 5))
    X[:, 3] = rng.integers(0, 4, 600)
    y = (X[:, 0] + X[:, 1] * X[:, 3] > 0.5).astype(int) + (X[:, 2] > 1)
    return X, y


def test_sklearn_forests(tmp_path, data):
    import pickle

    from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor, RandomForestClassifier

    X, y = data
    for i, est in enumerate(
        [
            GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0).fit(X, y),  # 3 outputs
            GradientBoostingClassifier(n_estimators=30, max_depth=4, random_state=0).fit(X, y > 0),
            GradientBoostingRegressor(n_estimators=30, max_depth=5, random_state=0).fit(X, X[:, 0] * 3.5),
            RandomForestClassifier(n_estimators=5, max_depth=5, random_state=0).fit(X, y),  # version 2, float32
        ]
    ):
        src, dst = tmp_path / f"m{i}.pkl", tmp_path / f"m{i}.brew"
        src.write_bytes(pickle.dumps(est))
        compile_file(src, dst, progress=False)
        regressor = i == 2
        _check(dst, est, X, nan=False, form="f32", proba=not regressor)


def test_hist_gradient_boosting(tmp_path, data):
    import pickle

    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = data
    Xn = X.copy()
    Xn[np.random.default_rng(1).random(X.shape) < 0.1] = np.nan
    est = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(Xn, y)
    src, dst = tmp_path / "m.pkl", tmp_path / "m.brew"
    src.write_bytes(pickle.dumps(est))
    compile_file(src, dst, progress=False)
    _check(dst, est, X, nan=True, form="bins")


@pytest.mark.parametrize("objective", ["binary:logistic", "multi:softprob"])
def test_xgboost(tmp_path, data, objective):
    xgboost = pytest.importorskip("xgboost")
    X, y = data
    Xn = X.copy()
    Xn[np.random.default_rng(1).random(X.shape) < 0.1] = np.nan
    target = y > 0 if objective.startswith("binary") else y
    est = xgboost.XGBClassifier(n_estimators=20, max_depth=5, objective=objective, n_jobs=1).fit(Xn, target)
    src, dst = tmp_path / "m.json", tmp_path / "m.brew"
    est.save_model(src)
    compile_file(src, dst, progress=False)
    _check(dst, est, X, nan=True, form="f32", leaves=1)


@pytest.mark.parametrize("params", [{}, {"zero_as_missing": True}, {"use_missing": False}, {"objective": "multiclass"}])
def test_lightgbm(tmp_path, data, params):
    lightgbm = pytest.importorskip("lightgbm")
    X, y = data
    Xn = X.copy()
    Xn[np.random.default_rng(1).random(X.shape) < 0.1] = np.nan
    Xn[np.random.default_rng(2).random(X.shape) < 0.05] = 0.0
    target = y if params.get("objective") == "multiclass" else y > 0
    est = lightgbm.LGBMClassifier(n_estimators=20, num_leaves=15, verbose=-1, **params).fit(Xn, target)
    src, dst = tmp_path / "m.txt", tmp_path / "m.brew"
    est.booster_.save_model(src)
    compile_file(src, dst, progress=False)
    # zero as missing (0.0 itself goes the default way) is a rule the compact form does not hold: no row form
    _check(dst, est, X, nan=True, form=None if params.get("zero_as_missing") else "bins", leaves=2)


def test_wide_rows(tmp_path):
    """40 features: a single row's copy no longer fits the kernel's stack buffer (it is allocated instead)."""
    lightgbm = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(3)
    X = rng.normal(size=(500, 40))
    X[rng.random(X.shape) < 0.05] = np.nan
    y = (np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 39]) > 0).astype(int)
    est = lightgbm.LGBMClassifier(n_estimators=15, num_leaves=15, verbose=-1).fit(X, y)
    src, dst = tmp_path / "m.txt", tmp_path / "m.brew"
    est.booster_.save_model(src)
    compile_file(src, dst, progress=False)
    _check(dst, est, X, nan=True, form="bins", leaves=2)


@pytest.mark.parametrize("leaves", [33, 64])
@pytest.mark.parametrize("classes", [2, 3])
def test_bit_vectors_past_32_leaves(tmp_path, leaves, classes):
    """Trees of 33 to 64 leaves: splits that clear leaves among the first 32 only, the others only, or both (the
    AVX2 bit vectors keep each half of a row's vector apart); one output and three."""
    lightgbm = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(11)
    X = rng.normal(size=(4000, 6))
    X[rng.random(X.shape) < 0.05] = np.nan
    Z = np.nan_to_num(X)
    y = (Z[:, 0] + Z[:, 1] * Z[:, 2] + np.sin(3 * Z[:, 4]) > 0).astype(int)
    if classes == 3:
        y = y + (Z[:, 3] > 0.8)
    est = lightgbm.LGBMClassifier(n_estimators=8, num_leaves=leaves, min_child_samples=2, verbose=-1).fit(X, y)
    grown = [t["num_leaves"] for t in est.booster_.dump_model()["tree_info"]]
    assert max(grown) == leaves and min(grown) > 32, grown  # the trees this test is about
    src, dst = tmp_path / "m.txt", tmp_path / "m.brew"
    est.booster_.save_model(src)
    compile_file(src, dst, progress=False)
    _check(dst, est, X, nan=True, form="bins", leaves=2)


@pytest.mark.parametrize("model", ["xgboost", "xgboost-3", "forest"])
def test_perfect_trees(tmp_path, model):
    """Trees of more than 64 leaves and at most 12 levels: batches walk them as perfect trees in heap order (a leaf
    above the last level copied into every entry below it), one output in float32, three, and a float32 forest."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(6000, 6))
    Z = X.copy()
    y = (Z[:, 0] + Z[:, 1] * Z[:, 2] + np.sin(3 * Z[:, 4]) > 0).astype(int)
    if model == "forest":
        import pickle

        from sklearn.ensemble import RandomForestClassifier

        est = RandomForestClassifier(n_estimators=6, max_depth=9, random_state=0).fit(X, y + (Z[:, 3] > 0.8))
        src, dst = tmp_path / "m.pkl", tmp_path / "m.brew"
        src.write_bytes(pickle.dumps(est))
        compile_file(src, dst, progress=False)
        _check(dst, est, X, nan=False, form="f32", small=False)
        return
    xgboost = pytest.importorskip("xgboost")
    X[rng.random(X.shape) < 0.05] = np.nan
    if model == "xgboost-3":
        y = y + (Z[:, 3] > 0.8)
    est = xgboost.XGBClassifier(n_estimators=10, max_depth=8, n_jobs=1).fit(X, y)
    src, dst = tmp_path / "m.json", tmp_path / "m.brew"
    est.save_model(src)
    compile_file(src, dst, progress=False)
    _check(dst, est, X, nan=True, form="f32", leaves=1, small=False)
