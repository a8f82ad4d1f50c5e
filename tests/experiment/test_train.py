"""The study's training recipe, its presets and the atomic write."""

from __future__ import annotations

import gzip
import pickle
import subprocess
import sys

import numpy as np
import pytest

from coldbrew.experiment import train as train_mod

STUDY_FEATURES = ["age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"]


def study_model_by_hand(n_estimators, max_depth):
    """The study's notebook recipe, written out independently of coldbrew."""
    from importlib import resources

    import pandas as pd
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.model_selection import train_test_split

    path = resources.files("coldbrew.data").joinpath("adult.csv.gz")
    with path.open("rb") as fh:
        df = pd.read_csv(gzip.open(fh))
    X, y = df[STUDY_FEATURES], df["income"] == ">50K"
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.33, random_state=42)
    model = GradientBoostingClassifier(
        learning_rate=1.0, random_state=0, n_estimators=n_estimators, max_depth=max_depth
    ).fit(X_train, y_train)
    return model, X_test, y_test


def test_bundled_data_is_the_full_adult_set():
    from coldbrew.experiment.dataset import load_adult

    X, y = load_adult()
    assert list(X.columns) == STUDY_FEATURES
    assert len(X) == 48_842
    assert int(y.sum()) == 11_687


def test_tiny_preset_reproduces_the_study_recipe(tiny_model):
    with open(tiny_model, "rb") as fh:
        ours = pickle.load(fh)
    recipe = train_mod.PRESETS["tiny"]
    params = ours.get_params()
    assert params["learning_rate"] == 1.0 and params["random_state"] == 0
    assert (params["n_estimators"], params["max_depth"]) == (recipe.n_estimators, recipe.max_depth)
    reference, X_test, _ = study_model_by_hand(recipe.n_estimators, recipe.max_depth)
    assert np.array_equal(ours.predict_proba(X_test), reference.predict_proba(X_test))


def test_overrides_replace_only_what_is_given():
    recipe = train_mod.resolve_recipe("140mb", n_estimators=7, max_depth=None)
    assert recipe.n_estimators == 7
    assert recipe.max_depth == train_mod.PRESETS["140mb"].max_depth


@pytest.mark.integration
def test_cli_trains_joblib_and_reports_accuracy_and_size(tmp_path):
    out = tmp_path / "m.joblib"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "coldbrew",
            "train",
            "-o",
            str(out),
            "--n-estimators",
            "3",
            "--max-depth",
            "2",
            "--format",
            "joblib",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    import joblib

    model = joblib.load(out)
    assert model.n_estimators == 3
    assert "test accuracy" in proc.stdout and "MB" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.joblib"]


def test_a_cached_pickle_from_before_the_display_labels_is_told_apart(tiny_model, tmp_path):
    """bench and demo retrain a cached study pickle trained on False/True (it would answer "True"/"False")."""
    import pickle

    from sklearn.ensemble import GradientBoostingClassifier

    from coldbrew.experiment.train import pickle_is_labelled

    assert pickle.loads(tiny_model.read_bytes()).classes_.tolist() == ["<=$50K", ">$50K"]
    assert pickle_is_labelled(tiny_model)
    old = GradientBoostingClassifier(n_estimators=2).fit([[0.0], [1.0], [2.0], [3.0]], [False, True, False, True])
    stale = tmp_path / "old.pkl"
    stale.write_bytes(pickle.dumps(old))
    assert not pickle_is_labelled(stale)
    assert not pickle_is_labelled(tmp_path / "missing.pkl")
