"""`coldbrew compile` / `coldbrew inspect`: supported estimators, clear refusals, the CLI output."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from coldbrew.cli import main
from coldbrew.convert.sklearn import SUPPORTED, UnsupportedModelError, compile_model
from coldbrew.engine import load_predictor


def _pickle(tmp_path, est, name="m.pkl"):
    path = tmp_path / name
    path.write_bytes(pickle.dumps(est))
    return path


def _xy(n=200, classes=2):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 3))
    return X, (X[:, 0] > 0).astype(int) + (classes > 2) * (X[:, 1] > 0)


def test_unsupported_estimator_named_and_nothing_written(tmp_path):
    from sklearn.linear_model import LogisticRegression

    src = _pickle(tmp_path, LogisticRegression().fit(*_xy()))
    dst = tmp_path / "out.brew"
    with pytest.raises(UnsupportedModelError) as info:
        compile_model(src, dst, progress=False)
    message = str(info.value)
    assert "LogisticRegression" in message and all(name in message for name in SUPPORTED)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pkl"]


def test_custom_init_refused(tmp_path):
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.linear_model import LinearRegression

    X, y = _xy()
    est = GradientBoostingRegressor(n_estimators=3, init=LinearRegression()).fit(X, y.astype(float))
    with pytest.raises(UnsupportedModelError, match="init is a LinearRegression"):
        compile_model(_pickle(tmp_path, est), tmp_path / "out.brew", progress=False)
    assert not (tmp_path / "out.brew").exists()


def test_multi_output_classifier_refused_and_regressor_answers_vectors(tmp_path):
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    X, y = _xy()
    Y = np.column_stack([y, 1 - y])
    est = RandomForestClassifier(n_estimators=2).fit(X, Y)
    with pytest.raises(UnsupportedModelError, match="multi-output scikit-learn RandomForestClassifier"):
        compile_model(_pickle(tmp_path, est), tmp_path / "out.brew", progress=False)
    assert not (tmp_path / "out.brew").exists()
    reg = RandomForestRegressor(n_estimators=2, random_state=0).fit(X, Y.astype(float))
    compile_model(_pickle(tmp_path, reg), tmp_path / "out.brew", progress=False)
    got = load_predictor(tmp_path / "out.brew").predict(X)
    assert got.shape == (len(X), 2) and np.array_equal(got, reg.predict(X))


def test_joblib_input(tmp_path):
    import joblib
    from sklearn.ensemble import RandomForestClassifier

    X, y = _xy(classes=3)
    est = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    src = tmp_path / "m.joblib"
    joblib.dump(est, src, compress=3)
    stats = compile_model(src, tmp_path / "m.brew", progress=False)
    assert stats["kind"] == "forest_classifier" and stats["n_trees"] == 5
    assert np.array_equal(load_predictor(tmp_path / "m.brew").predict_proba(X), est.predict_proba(X))


def test_cli_compile_and_inspect(tiny_model, tmp_path, capsys):
    dst = tmp_path / "tiny.brew"
    assert main(["compile", str(tiny_model), "-o", str(dst), "--quiet"]) == 0
    out = capsys.readouterr().out
    for label in ("input size", "output size", "nodes", "time"):
        assert label in out
    assert main(["inspect", str(dst), "--verify"]) == 0
    out = capsys.readouterr().out
    for expected in ("gbm_classifier", "age, fnlwgt, education_num", "<=$50K, >$50K", "verified (sha256)", "trees"):
        assert expected in out
    assert main(["inspect", str(dst)]) == 0
    assert "not checked" in capsys.readouterr().out


def test_cli_errors_are_one_line(tmp_path, capsys):
    junk = tmp_path / "junk.brew"
    junk.write_bytes(b"\x89BREW\r\n\x1a" + bytes(10))
    assert main(["inspect", str(junk)]) == 1
    assert "too short" in capsys.readouterr().err
    assert main(["compile", str(tmp_path / "missing.pkl"), "-o", str(tmp_path / "x.brew")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_brew_much_smaller_than_pickle(tiny_model, tiny_brew):
    assert tiny_brew.stat().st_size <= 0.25 * tiny_model.stat().st_size


def test_a_forest_fitted_with_n_jobs_compiles_and_matches_its_sequential_answer(tmp_path):
    """With n_jobs > 1 scikit-learn sums the trees in thread order (not repeatable); compile checks against the
    repeatable n_jobs=1 answer, which is the order .brew sums in."""
    import pickle

    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier

    from coldbrew.convert.sklearn import compile_model
    from coldbrew.engine.brew import KERNELS, BrewPredictor

    X, y = load_breast_cancer(return_X_y=True)
    est = RandomForestClassifier(n_estimators=300, n_jobs=2, random_state=0).fit(X, y)
    src = tmp_path / "rf.pkl"
    src.write_bytes(pickle.dumps(est))
    compile_model(src, tmp_path / "rf.brew", progress=False)
    sequential = est.set_params(n_jobs=1).predict_proba(X)
    for kernel in KERNELS:
        assert np.array_equal(BrewPredictor(tmp_path / "rf.brew", kernel=kernel).predict_proba(X), sequential)


# ---- issue 23: compile refusals are one line, unpickle nothing named .brew, and leave nothing in -o -------------


def _compile_cli(src, dst, *extra):
    """Run ``coldbrew compile`` in a fresh process: (exit status, stderr lines, stdout)."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "coldbrew", "compile", str(src), "-o", str(dst), "--quiet", *extra],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return proc.returncode, proc.stderr.strip().splitlines(), proc.stdout


def test_compile_refuses_a_pickle_named_brew_without_unpickling_it(tmp_path):
    """The pickle would write a marker file if it were unpickled; compile refuses it by name, like serve does."""
    marker = tmp_path / "unpickled"

    class Bomb:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    src = tmp_path / "model.brew"
    src.write_bytes(pickle.dumps(Bomb()))
    code, err, _ = _compile_cli(src, tmp_path / "out" / "m.brew")
    assert code == 1 and len(err) == 1 and "named .brew but not a .brew file" in err[0], err
    assert not marker.exists() and not (tmp_path / "out").exists()


_BAD_INPUTS = {
    "dict.pkl": (lambda: pickle.dumps({"not": "a model"}), "cannot compile a dict"),
    "deep.json": (lambda: b'{"learner": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
    "deep2.json": (lambda: b"[" * 100_000 + b"]" * 100_000, "not a model file coldbrew recognises"),
    "model.cbm": (lambda: b"CBM1" + bytes(200), "catboost itself cannot load this file"),
    "catboost.json": (lambda: b'{"features_info": 5, "oblivious_trees": []}', "not a valid CatBoost model"),
    "catboost-nan.json": (lambda: b'{"features_info": {}, "oblivious_trees": [NaN]}', "not a CatBoost JSON model"),
    "garbage.bin": (lambda: b"\x00\x01garbage", "not a model file coldbrew recognises"),
}


@pytest.mark.parametrize("name", sorted(_BAD_INPUTS))
def test_compile_errors_are_one_line_and_leave_nothing(tmp_path, name):
    content, words = _BAD_INPUTS[name]
    src = tmp_path / name
    src.write_bytes(content())
    out = tmp_path / "out"
    code, err, stdout = _compile_cli(src, out / "m.brew")
    assert code == 1 and len(err) == 1 and words in err[0], err
    assert "Traceback" not in stdout and not out.exists()


def test_refused_check_keeps_an_earlier_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    """A compiled file that fails its check is never renamed into place: an earlier file at -o survives."""
    from sklearn.ensemble import RandomForestClassifier

    from coldbrew.convert import trees
    from coldbrew.errors import ModelFormatError

    X, y = _xy()
    src = _pickle(tmp_path, RandomForestClassifier(n_estimators=2, random_state=0).fit(X, y))
    dst = tmp_path / "m.brew"
    dst.write_bytes(b"an earlier model")

    def differs(*args, **kwargs):
        raise ModelFormatError("compiled predictions differ (simulated)")

    monkeypatch.setattr(trees, "check_compiled", differs)
    with pytest.raises(ModelFormatError, match="simulated"):
        compile_model(src, dst, progress=False)
    assert dst.read_bytes() == b"an earlier model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.brew", "m.pkl"]


def test_feature_names_option(tmp_path, capsys):
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = _xy()
    src = _pickle(tmp_path, HistGradientBoostingClassifier(max_iter=3).fit(X, y))  # bare arrays: no names
    dst = tmp_path / "m.brew"
    assert main(["compile", str(src), "-o", str(dst), "--quiet", "--feature-names", "age, income,score"]) == 0
    assert load_predictor(dst).feature_names == ("age", "income", "score")
    capsys.readouterr()
    for names, words in [("a,b", "has 2 names, the model has 3 features"), ("a,a,b", "distinct")]:
        assert main(["compile", str(src), "-o", str(tmp_path / "x.brew"), "--feature-names", names]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err
        assert not (tmp_path / "x.brew").exists()
