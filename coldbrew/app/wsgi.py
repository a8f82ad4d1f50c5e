"""The WSGI application: ``GET /``, ``POST /predict``, ``GET /openapi.json``, and CORS when asked for.

A hand-written router over the standard library's ``json``: four routes do not need a framework, and every
import here is cold-start time (docs/serving.md has the measured costs). Requests become lists of rows and the
predictor's answers are read as lists, so serving a .brew model imports no numpy.
"""

from __future__ import annotations

from coldbrew import jsonlite  # json.loads/dumps without importing json (re, enum, ...)
from coldbrew.app.contract import Contract, contract_of
from coldbrew.app.validation import MAX_ROWS, InvalidRequest, decode_json, parse_rows
from coldbrew.engine.inputs import InvalidInputError
from coldbrew.errors import ConfigError, ModelFormatError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up (type checkers read it as true)

if TYPE_CHECKING:
    from typing import Any
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from coldbrew.engine.protocol import Predictor


def _log():
    """The app's logger, imported on first use: only errors are logged, and logging costs ~3 ms at start-up."""
    import logging

    return logging.getLogger("coldbrew.app")


DEFAULT_MAX_BODY_BYTES = 1_048_576

#: Seconds a browser may cache a CORS preflight answer (``Access-Control-Max-Age``).
CORS_MAX_AGE_S = 600
#: The request headers a cross-origin caller may send (``Access-Control-Allow-Headers``).
CORS_ALLOW_HEADERS = "Content-Type"

_REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
}


def _dumps(obj) -> bytes:
    return jsonlite.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def _model_name(predictor) -> str:
    """What the OpenAPI document calls the model: the estimator it came from, else the predictor's kind."""
    source = (getattr(predictor, "header", None) or {}).get("source")
    if isinstance(source, dict) and isinstance(source.get("estimator"), str):
        return source["estimator"]
    return str(getattr(predictor, "kind", "model"))


def cors_origin(text: str) -> str:
    """``text`` as an origin CORS can allow (``scheme://host[:port]``, or ``*`` for any), else ConfigError."""
    origin = text.strip()
    if origin == "*":
        return origin
    scheme, sep, rest = origin.partition("://")
    rest = rest[:-1] if rest.endswith("/") else rest
    host = rest.rsplit(":", 1)[0] if rest.rsplit(":", 1)[-1].isdigit() else rest
    if (
        not sep
        or scheme.lower() not in ("http", "https")
        or not host
        or any(c in rest for c in "/?#@ \t\r\n,*")
        or not origin.isascii()
        or not origin.isprintable()
    ):
        raise ConfigError(
            f"CORS origin {text!r} is not an origin: give scheme://host[:port] (e.g. https://app.example.com) or *"
        )
    return f"{scheme.lower()}://{rest.lower()}"


def _is_json(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


def _read_body(environ, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes without reading them."""
    length = environ.get("CONTENT_LENGTH", "").strip()
    if length:
        if not length.isdigit():
            raise InvalidRequest("invalid Content-Length header")
        size = int(length)
        if size > limit:
            raise InvalidRequest(f"request body is {size} bytes; the limit is {limit} bytes", status=413)
        return _read_input(environ, size) if size else b""
    if not environ.get("wsgi.input_terminated"):
        raise InvalidRequest("send a Content-Length header", status=411)
    raw = _read_input(environ, limit + 1)
    if len(raw) > limit:
        raise InvalidRequest(f"request body exceeds the limit of {limit} bytes", status=413)
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
        raise InvalidRequest(f"malformed or incomplete request body: {detail}"[:300]) from None


def _tolist(values: Any) -> list:
    """A predictor's answer as a list: BrewPredictor answers lists with lists, other predictors numpy arrays."""
    return values if isinstance(values, list) else values.tolist()


def responder(predictor: Predictor, contract: Contract):
    """``rows (lists of floats, NaN = missing) → list of result dicts`` in the shape of ``contract.task``.

    - binary: ``{"prediction": label, "probability": P(second class)}``;
    - multiclass: ``{"prediction": label, "probabilities": {label: p, ...}}`` in the model's class order;
    - a classifier without probabilities (hard voting): ``{"prediction": label}``;
    - regression: ``{"prediction": value}`` (a vector for a multi-output model);
    - anomaly: ``{"prediction": 1 or -1, "score": score_samples, "decision": decision_function}``;
    - ranking: ``{"score": value}`` (the ranker's ``predict``: a relevance score, comparable within a query).

    The label is the model's own ``predict`` (its threshold or argmax), mapped to its display label; the
    probabilities are its ``predict_proba``.
    """
    if contract.task == "anomaly":

        def detect(X: list[list[float]]) -> list[dict]:
            scores = _tolist(predictor.score_samples(X))  # type: ignore[attr-defined]
            decisions = _tolist(predictor.decision_function(X))  # type: ignore[attr-defined]
            predicted = _tolist(predictor.predict(X))
            return [
                {"prediction": p, "score": s, "decision": d}
                for p, s, d in zip(predicted, scores, decisions, strict=True)
            ]

        return detect
    if contract.task == "ranking":

        def rank(X: list[list[float]]) -> list[dict]:
            return [{"score": v} for v in _tolist(predictor.predict(X))]

        return rank
    if contract.task == "regression":

        def regress(X: list[list[float]]) -> list[dict]:
            return [{"prediction": v} for v in _tolist(predictor.predict(X))]

        return regress
    label_of = contract.label_of()
    labels = contract.labels
    assert labels is not None  # contract_of gives every binary or multiclass contract its labels

    def classify(X: list[list[float]]) -> list[dict]:
        predicted = [label_of[c] for c in _tolist(predictor.predict(X))]
        if not contract.probabilities:  # a classifier without predict_proba (hard voting): the label alone
            return [{"prediction": y} for y in predicted]
        proba = _tolist(predictor.predict_proba(X))
        if contract.task == "binary":
            return [{"prediction": y, "probability": ps[1]} for y, ps in zip(predicted, proba, strict=True)]
        return [
            {"prediction": y, "probabilities": dict(zip(labels, ps, strict=True))}
            for y, ps in zip(predicted, proba, strict=True)
        ]

    return classify


def create_app(
    predictor: Predictor,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_rows: int = MAX_ROWS,
    cors: tuple[str, ...] = (),
) -> WSGIApplication:
    """A WSGI application serving ``predictor`` with the contract its model states (docs/serving.md).

    Args:
        predictor: a loaded model (``load_predictor``'s result); its header states the request fields, which
            accept null, the task and the class labels (``coldbrew.app.contract``).
        max_body_bytes: larger request bodies get a 413 before they are read.
        max_rows: more rows in one request get a 413.
        cors: origins (``scheme://host[:port]``, or ``*``) whose browsers may call the API: ``OPTIONS`` preflight
            requests are answered and responses to a request from such an ``Origin`` carry
            ``Access-Control-Allow-Origin``. Empty (the default): no CORS, ``OPTIONS`` is a 405.

    Returns:
        A WSGI callable answering ``GET /`` (health), ``POST /predict`` and ``GET /openapi.json``.

    Raises:
        ModelFormatError: the model's serving metadata contradicts itself (at creation, never per request).
        ConfigError: a ``cors`` entry is not an origin.
        Nothing at request time: a request the client must fix gets a 4xx JSON body naming the problem
        (``{"error", "field", "index"}``), anything else is logged and answered with a 500 JSON body.
    """
    contract = contract_of(predictor)
    features, nullable = contract.features, contract.nullable
    answer = responder(predictor, contract)
    health = _dumps({"success": True})
    openapi: list[bytes] = []  # built on the first GET /openapi.json: no request to /predict needs it

    def openapi_document(environ: WSGIEnvironment) -> bytes:
        if not openapi:
            from coldbrew.app.openapi import build_openapi

            openapi.append(
                _dumps(build_openapi(contract, max_body_bytes, model=_model_name(predictor), max_rows=max_rows))
            )
        return openapi[0]

    allowed_origins = frozenset(cors_origin(origin) for origin in cors)
    any_origin = "*" in allowed_origins

    def predict(environ: WSGIEnvironment) -> bytes:
        if not _is_json(environ.get("CONTENT_TYPE", "")):
            raise InvalidRequest("Content-Type must be application/json", status=415)
        payload = decode_json(_read_body(environ, max_body_bytes))
        rows, is_batch = parse_rows(payload, features, nullable, max_rows, contract.types)
        try:
            results = answer(rows)
        except InvalidInputError as exc:  # a value the model refuses (an unknown category it does not take, ...)
            raise InvalidRequest(str(exc)) from None
        return _dumps(results if is_batch else results[0])

    routes = {
        "/": {"GET": lambda environ: health},
        "/predict": {"POST": predict},
        "/openapi.json": {"GET": openapi_document},
    }

    def allow_origin(environ: WSGIEnvironment) -> list[tuple[str, str]]:
        """The CORS response headers for this request's ``Origin`` (none when it is not allowed)."""
        origin = environ.get("HTTP_ORIGIN")
        if origin is None:
            return [("Vary", "Origin")] if allowed_origins and not any_origin else []
        if any_origin:
            return [("Access-Control-Allow-Origin", "*")]
        if origin.lower() in allowed_origins:
            return [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
        return [("Vary", "Origin")]

    def preflight(environ: WSGIEnvironment, allowed: list[str], start_response: StartResponse) -> list[bytes]:
        cors_headers = allow_origin(environ)
        headers = [("Allow", ", ".join(allowed)), *cors_headers]
        if any(name == "Access-Control-Allow-Origin" for name, _ in cors_headers):
            headers += [
                ("Access-Control-Allow-Methods", ", ".join(allowed)),
                ("Access-Control-Allow-Headers", CORS_ALLOW_HEADERS),
                ("Access-Control-Max-Age", str(CORS_MAX_AGE_S)),
            ]
        headers.append(("Content-Length", "0"))
        start_response("204 No Content", headers)
        return [b""]

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "") or "/"
        headers = [("Content-Type", "application/json")]
        if allowed_origins:
            headers += allow_origin(environ)
        try:
            handlers = routes.get(path)
            if handlers is None:
                raise InvalidRequest(f"no route {path}; try GET /, POST /predict or GET /openapi.json", status=404)
            handler = handlers.get("GET" if method == "HEAD" else method)
            if handler is None:
                allowed = sorted(handlers) + (["HEAD"] if "GET" in handlers else [])
                if method == "OPTIONS" and allowed_origins:
                    return preflight(environ, [*allowed, "OPTIONS"], start_response)
                headers.append(("Allow", ", ".join(allowed)))
                raise InvalidRequest(f"method {method} not allowed on {path}; use {', '.join(allowed)}", status=405)
            status, body = 200, handler(environ)
        except InvalidRequest as exc:
            status, body = exc.status, _dumps(exc.body())
        except ModelFormatError as exc:  # corruption a kernel met while predicting: the server's fault, one log line
            _log().error("%s %s: %s", method, path, exc)
            status, body = 500, _dumps({"error": "the model file is corrupt", "field": None, "index": None})
        except Exception:  # noqa: BLE001 - any other failure is the server's: logged, answered as a 500 JSON body
            _log().exception("unhandled error serving %s %s", method, path)
            status, body = 500, _dumps({"error": "internal server error", "field": None, "index": None})
        headers.append(("Content-Length", str(len(body))))
        start_response(f"{status} {_REASONS[status]}", headers)
        return [b""] if method == "HEAD" else [body]

    return app
