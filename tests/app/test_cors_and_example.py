"""CORS in the app (``create_app(cors=...)``, ``coldbrew serve --cors``) and the model's own example request.

In-process against the real engine; tests/runtimes/test_serve_shapes_cors.py checks the same over HTTP with a real
``coldbrew serve``.
"""

from __future__ import annotations

import io
from wsgiref.util import setup_testing_defaults

import pytest
from families import SERVED
from test_app import call

from coldbrew.app import create_app
from coldbrew.app.contract import contract_of, example_request
from coldbrew.app.wsgi import cors_origin
from coldbrew.errors import ConfigError
from coldbrew.experiment.dataset import FEATURES, STUDY_PAYLOAD

ORIGIN = "https://app.example.com"


@pytest.fixture(scope="module")
def predictor(tiny_model):
    from coldbrew.engine import load_predictor

    return load_predictor(tiny_model, allow_pickle=True)


def raw_call(app, method, path, headers):
    """``(status, headers)`` of a request without a body (a preflight's 204 has no Content-Type)."""
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "wsgi.input": io.BytesIO(b""), **headers}
    setup_testing_defaults(environ)
    got = {}

    def start_response(status, response_headers, exc_info=None):
        got["status"], got["headers"] = int(status.split()[0]), dict(response_headers)

    assert b"".join(app(environ, start_response)) == b""
    return got["status"], got["headers"]


PREFLIGHT = {"HTTP_ORIGIN": ORIGIN, "HTTP_ACCESS_CONTROL_REQUEST_METHOD": "POST"}


def test_a_preflight_from_an_allowed_origin_gets_the_cors_headers(predictor):
    app = create_app(predictor, cors=(ORIGIN, "http://localhost:3000"))
    status, headers = raw_call(app, "OPTIONS", "/predict", PREFLIGHT)
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    assert set(headers["Access-Control-Allow-Methods"].split(", ")) == {"POST", "OPTIONS"}
    assert headers["Access-Control-Allow-Headers"].lower() == "content-type"
    assert int(headers["Access-Control-Max-Age"]) > 0
    assert headers["Vary"] == "Origin"


def test_a_preflight_from_another_origin_gets_no_permission(predictor):
    app = create_app(predictor, cors=(ORIGIN,))
    status, headers = raw_call(app, "OPTIONS", "/predict", {**PREFLIGHT, "HTTP_ORIGIN": "https://evil.example"})
    assert status == 204
    assert not any(name.startswith("Access-Control-") for name in headers)


def test_a_wildcard_allows_any_origin(predictor):
    app = create_app(predictor, cors=("*",))
    assert raw_call(app, "OPTIONS", "/", PREFLIGHT)[1]["Access-Control-Allow-Origin"] == "*"
    assert (
        call(app, "POST", "/predict", STUDY_PAYLOAD, headers={"HTTP_ORIGIN": ORIGIN})[1]["Access-Control-Allow-Origin"]
        == "*"
    )


def test_answers_carry_the_origin_only_for_an_allowed_origin(predictor):
    app = create_app(predictor, cors=(ORIGIN,))
    plain = create_app(predictor)
    status, headers, body = call(app, "POST", "/predict", STUDY_PAYLOAD, headers={"HTTP_ORIGIN": ORIGIN})
    assert status == 200 and headers["Access-Control-Allow-Origin"] == ORIGIN
    assert body == call(plain, "POST", "/predict", STUDY_PAYLOAD)[2]
    _, headers, _ = call(app, "POST", "/predict", STUDY_PAYLOAD, headers={"HTTP_ORIGIN": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in headers and headers["Vary"] == "Origin"
    _, headers, _ = call(app, "POST", "/predict", {"age": 1}, headers={"HTTP_ORIGIN": ORIGIN})  # errors too
    assert headers["Access-Control-Allow-Origin"] == ORIGIN


def test_without_cors_options_is_still_405_with_allow(predictor):
    status, headers, body = call(create_app(predictor), "OPTIONS", "/predict", headers=PREFLIGHT)
    assert status == 405 and headers["Allow"] == "POST" and "OPTIONS" in body["error"]
    assert not any(name.startswith("Access-Control-") for name in headers)


@pytest.mark.parametrize(
    "text",
    ["example.com", "ftp://example.com", "https://example.com/path", "https://a.com, https://b.com", "", "https://"],
)
def test_an_origin_that_is_not_one_is_refused(predictor, text):
    with pytest.raises(ConfigError, match="not an origin"):
        cors_origin(text)
    with pytest.raises(ConfigError):
        create_app(predictor, cors=(text,))


@pytest.mark.parametrize("text", ["https://App.Example.com", "http://localhost:3000", "https://a.example/", "*"])
def test_an_origin_is_accepted(text):
    assert cors_origin(text) in {"https://app.example.com", "http://localhost:3000", "https://a.example", "*"}


# --- the model's own example request ------------------------------------------------------------------------


def test_the_study_model_example_is_its_features(predictor):
    example = example_request(contract_of(predictor))
    assert tuple(example) == FEATURES
    status, _, body = call(create_app(predictor), "POST", "/predict", example)
    assert status == 200 and body["prediction"] in ("<=$50K", ">$50K")


@pytest.mark.parametrize(
    "name, fmt", [*((n, "brew") for n in SERVED), *((n, "pickle") for n in SERVED), ("nullable", "pickle")]
)
def test_every_family_accepts_its_own_example(families, name, fmt):
    from coldbrew.engine import load_predictor

    family = families[name]
    path = family.brew if fmt == "brew" else family.pickle
    assert path is not None
    predictor = load_predictor(path, allow_pickle=True)
    example = example_request(contract_of(predictor))
    assert list(example) == list(family.features)
    status, _, body = call(create_app(predictor), "POST", "/predict", example)
    assert status == 200, body
    import numpy as np

    assert body == family.expected(np.zeros((1, len(family.features))), fmt)[0]
