"""Events and responses of each AWS front door, as pure functions (no I/O, no processes).

``build_event(api, request)`` turns an HTTP request into the event that front door sends to Lambda;
``map_response(api, body)`` turns the function's JSON result into the HTTP response that front door
would send, or raises ``MalformedResponse`` where AWS answers 502. ``api`` is one of:

- ``http``: API Gateway HTTP API, payload format 2.0
  (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html)
- ``rest``: API Gateway REST API, Lambda proxy integration (payload 1.0, ``multiValueHeaders``)
  (https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-lambda-proxy-integrations.html)
- ``url``: Lambda function URL (payload 2.0 with the URL's request context)
  (https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html)
- ``alb``: Application Load Balancer target, multi-value headers off
  (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/lambda-functions.html)
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from urllib.parse import parse_qsl, urlsplit

from coldbrew.errors import ColdbrewError
from coldbrew.lab.httpserver import Request, Response, UnsafeHeader, check_header

APIS = ("http", "rest", "url", "alb")
TEXT_TYPES = (
    "text/",
    "application/json",
    "application/xml",
    "application/x-www-form-urlencoded",
    "application/javascript",
)
ACCOUNT = "123456789012"
URL_ID = "labfunctionurl0000000000000000000"
REST_KEYS = {"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"}
ALB_KEYS = REST_KEYS | {"statusDescription"}


class MalformedResponse(ColdbrewError):
    """The function's result is not a response this front door can map (AWS answers 502)."""


# ---- events -------------------------------------------------------------------------------------
def _body(request: Request, headers: dict[str, str]) -> tuple[str | None, bool]:
    """(body as the event carries it, isBase64Encoded): text types as text, anything else base64."""
    if not request.body:
        return None, False
    if headers.get("content-type", "").startswith(TEXT_TYPES):
        try:
            return request.body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(request.body).decode(), True


def _joined_headers(request: Request, skip: tuple[str, ...] = ()) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in request.headers:
        if name not in skip:
            headers[name] = f"{headers[name]},{value}" if name in headers else value
    return headers


def _multi(pairs) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in pairs:
        out.setdefault(key, []).append(value)
    return out


def _v2_event(request: Request, domain: str, api_id: str, now: float) -> dict:
    headers = _joined_headers(request, skip=("cookie",))
    cookies = [c.strip() for name, value in request.headers if name == "cookie" for c in value.split(";") if c.strip()]
    query = {k: ",".join(v) for k, v in _multi(parse_qsl(request.query, keep_blank_values=True)).items()}
    body, is_b64 = _body(request, headers)
    event = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": request.path,
        "rawQueryString": request.query,
        "headers": headers,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": api_id,
            "domainName": domain,
            "domainPrefix": domain.split(".")[0],
            "http": {
                "method": request.method,
                "path": request.path,
                "protocol": request.version,
                "sourceIp": request.peer,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": is_b64,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if body is not None:
        event["body"] = body
    return event


def _rest_event(request: Request, now: float) -> dict:
    multi_headers = _multi(request.headers_as_sent())  # REST APIs keep header names as the client sent them
    headers = {k: v[-1] for k, v in multi_headers.items()}
    multi_query = _multi(parse_qsl(request.query, keep_blank_values=True))
    body, is_b64 = _body(request, {k.lower(): v for k, v in headers.items()})
    return {
        "resource": "/{proxy+}",
        "path": request.path,
        "httpMethod": request.method,
        "headers": headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": {"proxy": request.path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "lab",
            "resourceId": "lab",
            "resourcePath": "/{proxy+}",
            "httpMethod": request.method,
            "path": f"/prod{request.path}",
            "stage": "prod",
            "protocol": request.version,
            "requestId": str(uuid.uuid4()),
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000),
            "domainName": request.header("host") or "127.0.0.1",
            "identity": {"sourceIp": request.peer, "userAgent": request.header("user-agent")},
        },
        "body": body,
        "isBase64Encoded": is_b64,
    }


def _alb_event(request: Request, region: str) -> dict:
    headers = {name: value for name, value in request.headers}  # last value wins (multi-value headers off)
    # ALB passes query parameters as sent, without URL-decoding them.
    query = dict(pair.partition("=")[::2] for pair in request.query.split("&") if pair)
    body, is_b64 = _body(request, headers)
    return {
        "requestContext": {
            "elb": {
                "targetGroupArn": f"arn:aws:elasticloadbalancing:{region}:{ACCOUNT}:targetgroup/lab/0123456789abcdef"
            }
        },
        "httpMethod": request.method,
        "path": request.path,
        "queryStringParameters": query,
        "headers": headers,
        "body": body or "",
        "isBase64Encoded": is_b64,
    }


def build_event(api: str, request: Request, region: str = "us-east-1") -> dict:
    """The event front door ``api`` sends to the function for ``request``."""
    now = time.time()
    if api == "http":
        return _v2_event(request, request.header("host") or "127.0.0.1", "lab", now)
    if api == "url":
        return _v2_event(request, f"{URL_ID}.lambda-url.{region}.on.aws", URL_ID, now)
    if api == "rest":
        return _rest_event(request, now)
    if api == "alb":
        return _alb_event(request, region)
    raise ValueError(f"unknown front door {api!r}")


# ---- responses ----------------------------------------------------------------------------------
def _status(value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise MalformedResponse("statusCode must be an integer")
    if isinstance(value, str) and not value.strip().isdigit():
        raise MalformedResponse("statusCode must be an integer")
    status = int(value)
    if not 100 <= status <= 599:
        raise MalformedResponse(f"statusCode {status} is out of range")
    return status


def _scalar(name: str, value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise MalformedResponse(f"header {name!r:.60} must have a string value")


def _headers(result: dict) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    single = result.get("headers")
    if single is not None:
        if not isinstance(single, dict):
            raise MalformedResponse("headers must be an object")
        headers += [(str(k), _scalar(k, v)) for k, v in single.items()]
    multi = result.get("multiValueHeaders")
    if multi is not None:
        if not isinstance(multi, dict) or not all(isinstance(v, list) for v in multi.values()):
            raise MalformedResponse("multiValueHeaders must map names to lists")
        headers += [(str(k), _scalar(k, v)) for k, values in multi.items() for v in values]
    for name, value in headers:
        try:
            check_header(name, value)
        except UnsafeHeader as exc:  # CR/LF would split the response: API Gateway refuses it too
            raise MalformedResponse(str(exc)) from None
    return headers


def _data(result: dict) -> bytes:
    raw = result.get("body")
    if raw is None:
        raw = ""
    if not isinstance(raw, str):
        raise MalformedResponse("body must be a string")
    encoded = result.get("isBase64Encoded", False)
    if not isinstance(encoded, bool):
        raise MalformedResponse("isBase64Encoded must be a boolean")
    if not encoded:
        return raw.encode("utf-8", "surrogatepass")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedResponse("body is not valid base64") from None


def map_response(api: str, body: bytes) -> Response:
    """The HTTP response front door ``api`` makes of the function's result ``body``.

    Payload 2.0 (``http``, ``url``): a JSON object with ``statusCode`` is a structured response; any
    other valid JSON becomes a 200 ``application/json`` body. ``rest`` needs ``statusCode`` and only
    the proxy keys; ``alb`` needs ``statusCode``. Anything else raises MalformedResponse.
    """
    try:
        result = json.loads(body) if body else None
    except ValueError:
        raise MalformedResponse("the function's result is not JSON") from None
    structured = isinstance(result, dict) and "statusCode" in result
    if api in ("http", "url") and not structured:
        return Response(200, [("Content-Type", "application/json")], body)
    if not isinstance(result, dict) or "statusCode" not in result:
        raise MalformedResponse("the result has no statusCode")
    if api == "rest" and set(result) - REST_KEYS:
        raise MalformedResponse(f"unexpected keys {sorted(set(result) - REST_KEYS)}")
    if api == "alb" and set(result) - ALB_KEYS:
        raise MalformedResponse(f"unexpected keys {sorted(set(result) - ALB_KEYS)}")
    status = _status(result["statusCode"])
    headers = _headers(result)
    cookies = result.get("cookies") if api in ("http", "url") else None
    if cookies is not None:
        if not isinstance(cookies, list) or not all(isinstance(c, str) for c in cookies):
            raise MalformedResponse("cookies must be a list of strings")
        for cookie in cookies:
            try:
                check_header("Set-Cookie", cookie)
            except UnsafeHeader as exc:
                raise MalformedResponse(str(exc)) from None
        headers += [("Set-Cookie", c) for c in cookies]
    data = _data(result)
    if api in ("http", "url") and not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return Response(status, headers, data)


def is_raw_invoke(request: Request) -> bool:
    """``POST /2015-03-31/functions/{name}/invocations``: the Lambda Invoke API (as the Runtime
    Interface Emulator and ``sam local`` serve it)."""
    parts = urlsplit(request.target).path.split("/")
    return (
        request.method == "POST"
        and len(parts) == 5
        and parts[1] == "2015-03-31"
        and parts[2] == "functions"
        and parts[4] == "invocations"
    )
