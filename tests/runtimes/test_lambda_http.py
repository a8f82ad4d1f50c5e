"""coldbrew's Lambda event <-> WSGI translation gives what apig-wsgi gives, on every front door's events.

apig-wsgi (maintained, used by Lambda users, not written here) is the reference: for every HTTP event in
tests/events and for generated REST, ALB (single- and multi-value) and payload 2.0 events, the WSGI environ the
app sees and the response the front door gets must be equal, key for key, body byte for byte; the environ keys
apig-wsgi adds for its own users (``apig_wsgi.*``) and coldbrew's (``coldbrew.*``) are the only ones left out.
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path

import apig_wsgi
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coldbrew.runtimes import lambda_http

EVENTS = Path(__file__).resolve().parents[1] / "events"
HTTP_EVENTS = sorted(p for p in EVENTS.glob("*.json") if p.name != "warm.json")


def recording_app(status: str = "200 OK", headers=(("Content-Type", "application/json"),), body: bytes = b"{}"):
    """A WSGI app that records the environ it was given (body read) and answers ``status``/``headers``/``body``."""
    seen: list[dict] = []

    def app(environ, start_response):
        record = {
            k: v
            for k, v in environ.items()
            if not k.startswith(("apig_wsgi.", "coldbrew.")) and k not in ("wsgi.input", "wsgi.errors")
        }
        record["body"] = environ["wsgi.input"].read()
        record["errors_is_stderr"] = environ["wsgi.errors"].__class__.__name__
        seen.append(record)
        write = start_response(status, list(headers))
        write(body[:1])
        return [body[1:]]

    return app, seen


def _outcome(make, event: dict, answer: dict) -> tuple:
    app, seen = recording_app(**answer)
    try:
        response = make(app)(copy.deepcopy(event), None)
    except Exception as exc:  # noqa: BLE001 - compared: both must fail alike (a binary body on a REST API)
        response = ("raised", type(exc).__name__)
    return (seen[0] if seen else None), response


def both(event: dict, **answer) -> tuple[tuple, tuple]:
    """(environ, response) from apig-wsgi and from coldbrew for the same event and the same app answer; the
    response is ``("raised", exception class name)`` where the translation raised."""
    return _outcome(apig_wsgi.make_lambda_handler, event, answer), _outcome(
        lambda_http.make_lambda_handler, event, answer
    )


@pytest.mark.parametrize("path", HTTP_EVENTS, ids=[p.stem for p in HTTP_EVENTS])
def test_every_front_door_event_translates_as_apig_wsgi_does(path):
    event = json.loads(path.read_text())
    theirs, ours = both(event)
    assert ours == theirs
    assert ours[0]["REQUEST_METHOD"] in ("GET", "POST")  # the comparison is of real environs


ANSWERS = [
    {"status": "200 OK", "headers": (("Content-Type", "application/json"),), "body": b'{"a": 1}'},
    {"status": "404 Not Found", "headers": (("Content-Type", "text/plain; charset=utf-8"),), "body": "é".encode()},
    {"status": "200 OK", "headers": (("Content-Type", "image/png"),), "body": bytes(range(256))},
    {
        "status": "200 OK",
        "headers": (("Content-Type", "application/json"), ("Content-Encoding", "gzip")),
        "body": b"\x1f\x8b\x08\x00",
    },
    {
        "status": "302 Found",
        "headers": (("Set-Cookie", "a=1"), ("set-cookie", "b=2"), ("X-Twice", "1"), ("X-Twice", "2")),
        "body": b"",
    },
]


@pytest.mark.parametrize("answer", ANSWERS, ids=["json", "text", "binary", "encoded", "cookies"])
@pytest.mark.parametrize(
    "name", ["rest-v1-predict", "alb-predict", "alb-multivalue-root", "http-v2-predict", "function-url-predict"]
)
def test_every_response_shape_matches_apig_wsgi(name, answer):
    event = json.loads((EVENTS / f"{name}.json").read_text())
    theirs, ours = both(event, **answer)
    assert ours[1] == theirs[1]


ALB = {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:::targetgroup/x/1"}}
V2 = {"http": {"method": "POST", "sourceIp": "10.0.0.1", "protocol": "HTTP/1.1"}}
EDGE_CASES = {
    "forwarded-for list": {"httpMethod": "GET", "path": "/", "headers": {"X-Forwarded-For": "a,b"}},
    "forwarded-for spaced": {"httpMethod": "GET", "path": "/", "headers": {"x-forwarded-for": "1.2.3.4, 5.6.7.8"}},
    "forwarded headers": {
        "httpMethod": "GET",
        "path": "/",
        "multiValueHeaders": {"Host": ["a", "b"], "X-Forwarded-Proto": ["https"], "X-Forwarded-Port": ["8443"]},
    },
    "null maps": {"httpMethod": "GET", "path": "/", "headers": None, "queryStringParameters": None, "body": None},
    "percent path": {"httpMethod": "GET", "path": "/a%20b/%E9%2F%zz", "headers": {}},
    "rest query": {"httpMethod": "GET", "path": "/", "queryStringParameters": {"a b": "c&d=e/f?", "é": "%41"}},
    "rest multi query": {"httpMethod": "GET", "path": "/", "multiValueQueryStringParameters": {"k": ["1", "2 3"]}},
    "alb query": {"httpMethod": "GET", "path": "/", "requestContext": ALB, "queryStringParameters": {"q": "a%20b/c"}},
    "alb multi": {
        "httpMethod": "POST",
        "path": "/predict",
        "requestContext": ALB,
        "multiValueHeaders": {"content-type": ["text/plain", "application/json"]},
        "multiValueQueryStringParameters": {"q": ["%2F", "x y"]},
        "body": "e30=",
        "isBase64Encoded": True,
    },
    "v2 cookies": {
        "version": "2.0",
        "rawPath": "/x%2Fy",
        "rawQueryString": "a=1&b=%20",
        "cookies": ["a=1", "b=2"],
        "headers": {"cookie": "c=3", "content-type": "text/plain,application/json", "host": "h1,h2"},
        "requestContext": V2,
        "body": "aGk=",
        "isBase64Encoded": True,
    },
}


@pytest.mark.parametrize("name", EDGE_CASES)
def test_edge_cases_translate_as_apig_wsgi_does(name):
    theirs, ours = both(EDGE_CASES[name])
    assert ours == theirs
    assert isinstance(ours[1], dict)  # translated, not refused


TEXT = st.sampled_from(["203.0.113.1, 10.0.0.1", "a,b", "%41%2F%zz", "a b+c&d=e", "é", ""]) | st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12
)
NAMES = st.sampled_from(
    ["Content-Type", "content-type", "Host", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Port", "Cookie"]
) | st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,10}", fullmatch=True)
PATHS = st.from_regex(r"/[A-Za-z0-9/_.~%-]{0,20}", fullmatch=True) | st.builds(lambda t: "/" + t, TEXT)
VALUE_LISTS = st.lists(TEXT, min_size=1, max_size=3)


@st.composite
def events(draw) -> dict:
    kind = draw(st.sampled_from(["rest", "alb", "alb-multi", "v2"]))
    body = draw(st.binary(max_size=40))
    encoded = draw(st.booleans())
    text_body = base64.b64encode(body).decode() if encoded else body.decode("latin-1")
    method = draw(st.sampled_from(["GET", "POST", "HEAD", "PUT"]))
    if kind == "v2":
        return {
            "version": "2.0",
            "rawPath": draw(PATHS),
            "rawQueryString": draw(TEXT),
            "cookies": draw(st.lists(TEXT, max_size=2)),
            "headers": draw(st.dictionaries(NAMES, TEXT, max_size=5)),
            "requestContext": {"http": {"method": method, "sourceIp": "10.0.0.1", "protocol": "HTTP/1.1"}},
            "body": text_body,
            "isBase64Encoded": encoded,
        }
    event: dict = {"httpMethod": method, "path": draw(PATHS), "body": text_body, "isBase64Encoded": encoded}
    if kind == "alb" or kind == "alb-multi":
        event["requestContext"] = {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:::targetgroup/x/1"}}
    if kind == "alb-multi" or (kind == "rest" and draw(st.booleans())):
        event["multiValueHeaders"] = draw(st.dictionaries(NAMES, VALUE_LISTS, max_size=5))
        event["multiValueQueryStringParameters"] = draw(st.none() | st.dictionaries(TEXT, VALUE_LISTS, max_size=3))
    else:
        event["headers"] = draw(st.none() | st.dictionaries(NAMES, TEXT, max_size=5))
        event["queryStringParameters"] = draw(st.none() | st.dictionaries(TEXT, TEXT, max_size=3))
    return event


@settings(max_examples=300, deadline=None)
@given(event=events(), answer=st.sampled_from(ANSWERS))
def test_generated_events_translate_as_apig_wsgi_does(event, answer):
    theirs, ours = both(event, **answer)
    assert ours == theirs


def test_an_unknown_version_is_a_value_error_like_apig_wsgi():
    event = {"version": "3.0", "requestContext": {}}
    with pytest.raises(ValueError):
        apig_wsgi.make_lambda_handler(recording_app()[0])(event, None)
    with pytest.raises(ValueError, match="3.0"):
        lambda_http.make_lambda_handler(recording_app()[0])(event, None)
