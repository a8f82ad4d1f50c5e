"""Format version 3 (docs/format.md section 13): older readers refuse it, both kernels refuse the same corrupt
files, and the header rules of the new values hold. Expected answers come from the libraries."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_diabetes

from coldbrew.engine.brew import KERNELS, BrewPredictor
from coldbrew.engine.inputs import InvalidInputError
from coldbrew.errors import ModelFormatError
from coldbrew.format import spec, write_brew

lightgbm = pytest.importorskip("lightgbm")


def _linear_model():
    from coldbrew.convert.lightgbm import model_to_arrays, parse_text

    X, y = load_diabetes(return_X_y=True)
    est = lightgbm.LGBMRegressor(n_estimators=5, num_leaves=4, linear_tree=True, verbose=-1).fit(X, y)
    header, arrays = model_to_arrays(parse_text(est.booster_.model_to_string()))
    return est, X, header, arrays


def test_a_linear_tree_file_is_version_3_and_an_older_reader_refuses_it(tmp_path, monkeypatch):
    est, X, header, arrays = _linear_model()
    write_brew(tmp_path / "m.brew", header, arrays)
    for kernel in KERNELS:
        p = BrewPredictor(tmp_path / "m.brew", kernel=kernel)
        assert p.header["version"] == 3
        assert np.array_equal(p.predict(X), est.predict(X))
    monkeypatch.setattr(spec, "VERSION", 2)
    with pytest.raises(ModelFormatError, match="newer coldbrew.*version 3"):
        BrewPredictor(tmp_path / "m.brew")


def test_a_linear_leaf_naming_a_missing_feature_is_refused_by_both_kernels(tmp_path):
    _, X, header, arrays = _linear_model()
    arrays["linear_features"] = arrays["linear_features"].copy()
    arrays["linear_features"][:] = header["n_features"] + 5
    write_brew(tmp_path / "m.brew", header, arrays)
    for kernel in KERNELS:
        with pytest.raises(ModelFormatError, match="linear leaf out of bounds"):
            BrewPredictor(tmp_path / "m.brew", kernel=kernel).predict(X[:50])


def test_an_input_that_overflows_the_linear_leaves_is_an_input_error(tmp_path):
    _, X, header, arrays = _linear_model()
    write_brew(tmp_path / "m.brew", header, arrays)
    row = [[1.7e308] * header["n_features"]]
    for kernel in KERNELS:
        p = BrewPredictor(tmp_path / "m.brew", kernel=kernel)
        with pytest.raises(InvalidInputError, match="linear leaves overflow"):
            p.predict(np.array(row))
        with pytest.raises(InvalidInputError, match="linear leaves overflow"):
            p.predict(row)


def test_linear_leaves_need_version_3_rules(tmp_path):
    _, _, header, arrays = _linear_model()
    with pytest.raises(ModelFormatError, match="linear_missing"):
        write_brew(tmp_path / "m.brew", {**header, "linear_missing": "guess"}, arrays)


def _voting(tmp_path):
    from sklearn.ensemble import RandomForestRegressor, VotingRegressor

    from coldbrew.convert.sklearn import voting_to_arrays

    X, y = load_diabetes(return_X_y=True)
    est = VotingRegressor([("a", RandomForestRegressor(3, random_state=0)), ("b", RandomForestRegressor(2))])
    return voting_to_arrays(est.fit(X, y))


@pytest.mark.parametrize(
    "change,match",
    [
        ({"member_weights": [1.0]}, "member_weights"),
        ({"member_weights": [0, 0]}, "member_weights"),
        ({"member_divisors": []}, "member_divisors"),
        ({"member_divisors": [3, -1]}, "member_divisors"),
        ({"output": "identity"}, "voting"),
    ],
)
def test_voting_header_rules(tmp_path, change, match):
    header, arrays = _voting(tmp_path)
    with pytest.raises(ModelFormatError, match=match):
        write_brew(tmp_path / "m.brew", {**header, **change}, arrays)


def test_isolation_forest_header_rules(tmp_path):
    from sklearn.ensemble import IsolationForest

    from coldbrew.convert.sklearn import isolation_to_arrays

    X, _ = load_diabetes(return_X_y=True)
    header, arrays = isolation_to_arrays(IsolationForest(n_estimators=3, random_state=0).fit(X))
    for change, match in (
        ({"score_denominator": -1.0}, "score_denominator"),
        ({"score_offset": None}, "score_offset"),
        ({"decision": "value"}, "go together"),
    ):
        with pytest.raises(ModelFormatError, match=match):
            write_brew(tmp_path / "m.brew", {**header, **change}, arrays)


@pytest.mark.parametrize("loader", ["breast_cancer", "iris"])
def test_lightgbm_links_for_calibration_are_its_predict_proba(loader):
    """Before LightGBM 4.7 (no decision_function) CalibratedClassifierCV calibrates its predict_proba: the members'
    link (members._base_output) must give LightGBM's own probabilities from its raw scores."""
    import sklearn.datasets

    from coldbrew.engine.members import _base_output

    X, y = getattr(sklearn.datasets, f"load_{loader}")(return_X_y=True)
    est = lightgbm.LGBMClassifier(n_estimators=8, verbose=-1).fit(X, y)
    raw = np.asarray(est.predict(X, raw_score=True)).reshape(len(X), -1)
    K = len(est.classes_)
    link = "logistic" if K == 2 else "softmax_seq"
    for row, want in zip(raw.tolist(), est.predict_proba(X), strict=True):
        values = [0.0, row[0]] if K == 2 else row
        got = _base_output(values, 0, K, {"divisor": 0, "link": link})
        assert got[1:] == want.tolist()[1:] if K == 2 else got == want.tolist()
