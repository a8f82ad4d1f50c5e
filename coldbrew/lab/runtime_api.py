"""The Lambda Runtime API (version 2018-06-01) for one execution environment.

Each environment gets its own server on a loopback port, passed to the runtime as
``AWS_LAMBDA_RUNTIME_API``; which environment is calling is therefore known from the port.
Endpoints and status codes follow https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html;
``/restore/next`` and ``/restore/error`` are the SnapStart additions awslambdaric calls when
``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol

from coldbrew.lab.httpserver import Request, Response

PREFIX = "/2018-06-01/runtime"
ERROR_TYPE_HEADER = "lambda-runtime-function-error-type"
MAX_RESPONSE_BYTES = 6 * 1024 * 1024  # synchronous invocation response quota


@dataclass
class NextEvent:
    """What ``GET /invocation/next`` hands to the runtime."""

    request_id: str
    payload: bytes
    deadline_ms: int
    function_arn: str
    trace_id: str


class RuntimeHost(Protocol):
    """What the Runtime API needs from an environment."""

    def next_invocation(self) -> Awaitable[NextEvent]: ...

    def invocation_response(self, request_id: str, body: bytes) -> bool: ...

    def invocation_error(self, request_id: str, body: bytes, error_type: str) -> bool: ...

    def init_error(self, body: bytes, error_type: str) -> None: ...

    def restore_next(self) -> None: ...


def _accepted() -> Response:
    return Response.json(202, {"status": "OK"})


def _unknown_request(request_id: str) -> Response:
    return Response.json(400, {"errorMessage": f"Invalid request ID: {request_id}", "errorType": "InvalidRequestID"})


def build_handler(host: RuntimeHost):
    """An HTTP handler serving the Runtime API on behalf of ``host``."""

    async def handle(request: Request) -> Response:
        path = request.path
        if not path.startswith(PREFIX):
            return Response.json(404, {"errorMessage": "not found", "errorType": "NotFound"})
        route = path[len(PREFIX) :]
        error_type = request.header(ERROR_TYPE_HEADER, "") or ""
        if request.method == "GET" and route == "/invocation/next":
            event = await host.next_invocation()
            # awslambdaric's C client needs a Content-Type on /next (it crashes without one).
            return Response(
                200,
                [
                    ("Content-Type", "application/json"),
                    ("Lambda-Runtime-Aws-Request-Id", event.request_id),
                    ("Lambda-Runtime-Deadline-Ms", str(event.deadline_ms)),
                    ("Lambda-Runtime-Invoked-Function-Arn", event.function_arn),
                    ("Lambda-Runtime-Trace-Id", event.trace_id),
                ],
                event.payload,
            )
        if request.method == "POST" and route.startswith("/invocation/"):
            request_id, _, action = route[len("/invocation/") :].partition("/")
            if action == "response":
                if len(request.body) > MAX_RESPONSE_BYTES:  # Lambda refuses it; the invocation fails
                    message = f"Response payload size ({len(request.body)} bytes) exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."
                    body = json.dumps({"errorMessage": message, "errorType": "Function.ResponseSizeTooLarge"}).encode()
                    if not host.invocation_error(request_id, body, "Function.ResponseSizeTooLarge"):
                        return _unknown_request(request_id)
                    return Response.json(413, {"errorMessage": message, "errorType": "RequestEntityTooLarge"})
                return (
                    _accepted() if host.invocation_response(request_id, request.body) else _unknown_request(request_id)
                )
            if action == "error":
                ok = host.invocation_error(request_id, request.body, error_type or "Unhandled")
                return _accepted() if ok else _unknown_request(request_id)
        if request.method == "POST" and route == "/init/error":
            host.init_error(request.body, error_type or "Runtime.Unknown")
            return _accepted()
        if request.method == "GET" and route == "/restore/next":
            host.restore_next()
            return Response(200, [("Content-Type", "application/json")], b"")
        if request.method == "POST" and route == "/restore/error":
            host.init_error(request.body, error_type or "Runtime.AfterRestoreError")
            return _accepted()
        return Response.json(404, {"errorMessage": f"no route {request.method} {path}", "errorType": "NotFound"})

    return handle


def error_summary(body: bytes, error_type: str) -> dict:
    """``{"errorType", "errorMessage"}`` from an error body the runtime posted (best effort)."""
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    return {"errorType": data.get("errorType") or error_type, "errorMessage": str(data.get("errorMessage", ""))}
