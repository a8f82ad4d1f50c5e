"""CatBoost's fast exp (coldbrew/engine/cbexp.py, _kernel.exp_cb, numpy_kernel.exp_cb) against catboost's own
Exponent predictions on a dense sweep: a one-tree model whose leaves are the values to exponentiate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from coldbrew.engine import cbexp, numpy_kernel
from coldbrew.engine.brew import KERNELS

catboost = pytest.importorskip("catboost")
D = 12  # one symmetric tree of depth D: row j reaches leaf j


def _leaf_model(tmp_path, loss="Poisson", K=1):
    rng = np.random.default_rng(0)
    X = rng.random((100, 2))
    if loss == "MultiClass":
        est = catboost.CatBoostClassifier(
            loss_function=loss, iterations=1, depth=1, verbose=0, allow_writing_files=False
        )
        est.fit(X, np.arange(100) % K)
    else:
        est = catboost.CatBoostRegressor(
            loss_function=loss, iterations=1, depth=1, verbose=0, allow_writing_files=False
        )
        est.fit(X, rng.poisson(2, 100))
    path = tmp_path / "m.json"
    est.save_model(str(path), format="json")
    doc = json.loads(path.read_text())
    f = {"borders": [0.5], "feature_id": "", "has_nans": False, "nan_value_treatment": "AsIs"}
    doc["features_info"]["float_features"] = [{**f, "feature_index": i, "flat_feature_index": i} for i in range(D)]
    split = {"border": 0.5, "split_type": "FloatFeature"}
    doc["oblivious_trees"] = [
        {
            "leaf_values": [0.0] * (K << D),
            "leaf_weights": [1] * (1 << D),
            "splits": [{**split, "float_feature_index": i, "split_index": i} for i in range(D)],
        }
    ]
    doc["scale_and_bias"] = [1, [0.0] * K]
    path.write_text(json.dumps(doc))
    (tmp_path / "m.cbm").unlink(missing_ok=True)
    m = type(est)()
    m.load_model(str(path), format="json")
    m.save_model(str(tmp_path / "m.cbm"))
    rows = ((np.arange(1 << D)[:, None] >> np.arange(D)) & 1).astype(np.float32)
    return type(est), tmp_path / "m.cbm", rows


def _catboost_exp(cls, path, rows, values, n):
    m = cls()
    m.load_model(str(path))  # a fresh model: set_leaf_values needs one, and predict caches its trees
    m.set_leaf_values(values)
    raw = m.predict(rows[:n], prediction_type="RawFormulaVal")
    return raw, m.predict(rows[:n], prediction_type="Exponent")


def _ours(raw):
    out = {"python": np.array(cbexp.exp_cb(raw.tolist())), "numpy": raw.copy()}
    numpy_kernel.exp_cb(out["numpy"])
    if "c" in KERNELS:
        from coldbrew.engine import _kernel

        out["c"] = raw.copy()
        _kernel.exp_cb(out["c"])
    return out


def test_exp_matches_catboost_on_a_dense_sweep(tmp_path):
    cls, path, rows = _leaf_model(tmp_path)
    rng = np.random.default_rng(1)
    n = 1 << D
    sweeps = [
        rng.uniform(-5, 5, n),
        rng.uniform(-700, 709.9, n),
        rng.normal(0, 1e-6, n),
        np.linspace(-708.39, 709.8, n),
    ]
    for values in sweeps:
        for count in (n, n - 1, n - 3):  # the last count % 4 values take CatBoost's scalar path
            raw, expected = _catboost_exp(cls, path, rows, values, count)
            assert np.array_equal(raw, values[:count])
            for name, got in _ours(raw).items():
                assert got.dtype == expected.dtype and np.array_equal(got, expected), name


def test_only_the_region_below_the_bound_depends_on_the_path(tmp_path):
    """At or below -708.396 catboost's vector lanes answer 2.2e-308 and its scalar tail 0.0: why a model that can
    reach there is refused."""
    cls, path, rows = _leaf_model(tmp_path)
    values = np.full(1 << D, -720.0)
    raw, expected = _catboost_exp(cls, path, rows, values, 5)
    assert expected[:4].tolist() == [2.2250738585072014e-308] * 4 and expected[4] == 0.0
    assert cbexp.fast_exp(-720.0) == 2.2250738585072014e-308


@pytest.mark.parametrize("K", [3, 5])
def test_softmax_matches_catboost(tmp_path, K):
    cls, path, rows = _leaf_model(tmp_path, "MultiClass", K)
    rng = np.random.default_rng(K)
    m = cls()
    m.load_model(str(path))
    m.set_leaf_values(rng.normal(0, 20, K << D))
    raw = m.predict(rows, prediction_type="RawFormulaVal")
    expected = m.predict_proba(rows)
    got = raw.copy()
    numpy_kernel.softmax_cb(got, K)
    assert np.array_equal(got, expected)
    assert np.array_equal(np.array([cbexp.softmax_cb(r) for r in raw.tolist()]), expected)
    if "c" in KERNELS:
        from coldbrew.engine import _kernel

        got = raw.copy()
        _kernel.softmax_cb(got, K)
        assert np.array_equal(got, expected)


def test_c_header_is_the_exact_table():
    from pathlib import Path

    header = Path(cbexp.__file__).with_name("_cbexp_table.h").read_text()
    assert header == cbexp.c_header()
    assert all(2.0 ** (i / 2048) == float.fromhex(f"0x1.{v:013x}p+0") for i, v in enumerate(cbexp.table()))
