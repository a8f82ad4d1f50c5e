"""The WSGI app's HTTP contract and every bad-input case, in-process against the real engine."""

from __future__ import annotations

import io
import json
import logging
import pickle
from wsgiref.util import setup_testing_defaults

import pytest

from coldbrew.app import create_app
from coldbrew.experiment.dataset import FEATURES, STUDY_PAYLOAD


@pytest.fixture(scope="module")
def predictor(tiny_model):
    from coldbrew.engine import load_predictor

    return load_predictor(tiny_model, allow_pickle=True)


@pytest.fixture(scope="module")
def sklearn_model(tiny_model):
    with open(tiny_model, "rb") as fh:
        return pickle.load(fh)


@pytest.fixture(scope="module")
def app(predictor):
    return create_app(predictor, max_body_bytes=4096)


NO_BODY = object()


def call(app, method, path, body=NO_BODY, content_type="application/json", headers=None):
    """Call a WSGI app in-process; returns ``(status, headers, decoded JSON or None)``."""
    raw = body if isinstance(body, bytes) else (b"" if body is NO_BODY else json.dumps(body).encode())
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "wsgi.input": io.BytesIO(raw)}
    if body is not NO_BODY:
        environ["CONTENT_LENGTH"] = str(len(raw))
    if content_type is not None:
        environ["CONTENT_TYPE"] = content_type
    environ.update(headers or {})
    setup_testing_defaults(environ)
    captured = {}

    def start_response(status, response_headers, exc_info=None):
        captured["status"] = int(status.split()[0])
        captured["headers"] = dict(response_headers)

    out = b"".join(app(environ, start_response))
    if method != "HEAD":
        assert int(captured["headers"]["Content-Length"]) == len(out)
    assert captured["headers"]["Content-Type"] == "application/json"
    return captured["status"], captured["headers"], (json.loads(out) if out else None)


def study_flask_result(model, row: dict) -> dict:
    """What the study's Flask app computed for one row: ``predict_proba`` on a one-row DataFrame."""
    import pandas as pd

    proba = model.predict_proba(pd.DataFrame([row], columns=list(FEATURES)))[0][1]
    return {"prediction": ">$50K" if proba >= 0.5 else "<=$50K", "probability": float(proba)}


# --- the contract -------------------------------------------------------------------------------------------


def test_health(app):
    assert call(app, "GET", "/")[::2] == (200, {"success": True})


def test_predict_study_payload_matches_sklearn_exactly(app, sklearn_model):
    status, _, body = call(app, "POST", "/predict", STUDY_PAYLOAD)
    assert status == 200
    assert body == study_flask_result(sklearn_model, STUDY_PAYLOAD)
    assert type(body["probability"]) is float


def test_batch_keeps_order_and_matches_single_rows(app, sklearn_model):
    rows = [
        STUDY_PAYLOAD,
        {**STUDY_PAYLOAD, "capital_gain": 15024, "education_num": 16},
        {**STUDY_PAYLOAD, "age": 19.5, "hours_per_week": 10},
    ]
    status, _, body = call(app, "POST", "/predict", rows)
    assert status == 200
    assert body == [study_flask_result(sklearn_model, row) for row in rows]
    assert {r["prediction"] for r in body} == {">$50K", "<=$50K"}, "fixture rows should cover both classes"


def test_prediction_threshold_is_probability_at_least_half(app):
    rows = [{**STUDY_PAYLOAD, "capital_gain": gain} for gain in range(0, 20000, 1000)]
    status, _, body = call(app, "POST", "/predict", rows)
    assert status == 200
    for result in body:
        assert (result["prediction"] == ">$50K") == (result["probability"] >= 0.5)


def test_field_order_does_not_matter(app):
    reordered = dict(reversed(list(STUDY_PAYLOAD.items())))
    assert call(app, "POST", "/predict", reordered)[2] == call(app, "POST", "/predict", STUDY_PAYLOAD)[2]


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON"])
def test_json_content_type_variants(app, content_type):
    assert call(app, "POST", "/predict", STUDY_PAYLOAD, content_type=content_type)[0] == 200


def test_openapi_lists_the_model_features(app):
    status, _, doc = call(app, "GET", "/openapi.json")
    assert status == 200
    assert doc["openapi"].startswith("3.")
    row = doc["components"]["schemas"]["Row"]
    assert tuple(row["properties"]) == FEATURES
    assert row["required"] == list(FEATURES)
    assert row["additionalProperties"] is False
    assert set(doc["paths"]) == {"/", "/predict", "/openapi.json"}


def test_head_on_a_get_route_has_no_body(app):
    status, headers, body = call(app, "HEAD", "/")
    assert (status, body) == (200, None)
    assert headers["Content-Length"] == str(len(b'{"success":true}')), "HEAD reports the GET body's length"


# --- routing errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/nope", "/predict/", "/openapi"])
def test_unknown_route_is_json_404(app, path):
    status, _, body = call(app, "GET", path)
    assert status == 404
    assert path in body["error"] and body["field"] is None and body["index"] is None


@pytest.mark.parametrize(
    "method, path, allow",
    [
        ("GET", "/predict", "POST"),
        ("PUT", "/predict", "POST"),
        ("POST", "/", "GET, HEAD"),
        ("DELETE", "/openapi.json", "GET, HEAD"),
    ],
)
def test_wrong_method_is_json_405_with_allow(app, method, path, allow):
    status, headers, body = call(app, method, path, STUDY_PAYLOAD)
    assert status == 405
    assert headers["Allow"] == allow
    assert method in body["error"]


# --- bad input: 4xx naming the field and row --------------------------------------------------------------


def bad(app, body, *, status=400, content_type="application/json", **environ):
    got_status, _, got = call(app, "POST", "/predict", body, content_type=content_type, headers=environ)
    assert got_status == status, got
    assert set(got) == {"error", "field", "index"} and got["error"]
    return got


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/jsonx"])
def test_wrong_content_type_is_415(app, content_type):
    bad(app, STUDY_PAYLOAD, status=415, content_type=content_type)


@pytest.mark.parametrize("raw", [b"", b"   ", b"{", b"age=34", b"\xff\xfe\x00garbage", b"{'age': 34}", b'{"age": 34,}'])
def test_not_json_is_400(app, raw):
    bad(app, raw)


def test_deeply_nested_json_is_400(predictor):
    depth = 200_000
    bad(create_app(predictor), b"[" * depth + b"]" * depth)


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e999"])
def test_nan_and_infinity_are_rejected(app, literal):
    raw = json.dumps(STUDY_PAYLOAD).replace('"age": 34', '"age": ' + literal.decode()).encode()
    got = bad(app, raw)
    assert got["field"] == "age" or literal.decode() in got["error"]


@pytest.mark.parametrize("value", [3.5e38, -1e300, 10**39, -(10**400)])
def test_numbers_beyond_float32_are_rejected(app, value):
    """The trees compare in float32; sklearn itself refuses values that overflow it."""
    got = bad(app, {**STUDY_PAYLOAD, "fnlwgt": value})
    assert got["field"] == "fnlwgt"


def test_float32_extremes_are_served(app):
    assert call(app, "POST", "/predict", {**STUDY_PAYLOAD, "fnlwgt": 3.4028234663852886e38, "age": -3e38})[0] == 200


@pytest.mark.parametrize(
    "value, word",
    [("34", "string"), (True, "boolean"), (False, "boolean"), (None, "null"), ([34], "array"), ({"v": 34}, "object")],
)
def test_non_numbers_are_rejected_naming_the_field(app, value, word):
    got = bad(app, {**STUDY_PAYLOAD, "age": value})
    assert got["field"] == "age" and got["index"] is None
    assert word in got["error"]


def test_missing_field(app):
    row = {k: v for k, v in STUDY_PAYLOAD.items() if k != "capital_loss"}
    got = bad(app, row)
    assert got["field"] == "capital_loss" and "missing" in got["error"]


def test_unknown_extra_field_is_rejected(app):
    got = bad(app, {**STUDY_PAYLOAD, "income": ">50K"})
    assert got["field"] == "income" and "unknown" in got["error"]


def test_batch_errors_name_the_row_index(app):
    rows = [STUDY_PAYLOAD, STUDY_PAYLOAD, {**STUDY_PAYLOAD, "hours_per_week": "many"}]
    got = bad(app, rows)
    assert (got["field"], got["index"]) == ("hours_per_week", 2)
    assert "row 2" in got["error"]


def test_batch_row_that_is_not_an_object(app):
    got = bad(app, [STUDY_PAYLOAD, 7])
    assert got["index"] == 1 and got["field"] is None


@pytest.mark.parametrize("payload", [[], 34, "x", None, True])
def test_body_must_be_object_or_non_empty_list(app, payload):
    bad(app, payload)


def test_oversize_body_is_413_without_reading_it(app):
    class Unreadable(io.BytesIO):
        def read(self, *a):
            raise AssertionError("body must not be read")

    got = bad(app, STUDY_PAYLOAD, status=413, CONTENT_LENGTH="5000", **{"wsgi.input": Unreadable()})
    assert "4096" in got["error"]


def test_chunked_body_over_the_limit_is_413(app):
    raw = json.dumps([STUDY_PAYLOAD] * 60).encode()
    assert len(raw) > 4096
    status, _, got = call_chunked(app, raw)
    assert status == 413


def test_chunked_body_within_the_limit_is_served(app):
    assert call_chunked(app, json.dumps(STUDY_PAYLOAD).encode())[0] == 200


def test_body_without_length_on_a_server_that_cannot_terminate_it_is_411(app):
    environ = {"wsgi.input_terminated": False, "wsgi.input": io.BytesIO(b"{}")}
    status, _, got = call(app, "POST", "/predict", headers=environ)
    assert status == 411


def call_chunked(app, raw):
    """A request with no Content-Length, as gunicorn passes a chunked upload (``wsgi.input_terminated``)."""
    return call(app, "POST", "/predict", headers={"wsgi.input": io.BytesIO(raw), "wsgi.input_terminated": True})


def test_invalid_content_length_is_400(app):
    bad(app, STUDY_PAYLOAD, CONTENT_LENGTH="12abc")


# --- unexpected failures --------------------------------------------------------------------------------------


class Exploding:
    feature_names = FEATURES
    classes = (0, 1)
    format = kind = "test"

    def predict(self, X):
        raise RuntimeError("secret internal detail")

    predict_proba = predict


def test_unexpected_exception_is_json_500_without_traceback(caplog):
    app = create_app(Exploding())
    with caplog.at_level(logging.ERROR, logger="coldbrew.app"):
        status, _, body = call(app, "POST", "/predict", STUDY_PAYLOAD)
    assert status == 500
    assert body == {"error": "internal server error", "field": None, "index": None}
    assert "secret internal detail" in caplog.text, "the traceback goes to the log, not to the client"
