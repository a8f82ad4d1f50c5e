"""Batches on threads: the same bits whatever the thread count; the default thread count and its overrides."""

from __future__ import annotations

import numpy as np
import pytest

from coldbrew.engine import brew
from coldbrew.engine.brew import KERNELS, BrewPredictor, default_threads
from coldbrew.errors import ColdbrewError

pytestmark = pytest.mark.skipif("c" not in KERNELS, reason="threads are the C kernel's")


@pytest.fixture(scope="module")
def lgbm_brew(tmp_path_factory):
    import lightgbm

    from coldbrew.convert import compile_file

    rng = np.random.default_rng(3)
    X = rng.normal(size=(2000, 6))
    X[rng.random(X.shape) < 0.05] = np.nan
    y = (np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 1]) ** 2 > 0.5).astype(int)
    folder = tmp_path_factory.mktemp("threads")
    m = lightgbm.LGBMClassifier(n_estimators=40, num_leaves=15, verbose=-1).fit(X, y)
    m.booster_.save_model(str(folder / "m.txt"))
    compile_file(folder / "m.txt", folder / "m.brew", progress=False)
    return folder / "m.brew", m, rng.normal(size=(10_000, 6))


@pytest.mark.parametrize("model", ["tiny", "lgbm"])
def test_bits_do_not_depend_on_the_thread_count(model, tiny_brew, lgbm_brew):
    if model == "tiny":
        path, X = tiny_brew, np.random.default_rng(0).uniform(0, 1e5, size=(10_000, 6))
        expected = None
    else:
        path, est, X = lgbm_brew
        X = X.copy()
        X[np.random.default_rng(1).random(X.shape) < 0.05] = np.nan
        expected = est.predict_proba(X)
    results = []
    for n in (1, 2, 3, 7):  # each predictor twice: its first call compacts trees block by block, later ones use the
        p = BrewPredictor(path, threads=n)  # model's compact form (the kernel's walks; the bits are the same)
        results += [p.predict_proba(X), p.predict_proba(X)]
    for r in results[1:]:
        assert np.array_equal(r, results[0]) and r.dtype == results[0].dtype
    if expected is not None:  # and they are the library's bits
        assert np.array_equal(results[0], expected)


def test_threads_argument_is_checked(tiny_brew):
    for bad in (0, -1, "two", 1.5, True, 10_000):
        with pytest.raises(ColdbrewError, match="threads"):
            BrewPredictor(tiny_brew, threads=bad)


def test_default_threads_follow_the_environment(monkeypatch):
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", raising=False)
    monkeypatch.setenv("COLDBREW_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.setenv("COLDBREW_THREADS", "lots")
    with pytest.raises(ColdbrewError, match="COLDBREW_THREADS"):
        default_threads()
    monkeypatch.delenv("COLDBREW_THREADS")
    monkeypatch.setattr(brew.os, "sched_getaffinity", lambda pid: set(range(32)))
    assert default_threads() == brew.MAX_DEFAULT_THREADS
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1769")  # one vCPU's worth
    assert default_threads() == 1
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "3538")
    assert default_threads() == 2
