"""The serving contract comes from the model: binary, multiclass and regression models of scikit-learn's own data,
served in-process, by the Lambda handler and by `coldbrew serve`, answering exactly what scikit-learn answers.

Expected values are computed by the fitted scikit-learn estimator itself, never by coldbrew's predictors.
"""

from __future__ import annotations

import json
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from families import SERVED, Family
from test_app import bad, call

from coldbrew.app import create_app
from coldbrew.errors import ModelFormatError

EVENTS = Path(__file__).parents[1] / "events"
# The estimators are fitted on DataFrames and asked about arrays here, as the app asks them.
pytestmark = pytest.mark.filterwarnings("ignore:X does not have valid feature names")


def _predictor(family: Family, fmt: str):
    from coldbrew.engine import load_predictor

    return load_predictor(family.brew if fmt == "brew" else family.pickle, allow_pickle=True)


# --- in-process: every family, both formats --------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["brew", "pickle"])
@pytest.mark.parametrize("name", SERVED)
def test_answers_are_scikit_learns(families, name, fmt):
    family = families[name]
    app = create_app(_predictor(family, fmt))
    expected = family.expected(family.X, fmt)
    for i in range(len(family.X)):
        status, _, body = call(app, "POST", "/predict", family.row(i))
        assert status == 200 and body == expected[i], i
    status, _, body = call(app, "POST", "/predict", [family.row(i) for i in range(len(family.X))])
    assert status == 200 and body == expected


def test_labels_default_to_the_classes_as_strings(families):
    body = call(
        create_app(_predictor(families["multiclass-unlabelled"], "brew")),
        "POST",
        "/predict",
        families["multiclass-unlabelled"].row(0),
    )[2]
    assert set(body["probabilities"]) == {"0", "1", "2"} and body["prediction"] in {"0", "1", "2"}


def test_class_labels_come_from_the_model_file(families):
    family = families["multiclass"]
    predictor = _predictor(family, "brew")
    assert predictor.header["class_labels"] == ["setosa", "versicolor", "virginica"]
    body = call(create_app(predictor), "POST", "/predict", family.row(0))[2]
    assert list(body["probabilities"]) == ["setosa", "versicolor", "virginica"], "in the model's class order"


def test_binary_probability_is_that_of_the_second_class(families):
    family = families["binary"]
    body = call(create_app(_predictor(family, "brew")), "POST", "/predict", family.row(0))[2]
    assert set(body) == {"prediction", "probability"}
    assert body["probability"] == family.est.predict_proba(family.X[:1])[0, 1]


def test_regression_answers_only_the_value(families):
    family = families["regression"]
    body = call(create_app(_predictor(family, "brew")), "POST", "/predict", family.row(0))[2]
    assert body == {"prediction": float(family.est.predict(family.X[:1])[0])}
    assert type(body["prediction"]) is float


def test_the_label_is_the_models_own_predict_even_on_a_tie(tmp_path):
    """Two trees that disagree give P = 0.5 exactly: scikit-learn's argmax says the first class, not ">= 0.5"."""
    from sklearn.ensemble import RandomForestClassifier

    from coldbrew.convert.sklearn import compile_model

    X = np.array([[0.0], [1.0]])
    est = RandomForestClassifier(n_estimators=2, random_state=0, bootstrap=False, max_features=1)
    est.fit(X, ["no", "yes"])
    est.estimators_[1].tree_.value[1:] = est.estimators_[1].tree_.value[[2, 1]]  # the second tree flips
    proba = est.predict_proba([[0.0]])[0]
    assert proba.tolist() == [0.5, 0.5] and est.predict([[0.0]])[0] == "no"
    (tmp_path / "tie.pkl").write_bytes(pickle.dumps(est))
    compile_model(tmp_path / "tie.pkl", tmp_path / "tie.brew", progress=False)
    for path in ("tie.pkl", "tie.brew"):
        from coldbrew.engine import load_predictor

        body = call(create_app(load_predictor(tmp_path / path, allow_pickle=True)), "POST", "/predict", {"x0": 0.0})[2]
        assert body == {"prediction": "no", "probability": 0.5}, path


# --- missing values --------------------------------------------------------------------------------------


def test_null_is_a_missing_value_where_the_model_handles_one(families):
    family = families["nullable"]
    rows = [i for i in range(len(family.X)) if np.isnan(family.X[i]).any()]
    assert rows, "the held-out rows include missing values"
    app = create_app(_predictor(family, "pickle"))
    status, _, body = call(app, "POST", "/predict", [family.row(i) for i in rows])
    assert status == 200
    assert body == family.expected(family.X[rows], "pickle")
    assert any(None in family.row(i).values() for i in rows)


def test_null_is_rejected_where_the_model_does_not_handle_missing(families):
    family = families["binary"]
    app = create_app(_predictor(family, "brew"))
    got = bad(app, [family.row(0), {**family.row(1), family.features[3]: None}])
    assert (got["field"], got["index"]) == (family.features[3], 1)
    assert "null" in got["error"]


def test_nullable_field_still_must_be_present_and_a_number(families):
    family = families["nullable"]
    app = create_app(_predictor(family, "pickle"))
    row = {k: v for k, v in family.row(0).items() if k != family.features[0]}
    assert bad(app, row)["field"] == family.features[0]
    got = bad(app, {**family.row(0), family.features[1]: "n/a"})
    assert got["field"] == family.features[1] and "or null" in got["error"]


# --- the OpenAPI document ------------------------------------------------------------------------------------


def _doc(predictor) -> dict:
    return call(create_app(predictor), "GET", "/openapi.json")[2]


@pytest.mark.parametrize("name", SERVED)
def test_openapi_row_lists_the_models_features(families, name):
    family = families[name]
    row = _doc(_predictor(family, "brew"))["components"]["schemas"]["Row"]
    assert tuple(row["properties"]) == family.features and row["required"] == list(family.features)
    # a field is nullable exactly where scikit-learn's own estimator accepts NaN (RandomForest: every feature)
    nullable = bool(family.est.__sklearn_tags__().input_tags.allow_nan)
    assert [bool(p.get("nullable")) for p in row["properties"].values()] == [nullable] * len(family.features)


def test_openapi_prediction_schema_per_task(families):
    schemas = {n: _doc(_predictor(families[n], "brew"))["components"]["schemas"]["Prediction"] for n in SERVED}
    binary = schemas["binary"]
    assert set(binary["required"]) == {"prediction", "probability"}
    assert binary["properties"]["prediction"]["enum"] == ["malignant", "benign"]
    multi = schemas["multiclass"]
    assert set(multi["required"]) == {"prediction", "probabilities"}
    assert multi["properties"]["probabilities"]["required"] == ["setosa", "versicolor", "virginica"]
    assert schemas["regression"]["required"] == ["prediction"]
    assert schemas["regression"]["properties"]["prediction"]["type"] == "number"


def test_openapi_marks_nullable_and_categorical_features(tmp_path):
    from sklearn.ensemble import HistGradientBoostingRegressor

    from coldbrew.engine.pickled import PicklePredictor

    rng = np.random.default_rng(0)
    X = np.c_[rng.normal(size=200), rng.integers(0, 4, 200)]
    est = HistGradientBoostingRegressor(max_iter=5, categorical_features=[1]).fit(X, X[:, 0] + X[:, 1])
    (tmp_path / "h.pkl").write_bytes(pickle.dumps(est))
    doc = _doc(PicklePredictor(tmp_path / "h.pkl"))
    props = doc["components"]["schemas"]["Row"]["properties"]
    assert props["x0"]["nullable"] is True and "categorical" not in props["x0"].get("description", "")
    assert props["x1"]["nullable"] is True and "categorical" in props["x1"]["description"]
    assert doc["info"]["x-coldbrew-task"] == "regression"


# --- metadata that cannot be served as stated --------------------------------------------------------------


def _rewrite_header(src: Path, dst: Path, **changes) -> Path:
    """A copy of ``src`` (.brew) with header keys changed (``None`` deletes) and the file re-signed, as an
    attacker (or a buggy writer) would produce it: the writer's own checks are bypassed, arrays untouched."""
    import hashlib
    import json
    import struct

    data = src.read_bytes()
    magic, version, h_len, p_off, p_len = struct.unpack_from("<8sIIQQ", data, 0)
    header = json.loads(data[64 : 64 + h_len])
    for key, value in changes.items():
        if value is None:
            header.pop(key, None)
        else:
            header[key] = value
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 64)
    payload = data[p_off:]
    out = struct.pack("<8sIIQQ", magic, version, len(text), 64 + len(text), len(payload)) + bytes(32) + text + payload
    out = out[:32] + hashlib.sha256(out[:32] + out[64:]).digest() + out[64:]
    dst.write_bytes(out)
    return dst


BAD_HEADERS = [
    ({"class_labels": ["a", "b"]}, "class_labels"),
    ({"class_labels": ["a", "a", "b"]}, "distinct"),
    ({"class_labels": [1, 2, 3]}, "class_labels"),
    ({"task": "regression"}, "task"),
    ({"task": "binary"}, "binary"),
    ({"task": "ranking"}, "ranking"),
    ({"feature_missing": [True]}, "feature_missing"),
    ({"feature_categorical": ["yes", "no", "no", "no"]}, "feature_categorical"),
    ({"feature_names": ["a", "b", "a", "c"]}, "feature_names has duplicates"),
]


@pytest.mark.parametrize("changes, needle", BAD_HEADERS)
def test_contradictory_metadata_is_refused_in_one_line(families, tmp_path, changes, needle):
    from coldbrew.engine import load_predictor

    with pytest.raises(ModelFormatError, match=re.escape(needle)) as info:  # the writer may refuse it first
        path = _rewrite_header(families["multiclass"].brew, tmp_path / "bad.brew", **changes)
        create_app(load_predictor(path))
    assert "\n" not in str(info.value)


def test_task_header_is_read_when_present(families, tmp_path):
    """A 2-class model whose file says multiclass (e.g. a softmax over 2 classes) answers every probability."""
    from coldbrew.engine import load_predictor

    family = families["binary"]
    path = _rewrite_header(family.brew, tmp_path / "m.brew", task="multiclass")
    body = call(create_app(load_predictor(path, allow_pickle=True)), "POST", "/predict", family.row(0))[2]
    p1 = float(family.est.predict_proba(family.X[:1])[0, 1])
    assert body["probabilities"] == {"malignant": 1 - p1, "benign": p1}


def test_app_holds_no_model_specific_constant():
    """Nothing in coldbrew/app names the study's labels, features or data set."""
    from coldbrew.experiment.dataset import CLASS_LABELS, FEATURES

    app_dir = Path(__file__).resolve().parents[2] / "coldbrew" / "app"
    phrases = [*CLASS_LABELS, "50K"]
    words = [*FEATURES, "census", "income", "adult"]
    sources = list(app_dir.glob("*.py"))
    assert len(sources) >= 5
    for source in sources:
        # HTTP's Access-Control-Max-Age header holds the word "age" too; it names no feature.
        text = source.read_text().lower().replace("access-control-max-age", "")
        for phrase in phrases:
            assert phrase.lower() not in text, f"{source.name} mentions {phrase!r}"
        for word in words:
            assert not re.search(rf"\b{word}\b", text), f"{source.name} mentions {word!r}"


# --- the Lambda handler ----------------------------------------------------------------------------------------


def _event(payload) -> dict:
    event = json.loads((EVENTS / "http-v2-predict.json").read_text())
    event["body"] = json.dumps(payload)
    return event


@pytest.mark.parametrize("name", SERVED)
def test_lambda_handler_serves_every_family(families, name, capsys):
    from lambdatools import Context, body_of

    from coldbrew.runtimes.aws_lambda import init_from_env

    family = families[name]
    handler = init_from_env({"MODEL_SOURCE": "DISK", "MODEL_URI": str(family.brew), "COLDBREW_WARMUP": "1"})
    rows = [family.row(i) for i in range(5)]
    response = handler(_event(rows), Context())
    assert response["statusCode"] == 200
    assert body_of(response) == family.expected(family.X[:5])
    one = handler(_event(rows[0]), Context())
    assert body_of(one) == family.expected(family.X[:1])[0]


def test_lambda_init_refuses_contradictory_metadata_with_one_log_line(families, tmp_path, capsys):
    from coldbrew.runtimes.aws_lambda import init_from_env

    path = _rewrite_header(families["multiclass"].brew, tmp_path / "bad.brew", task="binary")
    capsys.readouterr()
    with pytest.raises(ModelFormatError, match="binary"):
        init_from_env({"MODEL_SOURCE": "DISK", "MODEL_URI": str(path)})
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [r["event"] for r in lines] == ["coldbrew.startup_error"]
    assert "needs 2 classes" in lines[0]["error"]


def test_lambda_snapshot_hook_touches_a_regressor(families, capsys):
    from coldbrew.runtimes.aws_lambda import init_from_env

    handler = init_from_env({"MODEL_SOURCE": "DISK", "MODEL_URI": str(families["regression"].brew)})
    handler.before_snapshot()
    assert "coldbrew.before_snapshot" in capsys.readouterr().out


# --- `coldbrew serve` ------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_coldbrew_serve_answers_every_family(families):
    from coldbrew.runtimes.server_process import ServerProcess

    for name in SERVED:
        family = families[name]
        with ServerProcess(str(family.brew), env={"COLDBREW_WARMUP": "1"}) as server:
            rows = [family.row(i) for i in range(len(family.X))]
            assert server.request("POST", "/predict", rows) == (200, family.expected(family.X)), name
            assert server.request("POST", "/predict", rows[0]) == (200, family.expected(family.X[:1])[0]), name
            status, doc = server.request("GET", "/openapi.json")
            assert status == 200 and tuple(doc["components"]["schemas"]["Row"]["properties"]) == family.features


@pytest.mark.integration
def test_coldbrew_serve_refuses_contradictory_metadata_in_one_line(families, tmp_path):
    path = _rewrite_header(families["multiclass"].brew, tmp_path / "bad.brew", class_labels=["only", "two"])
    result = subprocess.run(
        [sys.executable, "-m", "coldbrew", "serve", str(path), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1  # docs/serving.md: refused before anything is served, exit status 1
    assert "Traceback" not in result.stderr and "class_labels" in result.stderr
