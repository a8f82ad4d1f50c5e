"""Each AWS front door's errors, the raw Invoke API and Lambda's log lines, in a real lab (issue #13, part 2).

Expected statuses and bodies are AWS's (docs/lab.md cites the page for each); the handlers are
tests/handlers/*.py running in awslambdaric.
"""

from __future__ import annotations

import json
import re
import threading
import time

import pytest
from labtools import LabFactory, call

from coldbrew.lab import LabConfig

pytestmark = pytest.mark.integration

RAW = "/2015-03-31/functions/function/invocations"
MB = 1024 * 1024


@pytest.fixture
def lab_factory(tmp_path):
    factory = LabFactory(tmp_path)
    yield factory
    factory.close()


def is_function_error(api, status, body) -> bool:
    """The answer front door ``api`` gives when the function fails or answers something it cannot map."""
    if api == "http":
        return status == 502 and json.loads(body) == {"message": "Internal Server Error"}
    if api == "rest":
        return status == 502 and json.loads(body) == {"message": "Internal server error"}
    if api == "url":
        return status == 502 and body == b"Internal Server Error"
    return status == 502 and b"502 Bad Gateway" in body  # alb


@pytest.mark.parametrize("api", ["http", "rest", "url", "alb"])
def test_function_error(lab_factory, api):
    lab = lab_factory("echo.fail", api=api)
    assert is_function_error(api, *call(lab)[::2])


@pytest.mark.parametrize("api", ["http", "rest", "url", "alb"])
def test_malformed_response(lab_factory, api):
    lab = lab_factory("bad_response.handler", api=api)
    assert is_function_error(api, *call(lab, "/?case=status_text")[::2])
    # payload 2.0 maps a result without statusCode to a 200 JSON body; REST and ALB need statusCode
    status, _, body = call(lab, "/?case=no_status")
    if api in ("http", "url"):
        assert status == 200 and json.loads(body) == {"hello": "world"}
    else:
        assert is_function_error(api, status, body)
    # cookies belong to payload 2.0; a REST proxy response with any other key is malformed
    status, headers, body = call(lab, "/?case=v2_cookies")
    if api == "rest":
        assert is_function_error(api, status, body)
    elif api in ("http", "url"):
        assert status == 200 and headers["Set-Cookie"] == "a=b"


# Lambda refuses the invoke with 429 TooManyRequestsException; API Gateway answers any refused invoke with 500
# (services-apigateway-errors), each API in its own body; a function URL passes Lambda's 429 on; an ALB, 502.
THROTTLE_ANSWERS = {
    "http": (500, {"message": "Internal Server Error"}),
    "rest": (500, {"message": "Internal server error"}),
    "url": (429, None),
    "alb": (502, None),
}


def throttled_call(lab):
    """One request while the lab's only environment is busy: (status, headers, body)."""
    busy = threading.Thread(target=call, args=(lab, "/?s=1.5"), daemon=True)
    busy.start()
    deadline = time.monotonic() + 10
    while lab.stats()["environments"]["total"] < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    answer = call(lab, "/?s=0")
    busy.join()
    return answer


@pytest.mark.parametrize("api", ["http", "rest", "url", "alb"])
def test_throttle(lab_factory, api):
    lab = lab_factory("sleep.handler", api=api, max_concurrency=1)
    status, headers, body = throttled_call(lab)
    expected_status, expected_body = THROTTLE_ANSWERS[api]
    assert status == expected_status
    if expected_body is not None:
        assert json.loads(body) == expected_body
    if api == "url":
        assert json.loads(body)["errorType"] == "TooManyRequestsException"
        assert headers["x-amzn-ErrorType"] == "TooManyRequestsException"
    if api == "alb":
        assert b"502 Bad Gateway" in body
    # whatever the status, the lab names the outcome, so load tests count throttles on every door
    assert headers["x-lab-outcome"] == "throttled"
    assert lab.stats()["throttles"] == 1


def test_raw_invoke_throttle_is_lambdas_429(lab_factory):
    lab = lab_factory("sleep.handler", max_concurrency=1)
    busy = threading.Thread(target=call, args=(lab, RAW, b'{"queryStringParameters": {"s": "1.5"}}'), daemon=True)
    busy.start()
    deadline = time.monotonic() + 10
    while lab.stats()["environments"]["total"] < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    status, headers, body = call(lab, RAW, b"{}")
    busy.join()
    assert status == 429 and json.loads(body)["errorType"] == "TooManyRequestsException"
    assert headers["x-lab-outcome"] == "throttled"


def test_integration_timeouts_default_to_each_front_doors_limit():
    assert LabConfig(api="http").gateway_timeout == 30.0
    assert LabConfig(api="rest").gateway_timeout == 29.0
    assert LabConfig(api="url").gateway_timeout is None and LabConfig(api="alb").gateway_timeout is None


# REST: the INTEGRATION_TIMEOUT gateway response, 504 (supported-gateway-response-types). HTTP API: AWS states
# no status; HTTP APIs are seen answering 503 {"message": "Service Unavailable"} (docs/lab.md).
@pytest.mark.parametrize(
    "api, expected",
    [("rest", (504, {"message": "Endpoint request timed out"})), ("http", (503, {"message": "Service Unavailable"}))],
)
def test_integration_timeout(lab_factory, api, expected):
    lab = lab_factory("sleep.handler", api=api, gateway_timeout="300ms", timeout="5s")
    status, headers, body = call(lab, "/?s=1")
    assert (status, json.loads(body)) == expected
    assert headers["x-lab-outcome"] == "gateway-timeout"


@pytest.mark.parametrize("api", ["url", "alb"])
def test_without_an_integration_timeout_the_function_timeout_decides(lab_factory, api):
    lab = lab_factory("sleep.handler", api=api, timeout="500ms")
    assert is_function_error(api, *call(lab, "/?s=3")[::2])
    assert lab.stats()["errors"] == {"Sandbox.Timedout": 1}


@pytest.mark.parametrize(
    "api, size_mb, expected", [("http", 7, 500), ("rest", 7, 500), ("url", 7, 413), ("alb", 2, 413)]
)
def test_a_request_over_the_payload_limit_never_reaches_the_function(lab_factory, api, size_mb, expected):
    lab = lab_factory(api=api)
    status, _, _ = call(lab, "/", b"x" * (size_mb * MB), headers={"Content-Type": "text/plain"})
    assert status == expected and lab.stats()["invocations"] == 0


@pytest.mark.parametrize("api, mb", [("http", 7), ("url", 7), ("alb", 2)])
def test_a_response_over_the_payload_limit_is_a_function_error(lab_factory, api, mb):
    lab = lab_factory("raw.big", api=api)
    assert is_function_error(api, *call(lab, f"/?mb={mb}")[::2])
    assert call(lab, "/?mb=0.5")[0] == 200


def test_raw_invoke_returns_the_handlers_result(lab_factory):
    lab = lab_factory("raw.handler")
    event = {"Records": [{"eventSource": "aws:sqs", "body": "hello"}]}
    status, headers, body = call(lab, RAW, json.dumps(event).encode())
    result = json.loads(body)
    assert status == 200 and result["got"] == event and result["request_id"] == headers["x-lab-request-id"]
    assert "X-Amz-Function-Error" not in headers


def test_raw_invoke_of_a_failing_handler_is_200_with_the_error(lab_factory):
    lab = lab_factory("raw.fail")
    status, headers, body = call(lab, RAW, b'{"detail-type": "Scheduled Event"}')
    error = json.loads(body)
    assert status == 200 and headers["X-Amz-Function-Error"] == "Unhandled"
    assert error["errorType"] == "ValueError" and error["errorMessage"] == "raw failure on purpose"


def test_raw_invoke_refuses_bad_json_and_oversized_events(lab_factory):
    lab = lab_factory("raw.handler")
    status, headers, _ = call(lab, RAW, b"{not json")
    assert status == 400 and headers["x-amzn-ErrorType"] == "InvalidRequestContentException"
    status, headers, _ = call(lab, RAW, json.dumps({"pad": "x" * (6 * MB)}).encode())
    assert status == 413 and headers["x-amzn-ErrorType"] == "RequestEntityTooLargeException"
    assert call(lab, RAW, b'{"x": 1}')[0] == 200 and lab.stats()["invocations"] == 1  # the refused two never ran


def test_start_end_report_lines_as_lambda_prints_them(lab_factory, capfd):
    lab = lab_factory()
    _, headers, _ = call(lab)
    request_id = headers["x-lab-request-id"]
    lines = [line for line in capfd.readouterr().err.splitlines() if line.split(" ")[0] in ("START", "END", "REPORT")]
    assert lines[0] == f"START RequestId: {request_id} Version: $LATEST"
    assert lines[1] == f"END RequestId: {request_id}"
    assert lines[2].startswith(f"REPORT RequestId: {request_id}\tDuration: ")


def test_a_crashed_environments_report_shows_its_real_peak_memory(lab_factory, capfd):
    lab = lab_factory("crash.handler", memory_mb=512)
    status, _, _ = call(lab, "/?crash=1&mb=120&hold=0.5")
    assert status == 502
    report = next(line for line in capfd.readouterr().err.splitlines() if line.startswith("REPORT"))
    assert "Error Type: Runtime.ExitError" in report
    assert int(re.search(r"Max Memory Used: (\d+) MB", report)[1]) >= 120


def test_a_snapstart_report_has_restore_and_billed_restore_duration(lab_factory, capfd):
    lab = lab_factory(snapshot=True)
    call(lab)
    report = next(line for line in capfd.readouterr().err.splitlines() if line.startswith("REPORT"))
    assert re.search(r"\tRestore Duration: \d+\.\d\d ms\tBilled Restore Duration: \d+ ms", report), report
    assert "Init Duration" not in report


@pytest.mark.parametrize("api", ["url", "alb"])
def test_an_explicit_gateway_timeout_on_a_door_without_one_is_a_504(lab_factory, api):
    lab = lab_factory("sleep.handler", api=api, gateway_timeout="300ms", timeout="5s")
    status, headers, _ = call(lab, "/?s=1")
    assert status == 504 and headers["x-lab-outcome"] == "gateway-timeout"
