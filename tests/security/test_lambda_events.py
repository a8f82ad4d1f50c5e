"""Attacks on `coldbrew.aws.handler` with malformed Lambda events: always a 400 naming the problem.

Lambda passes the handler whatever JSON a caller (API Gateway, a Function URL, an ALB, or anyone with
``lambda:InvokeFunction``) sent. Each event here starts from a valid one in tests/events/ and breaks one thing;
the handler must answer 400 with the app's JSON error shape, in the front door's response shape — never raise
(KeyError, AttributeError, binascii.Error, RecursionError...), never answer 500 (issue #10, part 4).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from proctools import terminate

from coldbrew.runtimes.aws_lambda import init_from_env

EVENTS = Path(__file__).parent.parent / "events"


class Context:
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    function_name = "coldbrew-security"


def event(name: str, **changes) -> dict:
    """A valid event from tests/events/ with top-level ``changes`` applied (a value of ``...`` deletes the key)."""
    out = copy.deepcopy(json.loads((EVENTS / name).read_text()))
    for key, value in changes.items():
        if value is ...:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def with_context(name: str, http_changes: dict | None = None, **context_changes) -> dict:
    """A valid event whose requestContext (or requestContext.http) is changed."""
    out = event(name)
    for key, value in context_changes.items():
        if value is ...:
            out["requestContext"].pop(key, None)
        else:
            out["requestContext"][key] = value
    for key, value in (http_changes or {}).items():
        if value is ...:
            out["requestContext"]["http"].pop(key, None)
        else:
            out["requestContext"]["http"][key] = value
    return out


@pytest.fixture(scope="module")
def handler(tiny_brew):
    return init_from_env({"MODEL_SOURCE": "DISK", "MODEL_URI": str(tiny_brew)})


def answer(handler, bad) -> tuple[dict, dict]:
    """Invoke; the response and its decoded JSON body."""
    response = handler(bad, Context())
    assert isinstance(response, dict) and isinstance(response.get("body"), str), response
    assert response.get("isBase64Encoded") is False
    return response, json.loads(response["body"])


NOT_OBJECTS = [None, [], [{"httpMethod": "GET"}], "GET /", 42, 1.5, True]


@pytest.mark.parametrize("bad", NOT_OBJECTS, ids=repr)
def test_an_event_that_is_not_an_object(handler, bad):
    response, body = answer(handler, bad)
    assert response["statusCode"] == 400
    assert "event must be a JSON object" in body["error"]


@pytest.mark.parametrize("bad", [{}, {"Records": []}, {"path": "/predict"}, {"coldbrew": "cold"}], ids=repr)
def test_an_unknown_shape(handler, bad):
    response, body = answer(handler, bad)
    assert response["statusCode"] == 400
    assert "unsupported event" in body["error"]


# (event, the words the error must contain)
MALFORMED = {
    # API Gateway REST (payload 1.0)
    "rest: no path": (event("rest-v1-predict.json", path=...), "path is missing"),
    "rest: path not a string": (event("rest-v1-predict.json", path=["/predict"]), "path must be a string"),
    "rest: no httpMethod": (event("rest-v1-predict.json", httpMethod=...), "httpMethod is missing"),
    "rest: httpMethod a number": (event("rest-v1-predict.json", httpMethod=7), "httpMethod must be a string"),
    "rest: headers a list": (event("rest-v1-predict.json", headers=["content-type"]), "headers must be an object"),
    "rest: header value a number": (
        event("rest-v1-predict.json", headers={"content-type": 5}),
        "headers['content-type'] must be a string",
    ),
    "rest: multiValueHeaders value a string": (
        event("rest-v1-predict.json", multiValueHeaders={"content-type": "application/json"}),
        "multiValueHeaders['content-type'] must be a non-empty list",
    ),
    "rest: multiValueHeaders value empty": (
        event("rest-v1-predict.json", multiValueHeaders={"content-type": []}),
        "non-empty list",
    ),
    "rest: query a string": (event("rest-v1-predict.json", queryStringParameters="a=1"), "queryStringParameters"),
    "rest: body an object": (event("rest-v1-predict.json", body={"age": 1}), "body must be a string"),
    "rest: isBase64Encoded a string": (
        event("rest-v1-predict-base64.json", isBase64Encoded="true"),
        "isBase64Encoded must be true or false",
    ),
    "rest: bad base64": (event("rest-v1-predict-base64.json", body="not*base64!"), "not valid base64"),
    "rest: bad base64 padding": (event("rest-v1-predict-base64.json", body="YWJjZA"), "not valid base64"),
    "rest: requestContext a string": (event("rest-v1-predict.json", requestContext="x"), "requestContext must be"),
    # HTTP API and Function URLs (payload 2.0)
    "v2: no requestContext.http": (with_context("http-v2-predict.json", http=...), "requestContext.http is missing"),
    "v2: requestContext.http a list": (with_context("http-v2-predict.json", http=[]), "requestContext.http must be"),
    "v2: no method": (with_context("http-v2-predict.json", {"method": ...}), "requestContext.http.method is missing"),
    "v2: no sourceIp": (with_context("function-url-predict.json", {"sourceIp": ...}), "sourceIp is missing"),
    "v2: protocol a number": (with_context("http-v2-predict.json", {"protocol": 1.1}), "protocol must be a string"),
    "v2: no rawPath": (event("http-v2-predict.json", rawPath=...), "rawPath is missing"),
    "v2: no rawQueryString": (event("function-url-predict.json", rawQueryString=...), "rawQueryString is missing"),
    "v2: no headers": (event("http-v2-predict.json", headers=...), "headers is missing"),
    "v2: headers a string": (event("http-v2-predict.json", headers="content-type: x"), "headers must be an object"),
    "v2: header value null": (event("function-url-predict.json", headers={"content-type": None}), "must be a string"),
    "v2: cookies null": (event("http-v2-predict.json", cookies=None), "cookies must be a list"),
    "v2: cookies numbers": (event("http-v2-predict.json", cookies=[1, 2]), "cookies must be a list"),
    "v2: bad base64": (event("http-v2-predict-base64.json", body="%%%%"), "not valid base64"),
    "v2: unknown version": (event("http-v2-predict.json", version="3.0"), "unsupported payload format version"),
    "v2: body a number": (event("function-url-predict.json", body=12), "body must be a string"),
    # ALB
    "alb: bad base64": (event("alb-predict-base64.json", body="eyJhZ"), "not valid base64"),
    "alb: headers a list": (event("alb-predict.json", headers=[["content-type", "application/json"]]), "headers"),
    "alb: no path": (event("alb-predict.json", path=...), "path is missing"),
    "alb multi-value: value a string": (
        event("alb-multivalue-root.json", multiValueHeaders={"host": "x"}),
        "multiValueHeaders['host']",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_http_event_is_400_naming_the_problem(handler, case):
    bad, words = MALFORMED[case]
    response, body = answer(handler, copy.deepcopy(bad))
    assert response["statusCode"] == 400
    assert words in body["error"]
    assert set(body) == {"error", "field", "index"}
    # Answered in the front door's own shape, so API Gateway / the ALB pass the 400 on instead of a 502.
    if "multiValueHeaders" in bad:
        assert response["multiValueHeaders"]["Content-Type"] == ["application/json"]
    else:
        assert response["headers"]["Content-Type"] == "application/json"
    if isinstance(bad.get("requestContext"), dict) and "elb" in bad["requestContext"]:
        assert response["statusDescription"] == "400 Bad Request"


def test_valid_events_still_pass(handler):
    for name in [
        "rest-v1-predict.json",
        "rest-v1-predict-base64.json",
        "http-v2-predict-base64.json",
        "function-url-predict.json",
        "alb-predict-base64.json",
        "alb-multivalue-root.json",
    ]:
        response = handler(event(name), Context())
        assert response["statusCode"] == 200, name


def test_a_deeply_nested_warm_up_body_is_400(tiny_brew):
    """Through the opened warm route (with its secret), where the body is parsed at all."""
    warm = init_from_env({"MODEL_SOURCE": "DISK", "MODEL_URI": str(tiny_brew), "COLDBREW_WARM_SECRET": "s3cret"})
    nested = event("http-v2-warm.json", body="[" * 100_000 + "]" * 100_000)
    nested["headers"] = {**nested.get("headers", {}), "x-coldbrew-warm-secret": "s3cret"}
    response, body = answer(warm, nested)
    assert response["statusCode"] == 400
    assert body["field"] == "hold_ms"


def test_a_deeply_nested_predict_body_is_400(handler):
    response, body = answer(handler, event("http-v2-predict.json", body='{"a":' * 100_000 + "1" + "}" * 100_000))
    assert response["statusCode"] == 400 and body["error"]


def test_the_invocation_log_names_the_problem(handler, capsys):
    capsys.readouterr()
    handler({"Records": []}, Context())
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["kind"] == "bad_event" and record["status"] == 400 and "unsupported event" in record["error"]


@pytest.mark.integration
def test_malformed_events_under_the_real_awslambdaric(tiny_brew, tmp_path):
    """The same attacks through `python -m awslambdaric coldbrew.aws.handler`: answers, never invocation errors."""

    import lambdatools  # tests/ is on sys.path (the rootdir conftest.py); its minimal Runtime API

    api = lambdatools.RuntimeAPI()
    nested_warm = event("http-v2-warm.json", body="[" * 100_000 + "]" * 100_000)
    nested_warm["headers"] = {**nested_warm.get("headers", {}), "x-coldbrew-warm-secret": "s3cret"}
    with open(tmp_path / "runtime.log", "wb") as log:
        proc = lambdatools.start_runtime(
            api, tmp_path, log, MODEL_SOURCE="DISK", MODEL_URI=str(tiny_brew), COLDBREW_WARM_SECRET="s3cret"
        )
        try:
            for bad in [
                [],
                "GET /",
                {"Records": []},
                event("http-v2-predict-base64.json", body="%%%%"),
                event("rest-v1-predict.json", headers=["content-type"]),
                nested_warm,
            ]:
                response = api.invoke(bad)  # raises on an invocation error
                assert response["statusCode"] == 400, response
                assert json.loads(response["body"])["error"]
            assert api.invoke(event("http-v2-predict.json"))["statusCode"] == 200
        finally:
            terminate(proc)
            api.close()
