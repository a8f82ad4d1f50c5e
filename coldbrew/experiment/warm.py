"""`coldbrew warm`: fire X concurrent warm-ups and verify that X distinct environments answered.

Two ways in, the same answer ``{"env": ID, "cold": bool, "held_ms": H}`` from the handler:

- ``--function NAME`` invokes the function directly (``lambda:InvokeFunction``, IAM-protected, via boto3) with
  ``{"coldbrew": "warm", "hold_ms": H}`` — what the scheduled warmer does; no HTTP route needs to exist.
- ``URL`` posts ``{"hold_ms": H}`` to ``URL/_warm``, a route that exists only when the function was packaged with
  ``--warm-route`` (or the lab runs with a warm secret). It needs the secret (``--secret`` or
  ``$COLDBREW_WARM_SECRET``, sent as ``X-Coldbrew-Warm-Secret``) and holds at most 500 ms; ``--sigv4`` signs
  the requests for an endpoint packaged with ``--auth iam``.

Each warm-up holds its environment H ms, so concurrent warm-ups land on distinct environments instead of
queueing on one. A round succeeds when X distinct environment ids answered.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from coldbrew.errors import ColdbrewError
from coldbrew.runtimes.aws_lambda import DEFAULT_HOLD_MS, WARM_SECRET_HEADER


@dataclass
class RoundResult:
    """What one warm-up round found."""

    round: int
    requested: int
    distinct_envs: int
    cold: int
    errors: int
    elapsed_ms: float


def _round(one: Callable[[], dict | None], concurrency: int, number: int) -> RoundResult:
    """Run ``one()`` ``concurrency`` times at once; count the distinct environments among the answers."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        answers = list(pool.map(lambda _: one(), range(concurrency)))
    ok = [a for a in answers if a is not None]
    return RoundResult(
        round=number,
        requested=concurrency,
        distinct_envs=len({a["env"] for a in ok}),
        cold=sum(1 for a in ok if a.get("cold")),
        errors=len(answers) - len(ok),
        elapsed_ms=(time.perf_counter() - started) * 1000,
    )


def _warm_once(url: str, hold_ms: int, timeout_s: float, secret: str | None, sign=None) -> dict | None:
    """One warm-up request; returns the parsed answer or None on failure."""
    body = json.dumps({"hold_ms": hold_ms}).encode()
    target = url.rstrip("/") + "/_warm"
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[WARM_SECRET_HEADER] = secret
    if sign is not None:
        headers = sign("POST", target, body, headers)
    request = urllib.request.Request(target, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            answer = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return answer if isinstance(answer, dict) and "env" in answer else None


def warm_round(
    url: str,
    concurrency: int,
    *,
    hold_ms: int = DEFAULT_HOLD_MS,
    timeout_s: float = 60.0,
    number: int = 1,
    secret: str | None = None,
    sign=None,
) -> RoundResult:
    """Send ``concurrency`` ``POST url/_warm`` at once (with ``secret``, signed by ``sign`` if given)."""
    return _round(lambda: _warm_once(url, hold_ms, timeout_s, secret, sign), concurrency, number)


def lambda_client(concurrency: int, region: str | None = None):
    """A boto3 Lambda client able to hold ``concurrency`` invocations at once; boto3 is imported here only."""
    try:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError
    except ImportError:
        raise ColdbrewError("--function needs boto3 (pip install boto3)") from None
    config = Config(max_pool_connections=max(concurrency, 10), read_timeout=70, retries={"max_attempts": 0})
    try:
        return boto3.client("lambda", region_name=region, config=config)
    except BotoCoreError as exc:  # NoRegionError, a broken profile: settings the user can fix
        raise ColdbrewError(f"--function: cannot create a Lambda client ({exc}); pass --region") from None


def direct_round(
    function: str,
    concurrency: int,
    *,
    hold_ms: int = DEFAULT_HOLD_MS,
    number: int = 1,
    client=None,
    region: str | None = None,
) -> RoundResult:
    """Invoke ``function`` (name, ARN or alias ARN) ``concurrency`` times at once with the warm-up event."""
    from coldbrew.deploy.warmer import lambda_invoker, one_warm_up, warm_event

    invoke = lambda_invoker(function, concurrency, client or lambda_client(concurrency, region))
    payload = json.dumps(warm_event(hold_ms)).encode()

    def one() -> dict | None:
        answer = one_warm_up(invoke, payload)
        return None if "error" in answer else answer

    return _round(one, concurrency, number)
