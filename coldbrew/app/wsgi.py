"""The WSGI application: ``GET /``, ``POST /predict``, ``GET /openapi.json``.

A hand-written router over the standard library's ``json``: four routes do not need a framework, and every
import here is cold-start time (docs/serving.md has the measured costs).
"""

from __future__ import annotations

import json
import logging

import numpy as np

from coldbrew.app.openapi import build_openapi
from coldbrew.app.validation import BadRequest, decode_json, parse_rows

log = logging.getLogger("coldbrew.app")

DEFAULT_MAX_BODY_BYTES = 1_048_576
POSITIVE, NEGATIVE = ">$50K", "<=$50K"

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
}


def _dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def _is_json(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


def _read_body(environ, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes without reading them."""
    length = environ.get("CONTENT_LENGTH", "").strip()
    if length:
        if not length.isdigit():
            raise BadRequest("invalid Content-Length header")
        size = int(length)
        if size > limit:
            raise BadRequest(f"request body is {size} bytes; the limit is {limit} bytes", status=413)
        return _read_input(environ, size) if size else b""
    if not environ.get("wsgi.input_terminated"):
        raise BadRequest("send a Content-Length header", status=411)
    raw = _read_input(environ, limit + 1)
    if len(raw) > limit:
        raise BadRequest(f"request body exceeds the limit of {limit} bytes", status=413)
    return raw


def _read_input(environ, size: int) -> bytes:
    """Read up to ``size`` body bytes; the server's complaint about a malformed or stalled body is a 400.

    The server parses the framing while the app reads (a chunked body's chunk-size lines, for example) and
    raises its own exception for bytes that break it, or a timeout for a client that stopped sending.
    """
    try:
        return environ["wsgi.input"].read(size)
    except Exception as exc:  # noqa: BLE001 - any server's parse error or socket timeout is the client's
        detail = str(exc).strip() or type(exc).__name__
        raise BadRequest(f"malformed or incomplete request body: {detail}"[:300]) from None


def create_app(predictor, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES):
    """A WSGI callable serving ``predictor`` with the study's HTTP contract."""
    features = tuple(predictor.feature_names)
    health = _dumps({"success": True})
    openapi = _dumps(build_openapi(features, max_body_bytes))

    def predict(environ) -> bytes:
        if not _is_json(environ.get("CONTENT_TYPE", "")):
            raise BadRequest("Content-Type must be application/json", status=415)
        rows, is_batch = parse_rows(decode_json(_read_body(environ, max_body_bytes)), features)
        proba = predictor.predict_proba(np.array(rows, dtype=np.float64))
        results = []
        for p in proba[:, 1].tolist():
            results.append({"prediction": POSITIVE if p >= 0.5 else NEGATIVE, "probability": p})
        return _dumps(results if is_batch else results[0])

    routes = {
        "/": {"GET": lambda environ: health},
        "/predict": {"POST": predict},
        "/openapi.json": {"GET": lambda environ: openapi},
    }

    def app(environ, start_response):
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "") or "/"
        headers = [("Content-Type", "application/json")]
        try:
            handlers = routes.get(path)
            if handlers is None:
                raise BadRequest(f"no route {path}; try GET /, POST /predict or GET /openapi.json", status=404)
            handler = handlers.get("GET" if method == "HEAD" else method)
            if handler is None:
                allowed = sorted(handlers) + (["HEAD"] if "GET" in handlers else [])
                headers.append(("Allow", ", ".join(allowed)))
                raise BadRequest(f"method {method} not allowed on {path}; use {', '.join(allowed)}", status=405)
            status, body = 200, handler(environ)
        except BadRequest as exc:
            status, body = exc.status, _dumps(exc.body())
        except Exception:
            log.exception("unhandled error serving %s %s", method, path)
            status, body = 500, _dumps({"error": "internal server error", "field": None, "index": None})
        headers.append(("Content-Length", str(len(body))))
        start_response(f"{status} {_REASONS[status]}", headers)
        return [b""] if method == "HEAD" else [body]

    return app
