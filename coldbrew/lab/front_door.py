"""The front door: one AWS front door's semantics on 127.0.0.1, plus Lambda's raw Invoke API.

``--api http|rest|url|alb`` picks the event each request becomes and the status and body the client
gets when something goes wrong (``FRONT_DOORS``; docs/lab.md cites the AWS page for every cell). Since a
throttle or an integration timeout is not a status of its own on every door (an API Gateway answers a
throttle with 500, an HTTP API a timeout with 503), the lab names those two in ``x-lab-outcome``
(``throttled``, ``gateway-timeout``), which load tests record instead of guessing from the status.
``POST /2015-03-31/functions/function/invocations`` takes any JSON event and answers the handler's
raw result, as the Runtime Interface Emulator does. ``GET /_lab/stats`` is answered by the lab itself.
"""

from __future__ import annotations

import asyncio
import json
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from coldbrew.lab.cpu import MachineWait, net_of_wait
from coldbrew.lab.environment import InitFailure
from coldbrew.lab.events import (
    MalformedResponse,
    build_event,
    is_raw_invoke,
    map_response,
)
from coldbrew.lab.httpserver import Request, Response
from coldbrew.lab.scheduler import Scheduler, Throttled

LAMBDA_PAYLOAD_BYTES = 6 * 1024 * 1024  # synchronous invoke: request and response
OUTCOME_HEADER = "x-lab-outcome"  # on answers the lab makes for a throttle or an integration timeout
THROTTLED = "throttled"
GATEWAY_TIMEOUT = "gateway-timeout"
THROTTLED_BODY = {
    "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
    "Type": "User",
    "errorType": "TooManyRequestsException",
    "message": "Rate Exceeded.",
}
TOO_LARGE_BODY = {
    "Type": "User",
    "errorType": "RequestEntityTooLargeException",
    "message": f"Request must be smaller than {LAMBDA_PAYLOAD_BYTES} bytes for the InvokeFunction operation",
}


def _json(status: int, body: dict, *headers: tuple[str, str]) -> Callable[[], Response]:
    return lambda: Response.json(status, body, list(headers))


def _text(status: int, body: str, content_type: str = "text/plain") -> Callable[[], Response]:
    return lambda: Response(status, [("Content-Type", content_type)], body.encode())


def _alb_page(status: int, phrase: str) -> Callable[[], Response]:
    return _text(
        status,
        f"<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {phrase}</h1></center>\r\n</body>\r\n</html>\r\n",
        "text/html",
    )


@dataclass(frozen=True)
class FrontDoor:
    """What one AWS front door answers when the function cannot; each field makes a fresh Response."""

    name: str
    function_error: Callable[[], Response]  # function error, crash, timeout, init failure
    malformed: Callable[[], Response]  # result that cannot be mapped to an HTTP response
    throttle: Callable[[], Response]  # Lambda refused the invoke: concurrency limit
    invoke_too_large: Callable[[], Response]  # Lambda refused the invoke: event over 6 MB
    timeout: Callable[[], Response] | None  # integration timeout reached
    request_limit: int  # request bodies over this never reach Lambda
    request_too_large: Callable[[], Response]
    response_limit: int = LAMBDA_PAYLOAD_BYTES


_APIGW_ERROR = {"message": "Internal Server Error"}  # an HTTP API's body (http-api-troubleshooting-lambda)
_REST_ERROR = {"message": "Internal server error"}  # a REST API's body (services-apigateway-errors)

FRONT_DOORS = {
    "http": FrontDoor(
        "http",
        _json(502, _APIGW_ERROR),
        _json(502, _APIGW_ERROR),
        # "If the Lambda API rejects the invocation request, API Gateway returns a 500" (services-apigateway-errors)
        _json(500, _APIGW_ERROR),
        _json(500, _APIGW_ERROR),
        # AWS states no status for an HTTP API's integration timeout; HTTP APIs are seen answering 503 (docs/lab.md)
        _json(503, {"message": "Service Unavailable"}),
        10 * 1024 * 1024,
        _json(413, {"message": "Request Entity Too Large"}),
    ),
    "rest": FrontDoor(
        "rest",
        _json(502, _REST_ERROR, ("x-amzn-ErrorType", "InternalServerErrorException")),
        _json(502, _REST_ERROR, ("x-amzn-ErrorType", "InternalServerErrorException")),
        _json(500, _REST_ERROR, ("x-amzn-ErrorType", "InternalServerErrorException")),
        _json(500, _REST_ERROR, ("x-amzn-ErrorType", "InternalServerErrorException")),
        _json(504, {"message": "Endpoint request timed out"}, ("x-amzn-ErrorType", "IntegrationTimeoutException")),
        10 * 1024 * 1024,
        _json(413, {"message": "Request Too Long"}),
    ),
    "url": FrontDoor(
        "url",
        _text(502, "Internal Server Error"),
        _text(502, "Internal Server Error"),
        _json(429, THROTTLED_BODY, ("x-amzn-ErrorType", "TooManyRequestsException")),
        _json(413, TOO_LARGE_BODY, ("x-amzn-ErrorType", "RequestEntityTooLargeException")),
        None,
        LAMBDA_PAYLOAD_BYTES,
        _json(413, TOO_LARGE_BODY, ("x-amzn-ErrorType", "RequestEntityTooLargeException")),
    ),
    "alb": FrontDoor(
        "alb",
        _alb_page(502, "Bad Gateway"),
        _alb_page(502, "Bad Gateway"),
        _alb_page(502, "Bad Gateway"),
        _alb_page(502, "Bad Gateway"),
        None,
        1024 * 1024,
        _alb_page(413, "Request Entity Too Large"),
        response_limit=1024 * 1024,
    ),
}


def _raw_error(outcome) -> bytes:
    """The error document Lambda's Invoke API returns for a failed invocation."""
    if outcome.kind == "error" and outcome.body:
        return outcome.body
    return json.dumps(
        {"errorMessage": outcome.error.get("errorMessage", ""), "errorType": outcome.error.get("errorType", "Unknown")}
    ).encode()


def timing_headers(result) -> list[tuple[str, str]]:
    """The invocation's wall and CPU time (and, on a cold start, its init's) as ``x-lab-*`` headers, in ms.

    ``x-lab-duration-ms``/``x-lab-cpu-ms``: the invocation; ``x-lab-init-ms``/``x-lab-init-cpu-ms``: the
    init (or SnapStart restore) the request waited for, only when it was a cold start. A CPU header is
    absent when the process was gone before it could be read. ``x-lab-queue-ms``: the request's wait for this
    machine (queued for a start, and waiting for a core), which the durations leave out (coldbrew.lab.cpu).
    """
    values = [
        ("x-lab-duration-ms", result.outcome.duration_ms),
        ("x-lab-cpu-ms", result.outcome.cpu_ms),
        ("x-lab-init-ms", result.init_ms),
        ("x-lab-init-cpu-ms", result.init_cpu_ms),
        ("x-lab-queue-ms", result.queue_ms),
    ]
    return [(name, f"{value:.2f}") for name, value in values if value is not None]


def build_front_door(scheduler: Scheduler, api: str, gateway_timeout_s: float | None, describe):
    """An HTTP handler: ``/_lab/stats``, the raw Invoke API, and front door ``api`` for everything else."""
    stats = scheduler.stats
    door = FRONT_DOORS[api]
    background: set[asyncio.Task] = set()

    def failed(response: Response, status_reason: str) -> Response:
        stats.event("response", status=response.status, reason=status_reason)
        return response

    async def handle(request: Request) -> Response:
        if request.path == "/_lab/stats" and request.method == "GET":
            return Response.json(200, describe())
        started = time.monotonic()
        raw = is_raw_invoke(request)
        request_id = str(uuid.uuid4())
        if raw:
            try:
                json.loads(request.body or b"{}")
            except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser's stack allows
                return Response.json(
                    400,
                    {
                        "Type": "User",
                        "errorType": "InvalidRequestContentException",
                        "message": "Could not parse request body into json",
                    },
                    [("x-amzn-ErrorType", "InvalidRequestContentException")],
                )
            payload = request.body or b"{}"
        else:
            if len(request.body) > door.request_limit:
                return failed(door.request_too_large(), "request too large")
            payload = json.dumps(build_event(api, request, scheduler.config.region)).encode()
        if len(payload) > LAMBDA_PAYLOAD_BYTES:
            stats.errors["RequestEntityTooLargeException"] += 1
            if raw:
                return Response.json(413, TOO_LARGE_BODY, [("x-amzn-ErrorType", "RequestEntityTooLargeException")])
            return failed(door.invoke_too_large(), "event over 6 MB")
        wait = MachineWait()  # the request's wait for this machine: the integration timeout does not count it
        task = asyncio.get_running_loop().create_task(scheduler.invoke(payload, request_id, wait))
        background.add(task)
        task.add_done_callback(background.discard)
        timeout = None if raw else gateway_timeout_s
        try:
            result = await net_of_wait(task, timeout, wait)
        except Throttled:
            if raw:
                response = Response.json(429, THROTTLED_BODY, [("x-amzn-ErrorType", "TooManyRequestsException")])
            else:
                response = door.throttle()
            response.headers.append((OUTCOME_HEADER, THROTTLED))
            return response
        except InitFailure as failure:
            if raw:
                return Response(
                    200,
                    [("Content-Type", "application/json"), ("X-Amz-Function-Error", "Unhandled")],
                    json.dumps(failure.error).encode(),
                )
            return failed(door.function_error(), failure.error["errorType"])
        except TimeoutError:
            task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)
            stats.errors["GatewayTimeout"] += 1
            answer = door.timeout or _json(504, {"message": "Gateway Timeout"})  # an explicit limit on url/alb
            response = answer()
            response.headers.append((OUTCOME_HEADER, GATEWAY_TIMEOUT))
            return failed(response, "gateway timeout")
        outcome = result.outcome
        lab_headers = [
            ("x-lab-request-id", outcome.request_id),
            ("x-lab-env", result.env_id),
            ("x-lab-cold", "1" if result.cold else "0"),
        ]
        lab_headers += timing_headers(result)
        if raw:
            response = Response(
                200,
                [("Content-Type", "application/json"), ("X-Amz-Executed-Version", "$LATEST")],
                outcome.body if outcome.kind == "ok" else _raw_error(outcome),
            )
            if outcome.kind != "ok":
                response.headers.append(("X-Amz-Function-Error", "Unhandled"))
        elif outcome.kind != "ok":
            response = door.function_error()
        elif len(outcome.body) > door.response_limit:
            stats.errors["ResponseTooLarge"] += 1
            response = failed(door.malformed(), f"response over {door.response_limit} bytes")
        else:
            try:
                response = map_response(api, outcome.body)
            except MalformedResponse as exc:
                stats.errors["MalformedResponse"] += 1
                response = failed(door.malformed(), f"malformed response: {exc}")
            except Exception:  # noqa: BLE001 - a mapping bug is still the function's bad response, never a lab 500
                traceback.print_exc()
                stats.errors["MalformedResponse"] += 1
                response = failed(door.malformed(), "malformed response")
        if api in ("http", "rest") and not raw:
            response.headers.append(("apigw-requestid", uuid.uuid4().hex[:16]))
        response.headers += lab_headers
        stats.latencies.append((time.monotonic() - started) * 1000)
        return response

    return handle
