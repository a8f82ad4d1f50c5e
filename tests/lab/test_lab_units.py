"""Direct unit tests of the lab's pieces, no processes: the HTTP request parser and response encoder,
the front doors' event builders and response mappers, and the scheduler with an in-process runtime."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import pytest

from coldbrew.lab.config import LabConfig
from coldbrew.lab.environment import Environment, InitFailure
from coldbrew.lab.events import (
    MalformedResponse,
    build_event,
    is_raw_invoke,
    map_response,
)
from coldbrew.lab.httpserver import (
    MalformedHttpRequest,
    PayloadTooLarge,
    Request,
    Response,
    UnsafeHeader,
    encode_response,
    read_request,
)
from coldbrew.lab.scheduler import Scheduler, Throttled
from coldbrew.lab.stats import Stats


# ---- the HTTP request parser ------------------------------------------------------------------------
def parse(data: bytes, max_body: int = 1024) -> Request | None:
    async def go():
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return await read_request(reader, "10.0.0.1", max_body)

    return asyncio.run(go())


def test_parser_reads_headers_in_order_and_the_body():
    request = parse(b"POST /a/b?x=1&x=2 HTTP/1.1\r\nHost: h\r\nX-Rep: 1\r\nx-rep: 2\r\nContent-Length: 3\r\n\r\nabc")
    assert (request.method, request.path, request.query, request.body) == ("POST", "/a/b", "x=1&x=2", b"abc")
    assert request.headers == [("host", "h"), ("x-rep", "1"), ("x-rep", "2"), ("content-length", "3")]
    assert request.header("X-REP") == "1" and request.peer == "10.0.0.1"


def test_parser_joins_chunks_and_skips_trailers():
    request = parse(
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n"
    )
    assert request.body == b"abcde"


def test_parser_returns_none_at_end_of_stream():
    assert parse(b"") is None


@pytest.mark.parametrize(
    "data, error",
    [
        (b"GARBAGE\r\n\r\n", MalformedHttpRequest),
        (b"POST / HTTP/1.1\r\nContent-Length: 2000\r\n\r\n", PayloadTooLarge),
        (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", MalformedHttpRequest),
        (b"POST / HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n", MalformedHttpRequest),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n" + b"x" * 1024 + b"\r\n1\r\nx\r\n0\r\n\r\n",
            PayloadTooLarge,
        ),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", MalformedHttpRequest),
        (b"GET / HTTP/1.1\r\n" + b"X: 1\r\n" * 300 + b"\r\n", MalformedHttpRequest),
    ],
)
def test_parser_refuses_what_it_must(data, error):
    with pytest.raises(error):
        parse(data)


def test_encoder_refuses_header_splitting_and_sends_utf8():
    with pytest.raises(UnsafeHeader):
        encode_response(Response(200, [("X", "a\r\nY: b")]), True)
    with pytest.raises(UnsafeHeader):
        encode_response(Response(200, [("X\nY", "a")]), True)
    data = encode_response(Response(200, [("X-Name", "caf\u00e9 \u2615")], b"hi"), False)
    assert "X-Name: caf\u00e9 \u2615\r\n".encode() in data and data.endswith(b"Connection: close\r\n\r\nhi")


# ---- events -----------------------------------------------------------------------------------------
def request(body=b"", content_type="application/json", target="/p/q?a=1&a=2&b=%20x") -> Request:
    headers = [
        ("host", "example"),
        ("content-type", content_type),
        ("cookie", "c1=1; c2=2"),
        ("x-m", "1"),
        ("x-m", "2"),
    ]
    return Request("POST", target, "HTTP/1.1", headers, body, "10.1.2.3")


def test_http_api_event_is_payload_2_0():
    event = build_event("http", request(b'{"k": 1}'))
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert event["rawPath"] == "/p/q" and event["rawQueryString"] == "a=1&a=2&b=%20x"
    assert event["queryStringParameters"] == {"a": "1,2", "b": " x"} and event["cookies"] == ["c1=1", "c2=2"]
    assert event["headers"]["x-m"] == "1,2" and "cookie" not in event["headers"]
    assert event["requestContext"]["http"] == {
        "method": "POST",
        "path": "/p/q",
        "protocol": "HTTP/1.1",
        "sourceIp": "10.1.2.3",
        "userAgent": "",
    }
    assert event["body"] == '{"k": 1}' and event["isBase64Encoded"] is False


def test_binary_bodies_are_base64_in_every_event():
    for api in ("http", "rest", "url", "alb"):
        event = build_event(api, request(b"\x00\xff", "application/octet-stream"))
        assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"\x00\xff"


def test_rest_event_is_payload_1_0_with_multi_values():
    event = build_event("rest", request())
    assert event["httpMethod"] == "POST" and event["path"] == "/p/q" and event["resource"] == "/{proxy+}"
    assert event["multiValueHeaders"]["x-m"] == ["1", "2"] and event["headers"]["x-m"] == "2"
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": [" x"]}
    assert event["queryStringParameters"] == {"a": "2", "b": " x"}
    assert event["body"] is None and "version" not in event


def test_function_url_event_has_the_urls_domain():
    event = build_event("url", request(), region="eu-west-1")
    assert event["version"] == "2.0"
    assert event["requestContext"]["domainName"].endswith(".lambda-url.eu-west-1.on.aws")


def test_alb_event_keeps_the_query_encoded():
    event = build_event("alb", request())
    assert "elb" in event["requestContext"] and event["httpMethod"] == "POST"
    assert event["queryStringParameters"] == {"a": "2", "b": "%20x"} and event["body"] == ""


def test_raw_invoke_route():
    assert is_raw_invoke(Request("POST", "/2015-03-31/functions/function/invocations", "HTTP/1.1", [], b""))
    assert not is_raw_invoke(Request("GET", "/2015-03-31/functions/function/invocations", "HTTP/1.1", [], b""))
    assert not is_raw_invoke(Request("POST", "/2015-03-31/functions/function", "HTTP/1.1", [], b""))


# ---- response mapping -------------------------------------------------------------------------------
def mapped(api, result):
    return map_response(api, json.dumps(result).encode())


def test_structured_response_maps_status_headers_cookies_and_base64_body():
    response = mapped(
        "http",
        {
            "statusCode": "201",
            "headers": {"X-A": "1", "X-N": 5, "X-B": True},
            "cookies": ["s=1"],
            "isBase64Encoded": True,
            "body": base64.b64encode(b"\x01").decode(),
        },
    )
    assert response.status == 201 and response.body == b"\x01"
    assert ("X-A", "1") in response.headers and ("X-N", "5") in response.headers and ("X-B", "true") in response.headers
    assert ("Set-Cookie", "s=1") in response.headers and ("Content-Type", "application/json") in response.headers


def test_payload_2_0_wraps_any_other_json_as_a_200_body():
    for result in ({"hello": 1}, [1, 2], "text", 3):
        response = mapped("http", result)
        assert response.status == 200 and json.loads(response.body) == result


def test_rest_and_alb_take_multi_value_headers():
    for api in ("rest", "alb"):
        response = mapped(api, {"statusCode": 200, "multiValueHeaders": {"X-M": ["a", "b"]}, "body": "x"})
        assert [v for k, v in response.headers if k == "X-M"] == ["a", "b"]


@pytest.mark.parametrize(
    "api, result",
    [
        ("http", {"statusCode": 200, "headers": {"X": "a\r\nY: 1"}}),
        ("http", {"statusCode": 200, "headers": {"X\r\nY": "1"}}),
        ("http", {"statusCode": 200, "cookies": ["a\nb"]}),
        ("http", {"statusCode": 200, "cookies": "a=b"}),
        ("http", {"statusCode": "2x"}),
        ("http", {"statusCode": 42}),
        ("http", {"statusCode": True}),
        ("http", {"statusCode": 200, "isBase64Encoded": True, "body": "***"}),
        ("http", {"statusCode": 200, "isBase64Encoded": "yes", "body": ""}),
        ("http", {"statusCode": 200, "headers": [["a", "b"]]}),
        ("http", {"statusCode": 200, "headers": {"a": None}}),
        ("http", {"statusCode": 200, "body": 5}),
        ("rest", {"body": "no status"}),
        ("rest", {"statusCode": 200, "cookies": ["a=b"]}),
        ("rest", [1, 2]),
        ("alb", {"statusCode": 200, "multiValueHeaders": {"a": "b"}}),
        ("alb", "text"),
    ],
)
def test_malformed_results_raise(api, result):
    with pytest.raises(MalformedResponse):
        mapped(api, result)


def test_a_result_that_is_not_json_is_malformed():
    with pytest.raises(MalformedResponse):
        map_response("http", b"not json")


# ---- the scheduler with an in-process runtime ---------------------------------------------------------
async def http(api: str, method: str, path: str, body: bytes = b"") -> tuple[int, dict, bytes]:
    host, port = api.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, payload


class FakeLauncher:
    """Launches in-process runtimes (asyncio tasks speaking the Runtime API); ``ready`` says, per launch,
    whether the runtime ever polls /next (False: an init that never ends)."""

    def __init__(self, ready=(True,), delay_s: float = 0.0):
        self.ready, self.delay_s, self.launches, self.tasks = list(ready), delay_s, 0, []

    async def launch(self, env: dict):
        ready = self.ready[min(self.launches, len(self.ready) - 1)]
        self.launches += 1
        self.tasks.append(asyncio.get_running_loop().create_task(self.runtime(env["AWS_LAMBDA_RUNTIME_API"], ready)))
        return None, None

    async def runtime(self, api: str, ready: bool):
        if not ready:
            await asyncio.sleep(3600)
        prefix = "/2018-06-01/runtime/invocation"
        while True:
            _, headers, payload = await http(api, "GET", f"{prefix}/next")
            event = json.loads(payload)
            await asyncio.sleep(self.delay_s + event.get("sleep", 0))
            await http(
                api,
                "POST",
                f"{prefix}/{headers['lambda-runtime-aws-request-id']}/response",
                json.dumps({"echo": event}).encode(),
            )

    async def close(self):
        for task in self.tasks:
            task.cancel()


def run_scheduler(tmp_path, launcher, test, **options):
    """Run ``test(scheduler)`` on a fresh event loop with a scheduler over ``launcher``."""
    options.setdefault("report", False)
    config = LabConfig(handler="fake.handler", task_root=tmp_path, freeze=False, **options)
    stats = Stats(tmp_path / "events.jsonl", None)

    async def go():
        scheduler = Scheduler(config, launcher, {}, stats, tmp_path, [])
        try:
            return await test(scheduler)
        finally:
            await scheduler.shutdown()

    try:
        return asyncio.run(go()), [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    finally:
        stats.close()


def test_scheduler_cold_then_warm(tmp_path):
    async def test(scheduler):
        first = await scheduler.invoke(b'{"n": 1}')
        second = await scheduler.invoke(b'{"n": 2}')
        return first, second

    (first, second), events = run_scheduler(tmp_path, FakeLauncher(), test)
    assert first.cold and not second.cold and first.env_id == second.env_id
    assert json.loads(second.outcome.body) == {"echo": {"n": 2}}
    assert [e["event"] for e in events].count("env_start") == 1


def test_scheduler_throttles_at_the_concurrency_limit(tmp_path):
    async def test(scheduler):
        busy = asyncio.get_running_loop().create_task(scheduler.invoke(b'{"sleep": 0.5}'))
        while not scheduler.envs or next(iter(scheduler.envs.values())).state != "busy":
            await asyncio.sleep(0.01)
        with pytest.raises(Throttled):
            await scheduler.invoke(b"{}")
        return await busy

    result, _ = run_scheduler(tmp_path, FakeLauncher(), test, max_concurrency=1)
    assert result.outcome.kind == "ok" and json.loads(result.outcome.body) == {"echo": {"sleep": 0.5}}


def test_scheduler_retries_an_overrun_init_at_the_first_invoke(tmp_path):
    async def test(scheduler):
        return await scheduler.invoke(b"{}")

    launcher = FakeLauncher(ready=(False, True))
    result, events = run_scheduler(tmp_path, launcher, test, init_timeout="200ms")
    assert result.outcome.kind == "ok" and launcher.launches == 2
    error = next(e for e in events if e["event"] == "init_error")
    assert (error["status"], error["phase"], error["errorType"]) == ("timeout", "init", "Runtime.InitTimeout")


def test_scheduler_init_retry_is_bounded_by_the_function_timeout(tmp_path):
    async def test(scheduler):
        with pytest.raises(InitFailure) as failure:
            await scheduler.invoke(b"{}")
        return failure.value

    failure, events = run_scheduler(tmp_path, FakeLauncher(ready=(False,)), test, init_timeout="100ms", timeout="300ms")
    assert failure.error["errorType"] == "Sandbox.Timedout"
    assert [(e["phase"], e["status"]) for e in events if e["event"] == "init_error"] == [
        ("init", "timeout"),
        ("invoke", "timeout"),
    ]


def test_the_init_limit_counts_from_the_environments_start(tmp_path):
    """A launch that took longer than the limit (a loaded machine) fails at once, not a full limit later."""

    async def test(scheduler):
        env = Environment("env-x", kind="on-demand", memory_mb=128, timeout_s=1, function_arn="arn")
        env.started_at = time.monotonic() - 60
        with pytest.raises(InitFailure) as failure:
            await asyncio.wait_for(env.wait_ready(10.0), 2.0)
        return failure.value

    failure, _ = run_scheduler(tmp_path, FakeLauncher(), test)
    assert failure.status == "timeout"


def test_shutdown_mid_invocation_is_an_outcome_of_its_own_and_each_stop_is_logged_once(tmp_path):
    async def test(scheduler):
        task = asyncio.get_running_loop().create_task(scheduler.invoke(b'{"sleep": 30}'))
        while not scheduler.envs or next(iter(scheduler.envs.values())).state != "busy":
            await asyncio.sleep(0.01)
        await scheduler.shutdown()
        return await task

    result, events = run_scheduler(tmp_path, FakeLauncher(), test)
    assert result.outcome.kind == "shutdown" and result.outcome.error["errorType"] == "Lab.Shutdown"
    assert [e["event"] for e in events].count("env_stop") == 1


def test_the_hosting_module_imports_without_an_app_and_says_what_is_missing(monkeypatch):
    import importlib

    monkeypatch.delenv("COLDBREW_LAB_WSGI", raising=False)
    monkeypatch.delenv("COLDBREW_LAB_ASGI", raising=False)
    hosting = importlib.import_module("coldbrew.lab.hosting")
    with pytest.raises(RuntimeError, match="COLDBREW_LAB_WSGI"):
        hosting.handler({}, None)


@pytest.mark.integration  # starts one trivial process
def test_last_pid_moves_when_a_process_is_created():
    import subprocess
    import sys

    from coldbrew.lab import proctree

    before = proctree.last_pid()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    assert proctree.last_pid() != before


def test_rest_events_keep_header_names_as_sent_and_the_others_lower_case_them():
    request = parse(b"GET / HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nX-Rep: 1\r\nX-Rep: 2\r\n\r\n")
    rest = build_event("rest", request)
    assert rest["headers"]["Content-Type"] == "text/plain" and rest["multiValueHeaders"]["X-Rep"] == ["1", "2"]
    assert rest["requestContext"]["domainName"] == "h"
    for api in ("http", "url", "alb"):
        assert "content-type" in build_event(api, request)["headers"]
        assert "Content-Type" not in build_event(api, request)["headers"]
