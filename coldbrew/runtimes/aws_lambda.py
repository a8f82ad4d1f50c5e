"""The AWS Lambda handler: one entry point for every HTTP front door, plus warm-ups and SnapStart hooks.

The deployed handler is ``coldbrew.aws.handler``; importing :mod:`coldbrew.aws` is Lambda's init phase and
loads the model (like the study, so the first invocation pays for it and the init log line measures it).

- HTTP: API Gateway REST (payload 1.0, incl. ``multiValueHeaders``), HTTP API (payload 2.0), Function URLs
  (2.0) and ALB events are translated to WSGI by :mod:`coldbrew.runtimes.lambda_http` (apig-wsgi's translation,
  checked against it by the tests) and served by the same app as ``coldbrew serve``.
- Every response carries ``X-Coldbrew-Env`` (this execution environment's id) and ``X-Coldbrew-Cold``: ``1`` on
  the first request the environment serves, ``0`` on the others — and on every request of a provisioned-concurrency
  environment (``AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency``), whose init no request waited for.
- Warm-up: the event ``{"coldbrew": "warm", "hold_ms": 250}`` (a direct invocation, IAM-protected) holds the
  environment ``hold_ms`` (at most 10 s) and answers ``{"env": ID, "cold": bool, "held_ms": N}``, no prediction.
  ``POST /_warm`` does the same over HTTP only when ``COLDBREW_WARM_SECRET`` is set, only for requests whose
  ``X-Coldbrew-Warm-Secret`` header matches it (compared in constant time; else 403), and holds at most
  ``MAX_HTTP_HOLD_MS``; without the variable ``/_warm`` is just an unknown path (the app's 404).
- SnapStart: before the snapshot the model's pages are touched; after a restore the environment gets a new
  id and cold flag, random generators are reseeded and cached S3 clients dropped (docs/deploy.md).

Each invocation logs one JSON line ``{"event": "coldbrew.invoke", "request_id", "latency_ms", "cold", ...}``.
Init imports only what serving needs: the app, the engine and json (with the ``re`` and ``enum`` it brings); no
``typing``, ``pathlib``, ``logging`` or ``urllib``, and ``base64`` only for a base64 body.
tests/runtimes/test_handler_imports.py holds the allow-list; bench/results/floor.md measures it on the built zip.
"""

from __future__ import annotations

import os
import sys
import time

from coldbrew import jsonlite  # json.loads/dumps without importing json (re, enum, ...)
from coldbrew.errors import ColdbrewError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up (type checkers read it as true)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from coldbrew.app.startup import Startup

WARM_EVENT_KEY = "coldbrew"
DEFAULT_HOLD_MS = 250
MAX_HOLD_MS = 10_000
# On the HTTP route a warm-up costs its caller one request but holds an environment this long at most:
# enough for concurrent warm-ups to land on distinct environments, too little to amplify a flood.
MAX_HTTP_HOLD_MS = 500
WARM_PATH = "/_warm"
WARM_SECRET_ENV = "COLDBREW_WARM_SECRET"
WARM_SECRET_HEADER = "X-Coldbrew-Warm-Secret"
SNAP_START = "snap-start"
PROVISIONED = "provisioned-concurrency"


class WarmRequestError(ColdbrewError):
    """A warm-up request with an unusable ``hold_ms``."""


def parse_hold_ms(value, limit: int = MAX_HOLD_MS) -> int:
    """``hold_ms`` from a warm-up request: absent → default, else an integer number of ms in [0, ``limit``]."""
    if value is None:
        return min(DEFAULT_HOLD_MS, limit)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise WarmRequestError("hold_ms must be a number of milliseconds")
    if not 0 <= value <= limit:
        raise WarmRequestError(f"hold_ms must be between 0 and {limit}")
    return int(value)


def warm_secret_matches(expected: str, given: str | None) -> bool:
    """True when ``given`` equals the warm-route secret, compared in constant time (digests, so not even the
    secret's length leaks)."""
    import hashlib
    import hmac

    if given is None:
        return False
    expected_digest = hashlib.sha256(expected.encode("utf-8", "surrogatepass")).digest()
    given_digest = hashlib.sha256(given.encode("utf-8", "surrogatepass")).digest()
    return hmac.compare_digest(expected_digest, given_digest)


def is_warm_path(environ: WSGIEnvironment) -> bool:
    """True only for the exact warm-up path. ``PATH_INFO`` is percent-decoded, so ``/%5Fwarm`` decodes to it too:
    the path as sent (``coldbrew.raw_path`` from the Lambda event; ``RAW_URI``/``REQUEST_URI`` from WSGI servers that keep
    it) must be ``/_warm`` itself, below ``SCRIPT_NAME``. ``/_warm/`` and ``//_warm`` are other paths."""
    if environ.get("PATH_INFO") != WARM_PATH:
        return False
    raw = environ.get("coldbrew.raw_path") or environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw is None:  # a host that keeps no raw path: PATH_INFO is all there is
        return True
    return raw.partition("?")[0] == environ.get("SCRIPT_NAME", "") + WARM_PATH


def is_warm_event(event) -> bool:
    """True for a direct warm-up invocation: ``{"coldbrew": "warm", ...}``."""
    return isinstance(event, dict) and event.get(WARM_EVENT_KEY) == "warm"


# ---------------------------------------------------------------------- event validation
# Lambda hands the handler whatever JSON the caller sent: checked here, before the translation sees it, so a malformed
# event is answered 400 with a JSON body naming the problem instead of a KeyError/AttributeError/binascii.Error.

UNSUPPORTED_EVENT = (
    "unsupported event: expected API Gateway (REST or HTTP API), a Function URL, an ALB, "
    'or a warm-up {"coldbrew": "warm", "hold_ms": 250}'
)


def _kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__
    )


def _string_map(event: dict, key: str, *, multi: bool = False, required: bool = False) -> str | None:
    """A problem with ``event[key]`` as a map of strings (or of non-empty lists of strings), or None."""
    if key not in event or event[key] is None:
        return f"{key} is missing" if required else None
    value = event[key]
    if not isinstance(value, dict):
        return f"{key} must be an object, got {_kind(value)}"
    for name, item in value.items():
        if not isinstance(name, str):
            return f"{key} names must be strings"
        if multi:
            if not isinstance(item, list) or not item or not all(isinstance(v, str) for v in item):
                return f"{key}[{name!r}] must be a non-empty list of strings, got {_kind(item)}"
        elif not isinstance(item, str):
            return f"{key}[{name!r}] must be a string, got {_kind(item)}"
    return None


def _string_field(mapping: dict, key: str, where: str = "") -> str | None:
    if key not in mapping:
        return f"{where}{key} is missing"
    if not isinstance(mapping[key], str):
        return f"{where}{key} must be a string, got {_kind(mapping[key])}"
    return None


def event_problem(event) -> str | None:
    """What makes ``event`` unusable as an HTTP event (REST/HTTP API, Function URL, ALB), or None if it is usable.

    Checks everything the translation to WSGI (:mod:`coldbrew.runtimes.lambda_http`) reads: the request line fields, headers and query strings as maps of strings,
    the body as a string and, when ``isBase64Encoded`` is true, as valid base64.
    """
    if not isinstance(event, dict):
        return f"event must be a JSON object, got {_kind(event)}; " + UNSUPPORTED_EVENT
    if not ("requestContext" in event or "httpMethod" in event):
        return UNSUPPORTED_EVENT
    context = event.get("requestContext")
    if "requestContext" in event and not isinstance(context, dict):
        return f"requestContext must be an object, got {_kind(context)}"
    alb = isinstance(context, dict) and "elb" in context
    version = "alb" if alb else event.get("version", "1.0")
    problems: list[str | None] = []
    if version in ("1.0", "alb"):
        problems += [
            _string_field(event, "httpMethod"),
            _string_field(event, "path"),
            _string_map(event, "headers"),
            _string_map(event, "multiValueHeaders", multi=True),
            _string_map(event, "queryStringParameters"),
            _string_map(event, "multiValueQueryStringParameters", multi=True),
        ]
    elif version == "2.0":
        http = context.get("http") if isinstance(context, dict) else None
        if not isinstance(http, dict):
            return "requestContext.http is missing" if http is None else "requestContext.http must be an object"
        problems += [_string_field(http, name, "requestContext.http.") for name in ("method", "sourceIp", "protocol")]
        problems += [
            _string_field(event, "rawPath"),
            _string_field(event, "rawQueryString"),
            _string_map(event, "headers", required=True),
        ]
        cookies = event.get("cookies", [])
        if not isinstance(cookies, list) or not all(isinstance(c, str) for c in cookies):
            problems.append(f"cookies must be a list of strings, got {_kind(cookies)}")
    else:
        return f"unsupported payload format version {version!r}; expected '1.0' (REST API, ALB) or '2.0'"
    body, encoded = event.get("body"), event.get("isBase64Encoded", False)
    if body is not None and not isinstance(body, str):
        problems.append(f"body must be a string or null, got {_kind(body)}")
    elif encoded is not None and not isinstance(encoded, bool):
        problems.append(f"isBase64Encoded must be true or false, got {_kind(encoded)}")
    elif encoded and body:
        import base64  # only events with a base64 body pay for it
        import binascii

        try:
            base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            problems.append("body is not valid base64, but isBase64Encoded is true")
    return next((p for p in problems if p), None)


def bad_event_response(event, problem: str, headers: list[tuple[str, str]]) -> dict:
    """A 400 in the shape the event's front door expects, with the app's JSON error body."""
    body = jsonlite.dumps({"error": f"malformed event: {problem}", "field": None, "index": None})
    pairs = [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *headers]
    response: dict = {"statusCode": 400, "body": body, "isBase64Encoded": False}
    event = event if isinstance(event, dict) else {}
    context = event.get("requestContext")
    if isinstance(context, dict) and "elb" in context:
        response["statusDescription"] = "400 Bad Request"
    if "multiValueHeaders" in event:
        response["multiValueHeaders"] = {name: [value] for name, value in pairs}
    else:
        response["headers"] = dict(pairs)
    return response


def _new_env_id() -> str:
    """16 hex digits from the OS's random source (``secrets.token_hex(8)`` without importing secrets, hmac and
    hashlib at start-up)."""
    return os.urandom(8).hex()


def _log(record: dict) -> None:
    sys.stdout.write(jsonlite.dumps(record, separators=(", ", ": ")) + "\n")
    sys.stdout.flush()


class LambdaHandler:
    """The state of one execution environment and the callable Lambda invokes."""

    def __init__(
        self, startup: Startup, app: WSGIApplication, *, provisioned: bool = False, warm_secret: str | None = None
    ):
        """Wrap ``app`` (serving ``startup.predictor``) for Lambda; ``provisioned`` marks a provisioned-concurrency
        environment, whose first request did not wait for its init and so is not flagged cold; ``warm_secret``
        (``COLDBREW_WARM_SECRET``) opens the HTTP warm-up route to callers that present it."""
        from coldbrew.runtimes.lambda_http import make_lambda_handler

        self.startup = startup
        self.env_id = _new_env_id()
        self.served = 0
        # Provisioned concurrency initialises before any request arrives: no request waits for that init,
        # so none is flagged cold (a SnapStart restore, by contrast, is paid by the first request).
        self._first_is_cold = not provisioned
        self._cold = False  # whether the invocation in progress waited for this environment's init
        self._invoking = False
        #: POST /_warm is served only when set, and only to requests that present it.
        self.warm_secret = warm_secret or None
        #: The app with /_warm and the X-Coldbrew headers, for WSGI hosts such as Zappa (``coldbrew.aws.app``).
        self.wsgi = self._with_warm_route(app)
        self._http = make_lambda_handler(self.wsgi)

    # ------------------------------------------------------------------ invocations

    def _begin(self) -> None:
        self._cold = self.served == 0 and self._first_is_cold
        self.served += 1

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        started = time.perf_counter()
        self._begin()
        self._invoking = True
        record = {"event": "coldbrew.invoke", "request_id": getattr(context, "aws_request_id", None)}
        try:
            if is_warm_event(event):
                result = self._direct_warm(event)
                record["kind"] = "warm"
            else:
                result = self._http_event(event, context, record)
                record["status"] = result.get("statusCode")
            return result
        finally:
            self._invoking = False
            record.update(
                latency_ms=round((time.perf_counter() - started) * 1000.0, 3), cold=self._cold, env=self.env_id
            )
            _log(record)

    def _http_event(self, event: dict, context: Any, record: dict) -> dict:
        """Serve an HTTP event through the WSGI app, or answer 400 naming what is wrong with it."""
        problem = event_problem(event)
        if problem is None:
            try:
                record["kind"] = "http"
                return self._http(event, context)
            except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
                # The app answers every request itself, so what escapes is the translation failing on the event.
                problem = f"{type(exc).__name__}: {exc}"
        record.update(kind="bad_event", error=problem)
        cold = [("X-Coldbrew-Env", self.env_id), ("X-Coldbrew-Cold", "1" if self._cold else "0")]
        return bad_event_response(event, problem, cold)

    def _hold(self, hold_ms: int) -> dict[str, Any]:
        time.sleep(hold_ms / 1000.0)
        return {"env": self.env_id, "cold": self._cold, "held_ms": hold_ms}

    def _direct_warm(self, event: dict[str, Any]) -> dict[str, Any]:
        try:
            return self._hold(parse_hold_ms(event.get("hold_ms")))
        except WarmRequestError as exc:
            return {"error": str(exc), "field": "hold_ms", "env": self.env_id, "cold": self._cold}

    def _with_warm_route(self, app: WSGIApplication) -> WSGIApplication:
        """Wrap the WSGI app: answer ``POST /_warm`` and add the environment headers to every response."""

        def wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
            if not self._invoking:  # hosted as plain WSGI (Zappa): each request counts on its own
                self._begin()

            def start(status, headers, exc_info=None):
                # "0" on warm requests too, so a client can tell "none was cold" from "not a coldbrew server".
                extra = [("X-Coldbrew-Env", self.env_id), ("X-Coldbrew-Cold", "1" if self._cold else "0")]
                return start_response(status, [*headers, *extra], exc_info)

            if self.warm_secret and environ.get("REQUEST_METHOD") == "POST" and is_warm_path(environ):
                return self._http_warm(environ, start, self.warm_secret)
            return app(environ, start)

        return wsgi

    def _http_warm(self, environ: WSGIEnvironment, start: StartResponse, secret: str) -> list[bytes]:
        given = environ.get("HTTP_" + WARM_SECRET_HEADER.upper().replace("-", "_"))
        if not warm_secret_matches(secret, given):
            data = jsonlite.dumps(
                {
                    "error": f"POST {WARM_PATH} needs the warm-up secret in {WARM_SECRET_HEADER}",
                    "field": WARM_SECRET_HEADER,
                }
            ).encode()
            start("403 Forbidden", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
            return [data]
        try:
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                raise WarmRequestError("invalid Content-Length header") from None
            raw = environ["wsgi.input"].read(length) if length else b""
            try:
                body = jsonlite.loads(raw) if raw.strip() else {}
            except (ValueError, RecursionError):  # RecursionError: nested too deeply
                raise WarmRequestError('body must be JSON, e.g. {"hold_ms": 250}') from None
            if not isinstance(body, dict):
                raise WarmRequestError('body must be a JSON object, e.g. {"hold_ms": 250}')
            status, payload = "200 OK", self._hold(parse_hold_ms(body.get("hold_ms"), MAX_HTTP_HOLD_MS))
        except WarmRequestError as exc:
            status, payload = "400 Bad Request", {"error": str(exc), "field": "hold_ms"}
        data = jsonlite.dumps(payload).encode()
        start(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    # ------------------------------------------------------------------ SnapStart

    def before_snapshot(self) -> None:
        """Touch the model (one prediction) so its pages are in the snapshot, then collect garbage."""
        import gc

        predictor = self.startup.predictor
        predictor.predict([[0.0] * len(predictor.feature_names)])  # regressors too
        if hasattr(predictor, "warm"):  # a .brew model: its walk forms in the snapshot too
            predictor.warm()
        gc.collect()
        _log({"event": "coldbrew.before_snapshot", "env": self.env_id})

    def after_restore(self) -> None:
        """A restored snapshot is a new environment: new id, cold again, fresh randomness, no stale clients."""
        previous = self.env_id
        self.env_id = _new_env_id()  # os.urandom: not part of the snapshot
        self.served = 0
        self._first_is_cold = True
        if "random" in sys.modules:
            sys.modules["random"].seed()
        if "numpy.random" in sys.modules:
            sys.modules["numpy.random"].seed()
        if "boto3" in sys.modules:
            # coldbrew's S3 source builds a client per fetch and keeps none; this also drops boto3's default
            # session, whose pooled connections and credentials would be stale copies from the snapshot.
            boto3: Any = sys.modules["boto3"]
            boto3.DEFAULT_SESSION = None
        _log({"event": "coldbrew.after_restore", "env": self.env_id, "snapshot_env": previous})


def register_snapstart_hooks(lambda_handler: LambdaHandler, environ=os.environ) -> bool:
    """Register the SnapStart hooks when Lambda initialises for a snapshot; True if it did."""
    if environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") != SNAP_START:
        return False
    from snapshot_restore_py import register_after_restore, register_before_snapshot

    register_before_snapshot(lambda_handler.before_snapshot)
    register_after_restore(lambda_handler.after_restore)
    return True


def init_from_env(environ: Mapping[str, str] | None = None) -> LambdaHandler:
    """Lambda's init phase: load the model named by ``MODEL_SOURCE``/``MODEL_URI``, log the start-up line."""
    from coldbrew.app import create_app
    from coldbrew.app.startup import load_from_env

    environ = os.environ if environ is None else environ
    try:
        startup = load_from_env(environ)
        app = create_app(startup.predictor)  # refuses a model whose serving metadata contradicts itself
    except Exception as exc:  # logged as one line, then re-raised so Lambda reports an init error
        _log({"event": "coldbrew.startup_error", "error": f"{type(exc).__name__}: {exc}"})
        raise
    init_type = environ.get("AWS_LAMBDA_INITIALIZATION_TYPE")
    lambda_handler = LambdaHandler(
        startup, app, provisioned=init_type == PROVISIONED, warm_secret=environ.get(WARM_SECRET_ENV)
    )
    record = startup.record()
    record.update(
        env=lambda_handler.env_id,
        runtime="aws-lambda",
        init_type=init_type,
        snapstart_hooks=register_snapstart_hooks(lambda_handler, environ),
    )
    _log(record)
    return lambda_handler
