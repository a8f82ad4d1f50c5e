"""The scheduled warmer Lambda: X concurrent direct warm-up invocations of the model function's alias.

``coldbrew package`` embeds this file as the WarmerFunction's inline code, so it imports only the standard
library and boto3 (which Lambda ships). Each warm-up ``{"coldbrew": "warm", "hold_ms": H}`` holds its
environment H ms, so X at once cannot queue on one environment: Lambda keeps (or starts) X of them.

Environment: TARGET (function or alias ARN), CONCURRENCY (1-1000), HOLD_MS (0-10000).
"""

import json
import os
from concurrent.futures import ThreadPoolExecutor

MAX_CONCURRENCY = 1000
MAX_HOLD_MS = 10_000


def settings(environ):
    """``(target, concurrency, hold_ms)`` from the environment; ValueError naming the bad variable."""
    target = environ.get("TARGET", "")
    if not target:
        raise ValueError("TARGET must name the function to warm")
    values = []
    for name, high in (("CONCURRENCY", MAX_CONCURRENCY), ("HOLD_MS", MAX_HOLD_MS)):
        raw = environ.get(name, "")
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"{name} must be an integer, not {raw!r}") from None
        if not (1 if name == "CONCURRENCY" else 0) <= value <= high:
            raise ValueError(f"{name} must be between {1 if name == 'CONCURRENCY' else 0} and {high}, not {value}")
        values.append(value)
    return target, values[0], values[1]


def warm_event(hold_ms):
    """The direct warm-up event the model function's handler answers with ``{"env", "cold", "held_ms"}``."""
    return {"coldbrew": "warm", "hold_ms": hold_ms}


def one_warm_up(invoke, payload):
    """Invoke once; the handler's answer (a dict with ``env``) or ``{"error": ...}`` — never raises."""
    try:
        function_error, body = invoke(payload)
    except Exception as exc:  # noqa: BLE001 - any failure of one warm-up (throttle, timeout, network) is counted
        return {"error": f"{type(exc).__name__}: {exc}"[:200]}
    if function_error or not isinstance(body, dict) or "env" not in body:
        return {"error": str(body)[:200]}
    return body


def fan_out(invoke, concurrency, hold_ms):
    """Run ``concurrency`` warm-ups at once through ``invoke(payload) -> (function_error, body)``; summarise."""
    payload = json.dumps(warm_event(hold_ms)).encode()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        answers = list(pool.map(lambda _: one_warm_up(invoke, payload), range(concurrency)))
    ok = [a for a in answers if "error" not in a]
    return {
        "event": "coldbrew.warm",
        "requested": concurrency,
        "distinct_envs": len({a["env"] for a in ok}),
        "cold": sum(1 for a in ok if a.get("cold")),
        "errors": len(answers) - len(ok),
    }


def lambda_invoker(target, concurrency, client=None):
    """``invoke(payload)`` over boto3's Lambda client (synchronous ``RequestResponse`` invocations)."""
    if client is None:
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "lambda",
            config=Config(max_pool_connections=max(concurrency, 10), read_timeout=60, retries={"max_attempts": 0}),
        )

    def invoke(payload):
        answer = client.invoke(FunctionName=target, Payload=payload)
        raw = answer["Payload"].read()
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = raw[:200].decode("utf-8", "replace")
        return answer.get("FunctionError"), body

    return invoke


def handler(event, context, environ=None, client=None):
    """EventBridge's entry point: warm ``CONCURRENCY`` environments of ``TARGET``; logs and returns the summary."""
    target, concurrency, hold_ms = settings(os.environ if environ is None else environ)
    summary = fan_out(lambda_invoker(target, concurrency, client), concurrency, hold_ms)
    print(json.dumps(summary))
    return summary
