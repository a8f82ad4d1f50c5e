"""The kernel's bound models (``bind2`` / ``run_bound``): a version 2 model checked once and held, its rows checked
on every call; misuse is a one-line error, never a crash."""

from __future__ import annotations

from array import array

import numpy as np
import pytest

from coldbrew.engine.brew import KERNELS, BrewPredictor

pytestmark = pytest.mark.skipif("c" not in KERNELS, reason="the C kernel's")


@pytest.fixture(scope="module")
def lgbm(tmp_path_factory):
    import lightgbm

    from coldbrew.convert import compile_file

    rng = np.random.default_rng(5)
    X = rng.normal(size=(500, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    folder = tmp_path_factory.mktemp("bound")
    m = lightgbm.LGBMClassifier(n_estimators=12, num_leaves=7, verbose=-1).fit(X, y)
    m.booster_.save_model(str(folder / "m.txt"))
    compile_file(folder / "m.txt", folder / "m.brew", progress=False)
    return BrewPredictor(folder / "m.brew", threads=1), m, X


def test_a_row_at_a_time_before_and_after_the_forms_are_built(lgbm):
    p, est, X = lgbm
    expected = est.predict_proba(X[:40])
    rows = [p.predict_proba(X[i : i + 1])[0] for i in range(20)]  # the walks without the forms, bound once
    p.warm()  # new forms: bound again
    rows += [p.predict_proba(X[i : i + 1])[0] for i in range(20, 40)]
    assert np.array_equal(np.array(rows), expected)


def test_misuse_is_one_line(lgbm):
    from coldbrew.engine import _kernel

    p, _, X = lgbm
    p.predict_proba(X[:1])
    bound = p._bound[2]
    rows, out = array("d", X[0].tolist()), array("d", [0.0])
    _kernel.run_bound(bound, rows, out, 1)
    assert out[0] != 0.0
    with pytest.raises(ValueError, match="buffer sizes disagree"):
        _kernel.run_bound(bound, array("d", [0.0] * 5), out, 1)  # not a whole row
    with pytest.raises(ValueError, match="buffer sizes disagree"):
        _kernel.run_bound(bound, array("d", X[:2].ravel().tolist()), out, 1)  # two rows, one output slot
    with pytest.raises(TypeError):
        _kernel.run_bound(bound, rows, bytes(8), 1)  # out must be writable
    with pytest.raises(ValueError, match="PyCapsule"):
        _kernel.run_bound(object.__new__(type("C", (), {})), rows, out, 1)  # not a bound model
    with pytest.raises(TypeError, match="run_bound"):
        _kernel.run_bound(bound, rows, out)
    with pytest.raises(ValueError, match="tree_offsets"):  # a corrupt model is refused when bound
        offsets = bytearray(p._offsets_buf)
        offsets[8:16] = (10**9).to_bytes(8, "little")
        _kernel.bind2(*p._head[:2], offsets, *p._head[3:], p._nf, p._K, p._lt, p._acc32)
