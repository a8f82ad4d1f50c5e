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


def _cpu() -> tuple[bool, bool]:
    """(AVX2, AVX-512 F and VL) on this CPU, as the kernel asks cpuid (x86_64 Linux only; elsewhere neither)."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = set(fh.read().split())
    except OSError:
        return False, False
    if platform.machine() != "x86_64":
        return False, False
    return "avx2" in flags, {"avx512f", "avx512vl"} <= flags


def _max_thresholds(p: BrewPredictor) -> int:
    """The most distinct split thresholds of any one feature (a binned model's bins per feature, less one)."""
    nodes = p._nodes
    split = nodes[nodes["feature"] >= 0]
    return max(len(np.unique(split["value"][split["feature"] == f])) for f in np.unique(split["feature"]))


def _qs_kind(p: BrewPredictor, want: str | None = None) -> int:
    """rfhead_t.qs the kernel should pick for p's row form (every tree at most 64 leaves) on this CPU: with AVX2, the
    byte tables (3) for a binned model whose features have at most 255 thresholds each, else the float tables (2);
    COLDBREW_QS=2 asks for the float tables, 1 for the AVX-512 ones (where the CPU has AVX-512); 0 without AVX2."""
    avx2, avx512 = _cpu()
    if want == "1" and avx512:
        return 1
    if not avx2:
        return 0
    if want is None and _head(p)[4] == 1 and _max_thresholds(p) <= 255:
        return 3
    return 2


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
        assert head[6] == (_qs_kind(p) if small else 0)  # trees of at most 64 leaves: bit vectors where it can
        if not small:
            assert _pf_bytes(p) > 0  # deeper trees, at most 12 levels: batches walk the perfect trees
    listed = rows.tolist()
    for i in range(len(rows)):
        got = method(rows[i : i + 1])
        assert got.dtype == want.dtype and np.array_equal(got, want[i : i + 1]), i
        assert method([listed[i]]) == want[i : i + 1].tolist(), i
    few = method(rows[:9])  # a few rows: each through the row form
    assert np.array_equal(few, want[:9])
    for threads in (1, 2):  # a batch: blocks of rows through each tree (bit vectors where the CPU has them)
        p.threads = threads
        batch = method(rows)
        assert batch.dtype == want.dtype and np.array_equal(batch, want)
    p.threads = 1
    if not small:  # the perfect trees' steps alone, without AVX2's top levels: the same bits
        os.environ["COLDBREW_AVX2"] = "0"
        try:
            batch = method(rows)
        finally:
            del os.environ["COLDBREW_AVX2"]
        assert batch.dtype == want.dtype and np.array_equal(batch, want)
    # the batch walks (COLDBREW_QS=0), and the other bit-vector tables (float, AVX-512): the same bits
    for asked in ("0", "1", "2") if form is not None else ():
        other = BrewPredictor(path, threads=2)
        os.environ["COLDBREW_QS"] = asked
        try:
            other.warm()
        finally:
            del os.environ["COLDBREW_QS"]
        if asked == "0":
            assert _head(other)[6] == 0 and _pf_bytes(other) == 0
        else:
            assert _head(other)[6] == (_qs_kind(other, asked) if small else 0)
        batch = (other.predict_proba if proba else other.predict)(rows)
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


class _FirstTrees:
    """A LightGBM classifier's first n iterations (the model its file saved with num_iteration=n)."""

    def __init__(self, est, n: int):
        self.est, self.n = est, n

    def predict_proba(self, X):
        return self.est.predict_proba(X, num_iteration=self.n)


@pytest.mark.parametrize("thresholds", [255, 256])
def test_byte_tables_limit(tmp_path, thresholds):
    """The byte tables hold a binned model's bins in bytes: 255 thresholds on a feature (bins 0 .. 255) fit them, a
    256th does not (that model takes the float tables); both give the library's bits, above the top threshold too.
    Stumps with random thresholds (extra_trees) add at most one threshold each, so some prefix has exactly N."""
    lightgbm = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(3)
    X = rng.normal(size=(3000, 2))
    y = (np.sin(4 * X[:, 0]) + rng.normal(scale=0.3, size=3000) > 0).astype(int)
    est = lightgbm.LGBMClassifier(
        n_estimators=600, num_leaves=2, max_bin=1023, min_child_samples=1, extra_trees=True, verbose=-1
    ).fit(X, y)
    seen: set[float] = set()
    trees = est.booster_.dump_model()["tree_info"]
    n = 0  # the prefix's iterations
    while len(seen) < thresholds and n < len(trees):
        root = trees[n]["tree_structure"]
        n += 1
        if root.get("split_feature") == 0:
            seen.add(root["threshold"])
    assert len(seen) == thresholds  # the prefix this test is about
    src, dst = tmp_path / "m.txt", tmp_path / "m.brew"
    est.booster_.save_model(src, num_iteration=n)
    compile_file(src, dst, progress=False)
    p = BrewPredictor(dst)
    p.warm()
    assert _max_thresholds(p) == thresholds
    X[::10, 0] = np.where(np.arange(0, len(X), 10) % 20, 9.0, -9.0)  # below the lowest threshold, above the highest
    _check(dst, _FirstTrees(est, n), X, nan=True, form="bins", leaves=2)


class _Counting:
    """The C kernel module, counting the general path's calls (run_bound) made through it."""

    def __init__(self, kernel):
        self.kernel, self.general = kernel, 0

    def __getattr__(self, name):
        if name == "run_bound":
            self.general += 1
        return getattr(self.kernel, name)


@pytest.mark.parametrize("library", ["lightgbm", "xgboost"])
def test_single_row_in_one_call(tmp_path, data, library, monkeypatch):
    """A binary classifier's single row, once the forms are built, is one C call (row_proba): the library's bits for
    list rows (None: missing; ints; tuples) and numpy rows; a row it does not take goes the general way, with that
    path's answer or error."""
    import coldbrew.engine.brew as brew
    from coldbrew.engine import InvalidInputError

    lib = pytest.importorskip(library)
    X, y = data
    Xn = X.copy()
    Xn[np.random.default_rng(1).random(X.shape) < 0.1] = np.nan
    if library == "lightgbm":
        est = lib.LGBMClassifier(n_estimators=20, num_leaves=15, verbose=-1).fit(Xn, y > 0)
        src = tmp_path / "m.txt"
        est.booster_.save_model(src)
    else:
        est = lib.XGBClassifier(n_estimators=20, max_depth=5, n_jobs=1).fit(Xn, y > 0)
        src = tmp_path / "m.json"
        est.save_model(src)
    dst = tmp_path / "m.brew"
    compile_file(src, dst, progress=False)
    p, general = BrewPredictor(dst, threads=1), BrewPredictor(dst, threads=1)
    rows = _rows(p, X, nan=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        want = est.predict_proba(rows)
    booled = [[True] + rows[0, 1:].tolist()]
    want_bool, want_f32 = general.predict_proba(booled), general.predict_proba(rows[:1].astype(np.float32))
    p.warm()
    p.predict_proba(rows[:2])  # the first call after the forms are built binds them
    counting = _Counting(brew.c_kernel)
    monkeypatch.setattr(brew, "c_kernel", counting)
    for i, row in enumerate(rows.tolist()):
        listed = [None if v != v else (int(v) if v == int(v) and abs(v) < 1e6 else v) for v in row]
        assert p.predict_proba([listed]) == want[i : i + 1].tolist(), i
        assert p.predict_proba([tuple(row)]) == want[i : i + 1].tolist(), i
        got = p.predict_proba(rows[i : i + 1])
        assert got.dtype == want.dtype and np.array_equal(got, want[i : i + 1]), i
    assert counting.general == 0  # every one of them in one call
    # rows row_proba does not take: the general path's answer, or its error
    spaced = np.repeat(rows[:1], 2, axis=1)[:, ::2]  # not contiguous
    assert np.array_equal(p.predict_proba(spaced), want[:1])
    assert p.predict_proba(booled) == want_bool
    got = p.predict_proba(rows[:1].astype(np.float32))
    assert got.dtype == want_f32.dtype and np.array_equal(got, want_f32)
    assert counting.general == 3
    bad = [
        [[float("inf")] + rows[0, 1:].tolist()],
        [[1e300] + rows[0, 1:].tolist()],  # too large for a float32 model's rows (XGBoost)
        [["7"] + rows[0, 1:].tolist()],
        [rows[0, 1:].tolist()],
        [[2**1100] + rows[0, 1:].tolist()],
        rows[0],
        rows[:1, 1:],
        [rows[:1]],  # a list holding a numpy matrix of one row
        [rows[0]],  # a list of numpy rows
    ]
    for X_bad in bad:
        try:
            expected = general.predict_proba(X_bad)
        except InvalidInputError as exc:
            with pytest.raises(InvalidInputError) as got_exc:
                p.predict_proba(X_bad)
            assert str(got_exc.value) == str(exc)
        else:
            assert np.array_equal(np.asarray(p.predict_proba(X_bad)), np.asarray(expected))
