"""The Lambda handler: every front door's events, warm-ups, SnapStart hooks, and the real runtime client.

Events in tests/events/ follow AWS's documented payloads (REST v1, HTTP API v2, Function URL, ALB). One test
runs ``python -m awslambdaric coldbrew.aws.handler`` against a minimal Runtime API server written here.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from lambdatools import (  # noqa: F401
    EVENTS,
    STUDY_ROW,
    Context,
    RuntimeAPI,
    body_of,
    headers_of,
    load_event,
    start_runtime,
)
from proctools import terminate

from coldbrew.errors import ColdbrewError
from coldbrew.runtimes.aws_lambda import MAX_HOLD_MS, MAX_HTTP_HOLD_MS, init_from_env, parse_hold_ms


@pytest.fixture
def make_handler(tiny_brew, capsys):
    """A fresh execution environment (handler) per call, serving the tiny .brew model."""

    def make(model=tiny_brew, **extra):
        environ = {"MODEL_SOURCE": "DISK", "MODEL_URI": str(model), **extra}
        return init_from_env(environ)

    return make


@pytest.fixture
def expected(tiny_model):
    """P(>$50K) for a row, from scikit-learn itself: the study's model unpickled, asked on a one-row DataFrame."""
    import pickle

    import pandas as pd

    from coldbrew.experiment.dataset import FEATURES

    model = pickle.loads(tiny_model.read_bytes())

    def of(row):
        return float(model.predict_proba(pd.DataFrame([row], columns=list(FEATURES)))[0][1])

    return of


PREDICT_EVENTS = [
    "rest-v1-predict.json",
    "rest-v1-predict-base64.json",
    "rest-v1-predict-single-value.json",
    "http-v2-predict.json",
    "http-v2-predict-base64.json",
    "function-url-predict.json",
    "function-url-predict-base64.json",
    "alb-predict.json",
    "alb-predict-base64.json",
]


@pytest.mark.parametrize("name", PREDICT_EVENTS)
def test_predict_through_every_front_door(make_handler, expected, name):
    handler = make_handler()
    response = handler(load_event(name), Context())
    assert response["statusCode"] == 200
    body = body_of(response)
    probability = expected(STUDY_ROW)
    assert body == {"prediction": ">$50K" if probability >= 0.5 else "<=$50K", "probability": probability}
    headers = headers_of(response)
    assert headers["content-type"][0].startswith("application/json")
    assert headers["x-coldbrew-env"] == [handler.env_id]
    assert headers["x-coldbrew-cold"] == ["1"]
    if "multiValueHeaders" in load_event(name):
        assert "multiValueHeaders" in response  # REST/ALB multi-value mode answers in kind


@pytest.mark.parametrize(
    "name", ["rest-v1-root.json", "http-v2-root.json", "alb-root.json", "alb-multivalue-root.json"]
)
def test_root(make_handler, name):
    response = make_handler()(load_event(name), Context())
    assert response["statusCode"] == 200
    assert body_of(response) == {"success": True}


def test_provisioned_environments_flag_no_request_cold(make_handler, capsys):
    """Provisioned concurrency initialises ahead of traffic: the first request did not wait for init."""
    handler = make_handler(AWS_LAMBDA_INITIALIZATION_TYPE="provisioned-concurrency")
    first = handler(load_event("http-v2-root.json"), Context())
    assert headers_of(first)["x-coldbrew-cold"] == ["0"]
    handler.after_restore()  # a restored snapshot is paid by its first request, whatever came before
    assert headers_of(handler(load_event("http-v2-root.json"), Context()))["x-coldbrew-cold"] == ["1"]


def test_cold_header_only_on_the_first_request_of_an_environment(make_handler, capsys):
    handler = make_handler()
    capsys.readouterr()
    first = handler(load_event("http-v2-root.json"), Context())
    second = handler(load_event("http-v2-predict.json"), Context())
    assert headers_of(first)["x-coldbrew-cold"] == ["1"]
    assert headers_of(second)["x-coldbrew-cold"] == ["0"]
    assert headers_of(first)["x-coldbrew-env"] == headers_of(second)["x-coldbrew-env"]
    other = make_handler()
    assert headers_of(other(load_event("http-v2-root.json"), Context()))["x-coldbrew-env"] != [handler.env_id]

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    invokes = [r for r in lines if r.get("event") == "coldbrew.invoke"]
    assert [r["cold"] for r in invokes] == [True, False, True]
    for record in invokes:
        assert record["request_id"] and record["latency_ms"] >= 0 and record["status"] == 200


def test_init_logs_one_json_line_with_phases_and_model(make_handler, tiny_brew, capsys):
    capsys.readouterr()
    handler = make_handler()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(lines) == 1
    init = lines[0]
    assert init["event"] == "coldbrew.startup" and init["env"] == handler.env_id
    assert set(init["timings_ms"]) >= {"imports", "fetch", "load", "warmup"}
    assert init["model"]["format"] == "brew" and init["model"]["size_bytes"] == tiny_brew.stat().st_size
    assert init["snapstart_hooks"] is False


def test_errors_keep_the_app_json_shapes(make_handler):
    handler = make_handler()
    missing = handler(load_event("http-v2-predict-missing-field.json"), Context())
    assert missing["statusCode"] == 400  # docs/serving.md: a missing feature is a 400 naming it
    assert body_of(missing)["field"] == "age" and "error" in body_of(missing)
    wrong_method = handler(load_event("http-v2-predict-get.json"), Context())
    assert wrong_method["statusCode"] == 405 and "error" in body_of(wrong_method)
    unknown = handler(load_event("http-v2-unknown-route.json"), Context())
    assert unknown["statusCode"] == 404 and "error" in body_of(unknown)
    for response in (missing, wrong_method, unknown):
        assert headers_of(response)["x-coldbrew-env"] == [handler.env_id]


def test_batch(make_handler, expected):
    response = make_handler()(load_event("http-v2-predict-batch.json"), Context())
    rows = json.loads(load_event("http-v2-predict-batch.json")["body"])
    assert [r["probability"] for r in body_of(response)] == [expected(r) for r in rows]


def test_unsupported_event_is_a_clear_400(make_handler):
    response = make_handler()({"Records": []}, Context())
    assert response["statusCode"] == 400
    assert "unsupported event" in body_of(response)["error"]


def test_warm_event_holds_and_reports_env_and_cold(make_handler):
    handler = make_handler()
    started = time.perf_counter()
    first = handler({"coldbrew": "warm", "hold_ms": 150}, Context())
    assert time.perf_counter() - started >= 0.15
    assert first == {"env": handler.env_id, "cold": True, "held_ms": 150}
    assert handler(load_event("warm.json"), Context()) == {"env": handler.env_id, "cold": False, "held_ms": 0}
    bad = handler({"coldbrew": "warm", "hold_ms": "long"}, Context())
    assert bad["field"] == "hold_ms" and "error" in bad


WARM_SECRET = "correct-horse-battery-staple"


def warm_http_event(body: dict | None = None, secret: str | None = WARM_SECRET) -> dict:
    """The HTTP API's POST /_warm event, with the warm-up secret header when ``secret`` is given."""
    event = load_event("http-v2-warm.json")
    if secret is not None:
        event["headers"]["x-coldbrew-warm-secret"] = secret
    if body is not None:
        event["body"] = json.dumps(body)
    return event


def test_warm_over_http_needs_the_secret_and_caps_the_hold(make_handler):
    handler = make_handler(COLDBREW_WARM_SECRET=WARM_SECRET)
    response = handler(warm_http_event(), Context())
    assert response["statusCode"] == 200
    assert body_of(response) == {"env": handler.env_id, "cold": True, "held_ms": 0}
    assert headers_of(response)["x-coldbrew-cold"] == ["1"]
    for secret in (None, "", "wrong", WARM_SECRET[:-1], WARM_SECRET + "x", "\ud800"):
        refused = handler(warm_http_event(secret=secret), Context())
        assert refused["statusCode"] == 403, secret
        assert body_of(refused)["field"] == "X-Coldbrew-Warm-Secret"
    # Direct invocations may hold up to 10 s; over HTTP a warm-up holds a few hundred ms at most.
    assert MAX_HTTP_HOLD_MS <= 500
    rejected = handler(warm_http_event({"hold_ms": MAX_HTTP_HOLD_MS + 1}), Context())
    assert rejected["statusCode"] == 400 and body_of(rejected)["field"] == "hold_ms"
    assert str(MAX_HTTP_HOLD_MS) in body_of(rejected)["error"]
    assert handler({"coldbrew": "warm", "hold_ms": MAX_HTTP_HOLD_MS + 1}, Context())["held_ms"] == MAX_HTTP_HOLD_MS + 1


def test_warm_route_is_closed_without_a_secret(make_handler):
    """No COLDBREW_WARM_SECRET: /_warm is an unknown path (the app's 404), even with a secret header."""
    for extra in ({}, {"COLDBREW_WARM_SECRET": ""}):
        handler = make_handler(**extra)
        for secret in (None, "", WARM_SECRET):
            response = handler(warm_http_event(secret=secret), Context())
            assert response["statusCode"] == 404 and "held_ms" not in response["body"]
        assert handler(load_event("warm.json"), Context())["env"] == handler.env_id  # direct warm-ups still work


def test_warm_ups_never_load_the_model_again(make_handler, monkeypatch):
    import coldbrew.engine

    handler = make_handler(COLDBREW_WARM_SECRET=WARM_SECRET)
    monkeypatch.setattr(coldbrew.engine, "load_predictor", lambda *a, **k: pytest.fail("model loaded twice"))
    for _ in range(3):
        handler(load_event("warm.json"), Context())
        assert handler(warm_http_event(), Context())["statusCode"] == 200
    assert handler.served == 6


def test_wsgi_app_for_zappa_counts_cold_per_environment(make_handler):
    """``coldbrew.aws.app`` (what Zappa hosts) answers like the handler, headers included."""
    from io import BytesIO
    from wsgiref.util import setup_testing_defaults

    handler = make_handler(COLDBREW_WARM_SECRET=WARM_SECRET)
    seen = []

    def call(path, method="GET", body=b""):
        environ = {
            "PATH_INFO": path,
            "REQUEST_METHOD": method,
            "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "application/json",
            "wsgi.input": BytesIO(body),
            "HTTP_X_COLDBREW_WARM_SECRET": WARM_SECRET,
        }
        setup_testing_defaults(environ)
        out = b"".join(
            handler.wsgi(environ, lambda status, headers, exc_info=None: seen.append((status, dict(headers))))
        )
        return json.loads(out)

    assert call("/") == {"success": True}
    assert call("/_warm", "POST", b'{"hold_ms": 0}') == {"env": handler.env_id, "cold": False, "held_ms": 0}
    assert seen[0][1]["X-Coldbrew-Cold"] == "1" and seen[1][1]["X-Coldbrew-Cold"] == "0"
    assert seen[0][1]["X-Coldbrew-Env"] == seen[1][1]["X-Coldbrew-Env"] == handler.env_id


def test_warm_with_a_bad_content_length_is_a_400_not_a_traceback(make_handler):
    from io import BytesIO
    from wsgiref.util import setup_testing_defaults

    handler = make_handler(COLDBREW_WARM_SECRET="s3cret")
    seen = []
    environ = {
        "PATH_INFO": "/_warm",
        "REQUEST_METHOD": "POST",
        "CONTENT_LENGTH": "lots",
        "CONTENT_TYPE": "application/json",
        "wsgi.input": BytesIO(b"{}"),
        "HTTP_X_COLDBREW_WARM_SECRET": "s3cret",
    }
    setup_testing_defaults(environ)
    out = b"".join(handler.wsgi(environ, lambda status, headers, exc_info=None: seen.append(status)))
    assert seen == ["400 Bad Request"]
    assert json.loads(out) == {"error": "invalid Content-Length header", "field": "hold_ms"}


def test_parse_hold_ms():
    assert parse_hold_ms(None) == 250 and parse_hold_ms(0) == 0 and parse_hold_ms(99.9) == 99
    for bad in (True, -1, MAX_HOLD_MS + 1, "5", float("nan")):
        with pytest.raises(ColdbrewError, match="hold_ms"):
            parse_hold_ms(bad)
    assert parse_hold_ms(None, limit=100) == 100 and parse_hold_ms(100, limit=100) == 100
    with pytest.raises(ColdbrewError, match="between 0 and 100"):
        parse_hold_ms(101, limit=100)


def test_snapstart_hooks_renew_identity_and_randomness(make_handler):
    import random

    import snapshot_restore_py

    before = list(snapshot_restore_py.get_before_snapshot())
    after = list(snapshot_restore_py.get_after_restore())
    try:
        handler = make_handler(AWS_LAMBDA_INITIALIZATION_TYPE="snap-start")
        snapshot_env = handler.env_id
        handler(load_event("warm.json"), Context())  # would not happen before a snapshot; proves the reset
        for func, args, kwargs in snapshot_restore_py.get_before_snapshot()[len(before) :]:
            func(*args, **kwargs)
        # Two environments restored from one snapshot must not share random streams.
        random.seed(1234)
        np.random.seed(1234)
        snapshotted = (random.random(), np.random.random())
        random.seed(1234)
        np.random.seed(1234)
        for func, args, kwargs in snapshot_restore_py.get_after_restore()[len(after) :]:
            func(*args, **kwargs)
        assert random.random() != snapshotted[0] and np.random.random() != snapshotted[1]
        assert handler.env_id != snapshot_env
        assert handler.served == 0
        response = handler(load_event("http-v2-root.json"), Context())
        assert headers_of(response)["x-coldbrew-cold"] == ["1"]
        assert headers_of(response)["x-coldbrew-env"] == [handler.env_id]
    finally:
        del snapshot_restore_py.get_before_snapshot()[len(before) :]
        del snapshot_restore_py.get_after_restore()[len(after) :]


# ------------------------------------------------------------------------------------------ real awslambdaric


@pytest.fixture
def runtime(tmp_path):
    """Start ``python -m awslambdaric coldbrew.aws.handler`` against a fresh Runtime API; stop both after."""
    api = RuntimeAPI()
    procs = []

    def start(**env):
        log = open(tmp_path / f"runtime{len(procs)}.log", "wb")
        proc = start_runtime(api, tmp_path, log, **env)
        procs.append((proc, log))
        return proc, tmp_path / f"runtime{len(procs) - 1}.log"

    yield api, start
    for proc, log in procs:
        terminate(proc)
        log.close()
    api.close()


def _json_lines(path: Path) -> list[dict]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        start = line.find("{")
        if start >= 0:
            try:
                out.append(json.loads(line[start:]))
            except ValueError:
                pass
    return out


@pytest.mark.integration
def test_handler_under_the_real_awslambdaric(runtime, tiny_brew, expected):
    api, start = runtime
    _proc, log = start(MODEL_SOURCE="DISK", MODEL_URI=str(tiny_brew))
    first = api.invoke(load_event("http-v2-predict.json"))
    assert first["statusCode"] == 200
    assert body_of(first)["probability"] == expected(STUDY_ROW)
    assert first["headers"]["x-coldbrew-cold"] == "1"
    env = first["headers"]["x-coldbrew-env"]
    second = api.invoke(load_event("rest-v1-root.json"))
    assert second["statusCode"] == 200 and body_of(second) == {"success": True}
    assert second["multiValueHeaders"]["X-Coldbrew-Env"] == [env]
    assert second["multiValueHeaders"]["X-Coldbrew-Cold"] == ["0"]
    assert api.invoke(load_event("warm.json")) == {"env": env, "cold": False, "held_ms": 0}

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        records = _json_lines(log)
        if sum(r.get("event") == "coldbrew.invoke" for r in records) == 3:
            break
        time.sleep(0.05)
    startup = [r for r in records if r.get("event") == "coldbrew.startup"]
    assert len(startup) == 1 and startup[0]["env"] == env and startup[0]["model"]["format"] == "brew"
    assert [r["cold"] for r in records if r.get("event") == "coldbrew.invoke"] == [True, False, False]


@pytest.mark.integration
def test_snapstart_restore_under_the_real_awslambdaric(runtime, tiny_brew):
    api, start = runtime
    _proc, log = start(MODEL_SOURCE="DISK", MODEL_URI=str(tiny_brew), AWS_LAMBDA_INITIALIZATION_TYPE="snap-start")
    answer = api.invoke(load_event("warm.json"))
    assert api.restored.is_set(), "awslambdaric never asked for /restore/next"
    records = _json_lines(log)
    snapshot_env = next(r for r in records if r.get("event") == "coldbrew.startup")["env"]
    assert [r["event"] for r in records if r.get("event", "").startswith("coldbrew.")][:3] == [
        "coldbrew.startup",
        "coldbrew.before_snapshot",
        "coldbrew.after_restore",
    ]
    assert answer["cold"] is True and answer["env"] != snapshot_env


@pytest.mark.integration
def test_bad_configuration_is_an_init_error(runtime):
    api, start = runtime
    proc, log = start(MODEL_SOURCE="FTP", MODEL_URI="/nowhere")
    error = api.wait_init_error()
    assert "MODEL_SOURCE" in error["errorMessage"]
    assert proc.wait(timeout=10) != 0
    assert any(r.get("event") == "coldbrew.startup_error" for r in _json_lines(log))


@pytest.mark.integration
def test_model_from_s3_under_the_real_awslambdaric(runtime, tiny_brew, s3_server, tmp_path, expected):
    """The image-s3 setup end to end: MODEL_SOURCE=S3 against a real S3 server (SeaweedFS), fetched at init."""
    s3_server.create_bucket("coldbrew-lambda")
    s3_server.upload(tiny_brew, "coldbrew-lambda", "models/tiny.brew")
    api, start = runtime
    _proc, log = start(
        MODEL_SOURCE="S3", MODEL_URI="s3://coldbrew-lambda/models/tiny.brew", TMPDIR=str(tmp_path), **s3_server.env()
    )
    response = api.invoke(load_event("function-url-predict.json"))
    assert response["statusCode"] == 200
    assert body_of(response)["probability"] == expected(STUDY_ROW)
    startup = next(r for r in _json_lines(log) if r.get("event") == "coldbrew.startup")
    assert startup["model"]["source"] == "S3" and startup["model"]["size_bytes"] == tiny_brew.stat().st_size
    assert startup["timings_ms"]["fetch"] > 0
