"""The scheduled warmer Lambda (coldbrew/deploy/warmer.py): what it sends, how it counts, how it fails.

Its warm-up events go to real coldbrew handlers (one per simulated environment) so the payload it sends is
checked against the handler that must answer it; boto3's side is exercised with botocore's own Stubber.
"""

from __future__ import annotations

import ast
import io
import json
import threading

import pytest

from coldbrew.deploy import render as tpl
from coldbrew.deploy import warmer


class Context:
    aws_request_id = "warmer-test"


def handlers_as_environments(model, n):
    """``invoke(payload)`` that hands each call to the next of ``n`` real handlers (n environments)."""
    from coldbrew.runtimes.aws_lambda import init_from_env

    envs = [init_from_env({"MODEL_SOURCE": "DISK", "MODEL_URI": str(model)}) for _ in range(n)]
    lock, calls = threading.Lock(), []

    def invoke(payload):
        with lock:
            env = envs[len(calls) % n]
            calls.append(json.loads(payload))
        return None, env(json.loads(payload), Context())

    return invoke, envs, calls


def test_fan_out_warms_x_real_environments_concurrently(tiny_brew, capsys):
    invoke, _envs, calls = handlers_as_environments(tiny_brew, 3)
    barrier = threading.Barrier(3, timeout=30)  # every invocation waits for the others: only concurrency passes

    def concurrent(payload):
        barrier.wait()
        return invoke(payload)

    summary = warmer.fan_out(concurrent, 3, hold_ms=20)
    assert summary == {"event": "coldbrew.warm", "requested": 3, "distinct_envs": 3, "cold": 3, "errors": 0}
    assert calls == [{"coldbrew": "warm", "hold_ms": 20}] * 3
    again = warmer.fan_out(invoke, 3, hold_ms=0)
    assert (again["distinct_envs"], again["cold"]) == (3, 0)  # the same environments, now warm


def test_failures_are_counted_not_raised(tiny_brew):
    invoke, _, _ = handlers_as_environments(tiny_brew, 1)
    answers = iter(
        [
            lambda p: invoke(p),
            lambda p: (_ for _ in ()).throw(TimeoutError("read timed out")),
            lambda p: ("Unhandled", {"errorMessage": "boom"}),
            lambda p: (None, "not a dict"),
            lambda p: (None, {"error": "hold_ms must be a number of milliseconds", "field": "hold_ms"}),
        ]
    )
    lock = threading.Lock()

    def flaky(payload):
        with lock:
            answer = next(answers)
        return answer(payload)

    summary = warmer.fan_out(flaky, 5, hold_ms=0)
    assert (summary["distinct_envs"], summary["errors"]) == (1, 4)
    assert warmer.one_warm_up(lambda p: (_ for _ in ()).throw(TimeoutError("slow")), b"{}") == {
        "error": "TimeoutError: slow"
    }


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"CONCURRENCY": "2", "HOLD_MS": "250"}, "TARGET"),
        ({"TARGET": "f", "CONCURRENCY": "two", "HOLD_MS": "250"}, "CONCURRENCY must be an integer"),
        ({"TARGET": "f", "CONCURRENCY": "0", "HOLD_MS": "250"}, "CONCURRENCY must be between 1"),
        ({"TARGET": "f", "CONCURRENCY": "2", "HOLD_MS": "20000"}, "HOLD_MS must be between 0 and 10000"),
        ({"TARGET": "f", "CONCURRENCY": "2"}, "HOLD_MS must be an integer"),
    ],
)
def test_bad_settings_name_the_variable(environ, message):
    with pytest.raises(ValueError, match=message):
        warmer.settings(environ)


def test_handler_invokes_the_target_through_boto3(monkeypatch, capsys):
    import boto3
    from botocore.response import StreamingBody
    from botocore.stub import Stubber

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("lambda", region_name="us-east-1")
    target = "arn:aws:lambda:us-east-1:123456789012:function:coldbrew-model:live"
    payload = json.dumps({"coldbrew": "warm", "hold_ms": 250}).encode()
    with Stubber(client) as stub:
        for env in ("e1", "e2"):
            body = json.dumps({"env": env, "cold": env == "e1", "held_ms": 250}).encode()
            stub.add_response(
                "invoke",
                {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(body), len(body))},
                {"FunctionName": target, "Payload": payload},
            )
        environ = {"TARGET": target, "CONCURRENCY": "2", "HOLD_MS": "250"}
        summary = warmer.handler({}, Context(), environ=environ, client=client)
        stub.assert_no_pending_responses()
    assert summary == {"event": "coldbrew.warm", "requested": 2, "distinct_envs": 2, "cold": 1, "errors": 0}
    assert json.loads(capsys.readouterr().out) == summary  # the CloudWatch line


def test_the_template_embeds_this_module_and_it_stands_alone():
    """The inline code is the module's own source, fits CloudFormation's limit and imports no coldbrew."""
    source = tpl.warmer_code()
    assert len(source) <= tpl.INLINE_CODE_LIMIT
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    assert imported <= {"json", "os", "concurrent", "boto3", "botocore"}, imported
