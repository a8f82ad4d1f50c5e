"""Issue #22's acceptance on the real servers: request shapes, CORS and the example request.

- ``{"instances": [[34, 261799, 11, 0, 0, 56]]}`` sent to a real ``coldbrew serve`` of the study model answers what
  the named-field request answers (in a list, as for any batch); so does the bare positional row (one result);
  the same bodies through ``coldbrew.aws.handler`` with an API Gateway (HTTP API v2) event, in a fresh process.
- ``coldbrew serve --cors ORIGIN``: an OPTIONS preflight over HTTP gets Access-Control-Allow-Origin/-Methods/
  -Headers/-Max-Age, a POST from that origin gets Access-Control-Allow-Origin; without ``--cors``, OPTIONS is a 405.
- ``coldbrew serve`` prints a ``try: curl ...`` line whose body the server accepts.
"""

from __future__ import annotations

import http.client
import json
import os
import shlex
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
from lambdatools import load_event

from coldbrew.experiment.dataset import STUDY_PAYLOAD
from coldbrew.runtimes.server_process import ServerProcess

pytestmark = pytest.mark.integration

ROW = [34, 261799, 11, 0, 0, 56]  # the study's payload in the model's feature order (the acceptance)
ORIGIN = "https://app.example.com"


@pytest.fixture(scope="module")
def server(tiny_brew):
    with ServerProcess(tiny_brew, args=("--cors", ORIGIN, "--cors", "http://a.test,http://b.test")) as proc:
        yield proc


def test_the_payload_is_the_study_payload_by_position():
    assert dict(zip(STUDY_PAYLOAD, ROW, strict=True)) == STUDY_PAYLOAD


def test_instances_answer_what_named_fields_answer(server):
    status, named = server.request("POST", "/predict", STUDY_PAYLOAD)
    assert status == 200 and named["prediction"] in ("<=$50K", ">$50K")
    assert server.request("POST", "/predict", {"instances": [ROW]}) == (200, [named])
    assert server.request("POST", "/predict", {"instances": [STUDY_PAYLOAD, ROW[:5]]})[0] == 400
    assert server.request("POST", "/predict", ROW) == (200, named)
    assert server.request("POST", "/predict", [ROW, ROW]) == (200, [named, named])


def test_instances_through_the_lambda_handler_answer_what_named_fields_answer(tiny_brew):
    event = load_event("http-v2-predict.json")
    events = [{**event, "body": json.dumps(body)} for body in (STUDY_PAYLOAD, {"instances": [ROW]}, ROW)]
    code = (
        "import json, sys\n"
        "from coldbrew.aws import handler\n"
        "class Context:\n    aws_request_id = 'r'\n    function_name = 'f'\n"
        "for event in json.load(sys.stdin):\n    print(json.dumps(handler(event, Context())))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODEL_", "COLDBREW_"))}
    result = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(events),
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "MODEL_SOURCE": "DISK", "MODEL_URI": str(tiny_brew)},
    )
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{"statusCode"')]
    assert [a["statusCode"] for a in answers] == [200, 200, 200], answers
    named, instances, bare = (json.loads(a["body"]) for a in answers)
    assert instances == [named] and bare == named


def raw_request(server, method: str, path: str, headers: dict, body: bytes | None = None):
    url = urlsplit(server.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize("origin", [ORIGIN, "http://b.test"])
def test_a_preflight_over_http_gets_the_cors_headers(server, origin):
    status, headers, body = raw_request(
        server,
        "OPTIONS",
        "/predict",
        {"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"},
    )
    assert status == 204 and body == b""
    assert headers["access-control-allow-origin"] == origin
    assert "POST" in headers["access-control-allow-methods"].split(", ")
    assert "content-type" in headers["access-control-allow-headers"].lower()
    assert int(headers["access-control-max-age"]) > 0


def test_a_cross_origin_post_gets_the_origin_and_others_do_not(server):
    body = json.dumps(STUDY_PAYLOAD).encode()
    base = {"Content-Type": "application/json"}
    status, headers, _ = raw_request(server, "POST", "/predict", {**base, "Origin": ORIGIN}, body)
    assert status == 200 and headers["access-control-allow-origin"] == ORIGIN
    status, headers, _ = raw_request(server, "POST", "/predict", {**base, "Origin": "https://evil.example"}, body)
    assert status == 200 and "access-control-allow-origin" not in headers


def test_without_cors_options_stays_405(tiny_brew):
    with ServerProcess(tiny_brew) as plain:
        status, headers, body = raw_request(plain, "OPTIONS", "/predict", {"Origin": ORIGIN})
    assert status == 405 and headers["allow"] == "POST"
    assert not any(name.startswith("access-control-") for name in headers)


def test_a_cors_value_that_is_not_an_origin_stops_serve_with_one_line(tiny_brew):
    result = subprocess.run(
        [sys.executable, "-m", "coldbrew", "serve", str(tiny_brew), "--port", "0", "--cors", "app.example.com"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "not an origin" in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_serve_prints_an_example_request_the_server_accepts(server):
    [line] = [line for line in server.banner if line.startswith("try: ")]
    words = shlex.split(line[len("try: ") :])
    assert words[:2] == ["curl", "-s"] and words[2] == server.url.rstrip("/") + "/predict"
    example = json.loads(words[words.index("-d") + 1])
    assert list(example) == list(STUDY_PAYLOAD)
    status, answer = server.request("POST", "/predict", example)
    assert status == 200 and answer["prediction"] in ("<=$50K", ">$50K")
