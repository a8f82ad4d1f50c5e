"""Lambda HTTP events to WSGI and back: API Gateway REST (payload 1.0), HTTP API and function URLs (2.0), ALB.

The same translation as apig-wsgi's ``make_lambda_handler`` (the same WSGI environ and the same response
shapes, binary bodies included), written here because apig-wsgi's own imports (``typing``, ``urllib.parse`` and
the ``ipaddress`` it loads, ``base64``, ``wsgiref.types``) were a measurable part of the handler's cold start
(bench/results/floor.md). This module imports nothing beyond what the interpreter has already loaded: the
standard library's ``urllib.parse`` only for an event that carries REST/ALB query parameters or a percent-encoded
path, ``base64`` only for a base64 request body or a binary response. tests/runtimes/test_lambda_http.py checks
it against apig-wsgi itself on every event in tests/events and on generated ones.

- payload 1.0 (REST API) and ALB: ``httpMethod``, ``path`` (percent-decoded as ISO-8859-1, as PEP 3333 wants),
  ``headers`` or ``multiValueHeaders`` (repeated values joined with ``,``), ``queryStringParameters`` or
  ``multiValueQueryStringParameters`` re-encoded into ``QUERY_STRING`` (an ALB's values arrive still encoded, so
  their reserved characters are kept), ``X-Forwarded-For``'s first address as ``REMOTE_ADDR``;
- both: ``coldbrew.raw_path``, the path as the event carries it (``PATH_INFO`` is percent-decoded; the warm-up route
  matches the path as sent, so ``/%5Fwarm`` is not ``/_warm``);
- payload 2.0 (HTTP API, function URL): ``rawPath``, ``rawQueryString``, ``cookies`` as ``HTTP_COOKIE``,
  ``requestContext.http`` for the method, protocol and source address;
- the response: ``statusCode``, ``headers`` (1.0 with ``multiValueHeaders`` in the event: ``multiValueHeaders``;
  2.0: lower-cased names with ``Set-Cookie`` moved to ``cookies``), and the body as text, or base64
  (``isBase64Encoded``) when binary responses are on (ALB, 2.0) and the body is neither text nor JSON by its
  ``Content-Type`` or carries a ``Content-Encoding``.
"""

from __future__ import annotations

import io
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up (type checkers read it as true)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any
    from wsgiref.types import WSGIApplication

#: Content types answered as text even where binary responses are on (apig-wsgi's defaults).
TEXT_CONTENT_TYPES = ("text/", "application/json", "application/problem+json", "application/vnd.api+json")
#: Characters an ALB query value keeps unencoded: the ALB passes the values as the client encoded them.
RESERVED_URI_CHARACTERS = r"!#$&'()*+,/:;=?@[]%"


def event_version(event: dict) -> str:
    """``"1.0"`` (REST API), ``"2.0"`` (HTTP API, function URL) or ``"alb"`` (an ALB target group's event)."""
    context = event.get("requestContext")
    if isinstance(context, dict) and "elb" in context:
        return "alb"
    return event.get("version", "1.0")


def _path_info(path: str) -> str:
    if "%" not in path:
        return path
    from urllib.parse import unquote

    return unquote(path, encoding="iso-8859-1")


def _query_string(params, *, multi: bool, safe: str) -> str:
    if not params:  # None when a test event from the console has none
        return ""
    from urllib.parse import urlencode

    return urlencode(params, doseq=multi, safe=safe)


def request_body(event: dict) -> bytes:
    """The request body's bytes: base64-decoded when ``isBase64Encoded`` is true."""
    body = event.get("body", "") or ""
    if event.get("isBase64Encoded", False):
        import base64

        return base64.b64decode(body)
    return body.encode()


def _base_environ(event: dict, context: Any, body: bytes) -> dict[str, Any]:
    return {
        "CONTENT_LENGTH": str(len(body)),
        "HTTP": "on",
        "SCRIPT_NAME": "",
        "SERVER_NAME": "",
        "SERVER_PORT": "",
        "wsgi.errors": sys.stderr,
        "wsgi.input": io.BytesIO(body),
        "wsgi.multiprocess": False,
        "wsgi.multithread": False,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "coldbrew.lambda_event": event,
        "coldbrew.lambda_context": context,
    }


def environ_v1(event: dict, context: Any = None, *, alb: bool = False) -> dict[str, Any]:
    """The WSGI environ of a payload 1.0 (REST API) or ALB event."""
    environ = _base_environ(event, context, request_body(event))
    environ.update(
        PATH_INFO=_path_info(event["path"]),
        **{"coldbrew.raw_path": event["path"]},
        REMOTE_ADDR="127.0.0.1",
        REQUEST_METHOD=event["httpMethod"],
        SERVER_PROTOCOL="HTTP/1.1",
    )
    safe = RESERVED_URI_CHARACTERS if alb else ""
    if "multiValueQueryStringParameters" in event:
        environ["QUERY_STRING"] = _query_string(event["multiValueQueryStringParameters"], multi=True, safe=safe)
    else:
        environ["QUERY_STRING"] = _query_string(event.get("queryStringParameters"), multi=False, safe=safe)
    multi = "multiValueHeaders" in event
    environ["coldbrew.multi_value_headers"] = multi
    if multi:
        headers = event["multiValueHeaders"] or {}
    else:
        headers = {name: [value] for name, value in (event.get("headers") or {}).items()}
    for name, values in headers.items():
        key = name.upper().replace("-", "_")
        last = values[-1]
        if key == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = last
        elif key == "HOST":
            environ["SERVER_NAME"] = last
        elif key == "X_FORWARDED_FOR":
            environ["REMOTE_ADDR"] = last.split(", ")[0]
        elif key == "X_FORWARDED_PROTO":
            environ["wsgi.url_scheme"] = last
        elif key == "X_FORWARDED_PORT":
            environ["SERVER_PORT"] = last
        environ["HTTP_" + key] = ",".join(values)
    return environ


def environ_v2(event: dict, context: Any = None) -> dict[str, Any]:
    """The WSGI environ of a payload 2.0 event (HTTP API, function URL)."""
    http = event["requestContext"]["http"]
    environ = _base_environ(event, context, request_body(event))
    environ.update(
        HTTP_COOKIE=";".join(event.get("cookies", ())),
        PATH_INFO=_path_info(event["rawPath"]),
        **{"coldbrew.raw_path": event["rawPath"]},
        QUERY_STRING=event["rawQueryString"],
        REMOTE_ADDR=http["sourceIp"],
        REQUEST_METHOD=http["method"],
        SERVER_PROTOCOL=http["protocol"],
    )
    environ["coldbrew.multi_value_headers"] = False
    for name, value in event["headers"].items():
        key = name.upper().replace("-", "_")
        last = value.split(",")[-1]
        if key == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = last
        elif key == "HOST":
            environ["SERVER_NAME"] = last
        elif key == "X_FORWARDED_PROTO":
            environ["wsgi.url_scheme"] = last
        elif key == "X_FORWARDED_PORT":
            environ["SERVER_PORT"] = last
        elif key == "COOKIE":
            environ["HTTP_COOKIE"] += ";" + value
            continue
        environ["HTTP_" + key] = value
    return environ


class _Response:
    """What the WSGI app answered, collected, then shaped for the event's front door."""

    def __init__(self, binary: bool):
        self.binary = binary
        self.status = 500
        self.headers: list[tuple[str, str]] = []
        self.chunks: list[bytes] = []

    def start_response(self, status: str, headers, exc_info=None) -> Callable[[bytes], object]:
        if exc_info is not None and exc_info[0] is not None:
            raise exc_info[1].with_traceback(exc_info[2])
        self.status = int(status.split()[0])
        self.headers.extend(headers)
        return self.chunks.append

    def consume(self, result: Iterable[bytes]) -> None:
        try:
            for data in result:
                if data:
                    self.chunks.append(data)
        finally:
            close = getattr(result, "close", None)
            if close:
                close()

    def _header(self, name: str) -> str:
        values = [v for k, v in self.headers if k.lower() == name]
        return values[-1] if values else ""

    def body(self) -> tuple[str, bool]:
        """The body as the event response carries it, and whether that is base64."""
        data = b"".join(self.chunks)
        if self.binary and (
            self._header("content-encoding") or not self._header("content-type").startswith(TEXT_CONTENT_TYPES)
        ):
            import base64

            return base64.b64encode(data).decode("ascii"), True
        return data.decode("utf-8"), False

    def v1(self, multi_value_headers: bool) -> dict[str, Any]:
        response: dict[str, Any] = {"statusCode": self.status}
        if multi_value_headers:
            grouped: dict[str, list[str]] = {}
            for name, value in self.headers:
                grouped.setdefault(name, []).append(value)
            response["multiValueHeaders"] = grouped
        else:
            response["headers"] = dict(self.headers)
        response["body"], response["isBase64Encoded"] = self.body()
        return response

    def v2(self) -> dict[str, Any]:
        headers, cookies = {}, []
        for name, value in self.headers:
            lower = name.lower()
            if lower == "set-cookie":
                cookies.append(value)
            else:
                headers[lower] = value
        response: dict[str, Any] = {"statusCode": self.status, "cookies": cookies, "headers": headers}
        response["body"], response["isBase64Encoded"] = self.body()
        return response


def make_lambda_handler(app: WSGIApplication) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """A Lambda handler serving ``app`` to every HTTP front door (apig-wsgi's defaults: binary responses off for
    REST APIs, on for ALBs and payload 2.0). Raises ``ValueError`` for an unknown payload version and
    ``KeyError``/``TypeError``/... for an event missing what its version needs (the caller validates first)."""

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        version = event_version(event)
        if version in ("1.0", "alb"):
            environ = environ_v1(event, context, alb=version == "alb")
            response = _Response(binary=version == "alb")
            response.consume(app(environ, response.start_response))
            return response.v1(environ["coldbrew.multi_value_headers"])
        if version == "2.0":
            environ = environ_v2(event, context)
            response = _Response(binary=True)
            response.consume(app(environ, response.start_response))
            return response.v2()
        raise ValueError(f"unknown payload format version {version!r}")

    return handler
