"""Batches on threads: the same bits whatever the thread count; the default thread count and its overrides."""

from __future__ import annotations

import os
import time

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


def test_batches_from_many_python_threads_at_once(lgbm_brew):
    """The kept helper threads serve one batch at a time; batches that find them busy start threads of their own.
    Either way every batch gets its own rows' bits."""
    from concurrent.futures import ThreadPoolExecutor

    path, est, X = lgbm_brew
    p = BrewPredictor(path, threads=2)
    parts = [X[i * 2500 : (i + 1) * 2500] for i in range(4)]
    expected = [est.predict_proba(part) for part in parts]
    with ThreadPoolExecutor(4) as ex:
        for _ in range(5):
            got = list(ex.map(p.predict_proba, parts * 2))
            for i, g in enumerate(got):
                assert np.array_equal(g, expected[i % 4])


@pytest.mark.integration
def test_a_forked_child_runs_threaded_batches(lgbm_brew, tmp_path):
    """A child forked after its parent's batches used the kept helpers (which it does not inherit) starts its own."""
    import subprocess
    import sys

    path, est, X = lgbm_brew
    np.save(tmp_path / "X.npy", X)
    code = f"""
import os, signal, sys, numpy as np
signal.alarm(100)  # each process ends itself, whatever happens to the test
from coldbrew.engine.brew import BrewPredictor
X = np.load({str(tmp_path / "X.npy")!r})
p = BrewPredictor({str(path)!r}, threads=2)
first = p.predict_proba(X)
pid = os.fork()
if pid == 0:
    signal.alarm(60)
    np.save({str(tmp_path / "child.npy")!r}, p.predict_proba(X)); os._exit(0)
_, status = os.waitpid(pid, 0)
np.save({str(tmp_path / "parent.npy")!r}, p.predict_proba(X))
sys.exit(os.waitstatus_to_exitcode(status))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    expected = est.predict_proba(X)
    for name in ("child", "parent"):
        assert np.array_equal(np.load(tmp_path / f"{name}.npy"), expected)


def _os_threads() -> int:
    with open("/proc/self/status") as fh:
        return int(next(line for line in fh if line.startswith("Threads:")).split()[1])


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="counts threads through Linux's /proc")
def test_helper_threads_are_kept_between_batches_and_end_when_idle(lgbm_brew):
    """Back-to-back batches reuse their helpers; an idle process is left with no helper threads (a fork then copies
    a single-threaded process)."""
    path, est, X = lgbm_brew
    expected = est.predict_proba(X)  # (LightGBM's own threads, if any, started before the count)
    time.sleep(1.5)  # the helpers of earlier tests' batches have ended
    before = _os_threads()
    p = BrewPredictor(path, threads=3)
    for _ in range(3):
        assert np.array_equal(p.predict_proba(X), expected)
        assert _os_threads() == before + 2  # two helpers, the same two each time
        time.sleep(0.2)  # asleep between batches, not ended
    deadline = time.monotonic() + 10
    while _os_threads() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _os_threads() == before
    assert np.array_equal(p.predict_proba(X), expected)  # and new helpers when the next batch comes
