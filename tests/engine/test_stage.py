"""The input stage (format version 3, docs/format.md section 12): raw named columns -> the model's features.

The expected answers are scikit-learn's own, on the features the stage is specified to compute."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from coldbrew.convert import sklearn as cs
from coldbrew.convert import trees as tb
from coldbrew.engine.brew import KERNELS, BrewPredictor
from coldbrew.engine.inputs import InvalidInputError
from coldbrew.errors import ModelFormatError
from coldbrew.format import BrewFile

VOCAB = ["a", "b", "c", "d"]
STAGE = {
    "columns": [{"name": "c", "type": "string", "nullable": True}, {"name": "z", "type": "number", "nullable": True}],
    "features": [
        {"column": 0, "ops": [{"kind": "vocab", "values": VOCAB, "unknown": None, "missing": None}]},
        {"column": 1, "ops": [{"kind": "sub", "value": 0.5}, {"kind": "div", "value": 3.0}]},
    ],
}


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    X = np.c_[rng.integers(0, 4, 500), rng.normal(size=500)]
    y = (X[:, 0] % 2 == 0) ^ (X[:, 1] > 0)
    return HistGradientBoostingClassifier(max_iter=20, categorical_features=[0]).fit(X, y)


def _write(model, path, stage) -> None:
    header, arrays = cs.hgb_to_arrays(model)
    header["inputs"] = stage
    tb.write_staged(path, header, arrays, lambda p: None)


@pytest.fixture(scope="module")
def brew(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("stage") / "m.brew"
    _write(model, path, STAGE)
    return path


def _features(rows) -> np.ndarray:
    """What the stage is specified to compute, in numpy: vocab codes (unknown/missing NaN), (z - 0.5) / 3.0."""
    code = [VOCAB.index(c) if c in VOCAB else np.nan for c, _ in rows]
    z = np.array([np.nan if v is None else v for _, v in rows], dtype=np.float64)
    return np.c_[np.array(code, dtype=np.float64), (z - 0.5) / 3.0]


@pytest.mark.parametrize("kernel", KERNELS)
def test_vocab_and_arithmetic_match_the_library(model, brew, kernel):
    rng = np.random.default_rng(1)
    rows = [
        [str(rng.choice([*VOCAB, "zz", "A"])) if rng.random() > 0.1 else None, float(rng.normal()) * 2]
        for _ in range(300)
    ] + [["a", None], [None, 1], ["d", 0.5]]
    p = BrewPredictor(brew, kernel=kernel)
    assert p.feature_names == ("c", "z") and p.n_features == 2 and BrewFile(brew).header["version"] == 3
    X = _features(rows)
    assert p.predict_proba(rows) == model.predict_proba(X).tolist()
    assert p.predict(rows) == model.predict(X).tolist()
    got = p.predict_proba(np.array(rows, dtype=object))
    assert got.dtype == np.float64 and np.array_equal(got, model.predict_proba(X))


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([[1.0, 1.0]], "row 0, c: expected a string"),
        ([["a", "x"]], "row 0, z: expected a number, got a string"),
        ([["a", True]], "z: expected a number, got a boolean"),
    ],
)
def test_wrong_types_are_input_errors(brew, kernel, rows, message):
    with pytest.raises(InvalidInputError, match=message):
        BrewPredictor(brew, kernel=kernel).predict(rows)


def test_unknown_error_refuses_the_row(model, tmp_path):
    stage = copy.deepcopy(STAGE)
    stage["features"][0]["ops"][0]["unknown"] = "error"
    _write(model, tmp_path / "e.brew", stage)
    for kernel in KERNELS:
        p = BrewPredictor(tmp_path / "e.brew", kernel=kernel)
        with pytest.raises(InvalidInputError, match="'zz' is not a category the model knows"):
            p.predict([["a", 1.0], ["zz", 1.0]])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s["features"][0]["ops"].append({"kind": "poly"}), "unknown op 'poly'"),
        (lambda s: s["features"][1]["ops"].__setitem__(1, {"kind": "div", "value": 0}), "must not be 0"),
        (lambda s: s["features"].pop(), "n_features"),
        (lambda s: s["features"][0]["ops"].clear(), "must end in a number"),
        (lambda s: s["columns"][1].__setitem__("name", "c"), "duplicate"),
        (lambda s: s["features"][0].__setitem__("column", 5), "column index"),
        (lambda s: s["features"][0]["ops"][0].pop("unknown"), "unknown and missing"),
    ],
)
def test_malformed_stages_are_refused(model, tmp_path, edit, message):
    stage = copy.deepcopy(STAGE)
    edit(stage)
    with pytest.raises((ModelFormatError, ValueError), match=message):
        _write(model, tmp_path / "bad.brew", stage)
