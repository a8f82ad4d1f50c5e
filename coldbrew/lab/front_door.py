"""The front door: API Gateway HTTP API semantics on 127.0.0.1.

Each request becomes a payload-format-2.0 event and the function's result becomes the HTTP
response (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html).
``GET /_lab/stats`` is answered by the lab itself.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from urllib.parse import parse_qsl

from coldbrew.lab.environment import InitFailure
from coldbrew.lab.httpserver import Request, Response
from coldbrew.lab.scheduler import Scheduler, Throttled

TEXT_TYPES = ("text/", "application/json", "application/xml", "application/x-www-form-urlencoded",
              "application/javascript")
THROTTLED_BODY = {"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded", "Type": "User",
                  "errorType": "TooManyRequestsException", "message": "Rate Exceeded."}


def build_event(request: Request, api_id: str = "lab") -> dict:
    """The payload-v2 event API Gateway sends for ``request``."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers:
        if name == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
        else:
            headers[name] = f"{headers[name]},{value}" if name in headers else value
    query: dict[str, str] = {}
    for key, value in parse_qsl(request.query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    content_type = headers.get("content-type", "")
    is_text = not request.body or content_type.startswith(TEXT_TYPES)
    now = time.time()
    event = {
        "version": "2.0", "routeKey": "$default", "rawPath": request.path, "rawQueryString": request.query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": api_id, "domainName": headers.get("host", "127.0.0.1"),
            "domainPrefix": api_id,
            "http": {"method": request.method, "path": request.path, "protocol": request.version,
                     "sourceIp": request.peer, "userAgent": headers.get("user-agent", "")},
            "requestId": uuid.uuid4().hex[:16], "routeKey": "$default", "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)), "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": not is_text,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if request.body:
        event["body"] = request.body.decode("utf-8", "replace") if is_text else base64.b64encode(request.body).decode()
    return event


def to_response(body: bytes) -> Response:
    """Turn the function's result into an HTTP response (payload v2 rules)."""
    try:
        result = json.loads(body) if body else None
    except ValueError:
        return Response(200, [("Content-Type", "application/json")], body)
    if not (isinstance(result, dict) and "statusCode" in result):
        # API Gateway assumes status 200 and a JSON body when the function returns no statusCode.
        return Response(200, [("Content-Type", "application/json")], body)
    headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers += [(str(name), str(v)) for v in values]
    headers += [("Set-Cookie", str(c)) for c in result.get("cookies") or []]
    raw = result.get("body") or ""
    if result.get("isBase64Encoded"):
        data = base64.b64decode(raw)
    else:
        data = (raw if isinstance(raw, str) else json.dumps(raw)).encode()
    if not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return Response(int(result["statusCode"]), headers, data)


def timing_headers(result) -> list[tuple[str, str]]:
    """The invocation's wall and CPU time (and, on a cold start, its init's) as ``x-lab-*`` headers, in ms.

    ``x-lab-duration-ms``/``x-lab-cpu-ms``: the invocation; ``x-lab-init-ms``/``x-lab-init-cpu-ms``: the
    init (or SnapStart restore) the request waited for, only when it was a cold start. A CPU header is
    absent when the process was gone before it could be read.
    """
    values = [("x-lab-duration-ms", result.outcome.duration_ms), ("x-lab-cpu-ms", result.outcome.cpu_ms),
              ("x-lab-init-ms", result.init_ms), ("x-lab-init-cpu-ms", result.init_cpu_ms)]
    return [(name, f"{value:.2f}") for name, value in values if value is not None]


def build_front_door(scheduler: Scheduler, gateway_timeout_s: float, describe):
    """An HTTP handler that invokes the function for every request except ``/_lab/stats``."""
    stats = scheduler.stats
    background: set[asyncio.Task] = set()

    async def handle(request: Request) -> Response:
        if request.path == "/_lab/stats" and request.method == "GET":
            return Response.json(200, describe())
        started = time.monotonic()
        apigw_id = uuid.uuid4().hex[:16]
        payload = json.dumps(build_event(request)).encode()
        task = asyncio.get_running_loop().create_task(scheduler.invoke(payload))
        background.add(task)
        task.add_done_callback(background.discard)
        try:
            result = await asyncio.wait_for(asyncio.shield(task), gateway_timeout_s)
        except Throttled:
            return Response.json(429, THROTTLED_BODY, [("x-amzn-ErrorType", "TooManyRequestsException"),
                                                       ("apigw-requestid", apigw_id)])
        except InitFailure as failure:
            stats.event("response", status=502, reason=failure.error["errorType"])
            return Response.json(502, {"message": "Internal Server Error"}, [("apigw-requestid", apigw_id)])
        except TimeoutError:
            task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)
            stats.errors["GatewayTimeout"] += 1
            stats.event("response", status=504, reason="gateway timeout")
            return Response.json(504, {"message": "Endpoint request timed out"}, [("apigw-requestid", apigw_id)])
        outcome = result.outcome
        lab_headers = [("apigw-requestid", apigw_id), ("x-lab-request-id", outcome.request_id),
                       ("x-lab-env", result.env_id), ("x-lab-cold", "1" if result.cold else "0")]
        lab_headers += timing_headers(result)
        if outcome.kind == "ok":
            response = to_response(outcome.body)
        else:
            response = Response.json(502, {"message": "Internal Server Error"})
        response.headers += lab_headers
        stats.latencies.append((time.monotonic() - started) * 1000)
        return response

    return handle
