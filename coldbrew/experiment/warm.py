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
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from coldbrew.durations import parse_duration
from coldbrew.errors import ColdbrewError
from coldbrew.experiment.loadtest import check_reachable
from coldbrew.runtimes.aws_lambda import MAX_HOLD_MS as MAX_DIRECT_HOLD_MS
from coldbrew.runtimes.aws_lambda import MAX_HTTP_HOLD_MS, WARM_SECRET_ENV, WARM_SECRET_HEADER


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


def warm_round(url: str, concurrency: int, *, hold_ms: int = 500, timeout_s: float = 60.0, number: int = 1,
               secret: str | None = None, sign=None) -> RoundResult:
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


def direct_round(function: str, concurrency: int, *, hold_ms: int = 500, number: int = 1, client=None,
                 region: str | None = None) -> RoundResult:
    """Invoke ``function`` (name, ARN or alias ARN) ``concurrency`` times at once with the warm-up event."""
    from coldbrew.deploy.warmer import lambda_invoker, one_warm_up, warm_event

    invoke = lambda_invoker(function, concurrency, client or lambda_client(concurrency, region))
    payload = json.dumps(warm_event(hold_ms)).encode()

    def one() -> dict | None:
        answer = one_warm_up(invoke, payload)
        return None if "error" in answer else answer

    return _round(one, concurrency, number)


def add_arguments(parser) -> None:
    parser.add_argument("url", nargs="?", help="base URL whose POST /_warm route is open (the lab's front door or "
                                               "an endpoint packaged with --warm-route); or use --function")
    parser.add_argument("--function", metavar="NAME",
                        help="invoke this function (name, ARN or alias ARN) directly with boto3 instead of HTTP")
    parser.add_argument("--concurrency", "-x", type=int, required=True, help="warm-ups per round (environments to keep warm)")
    parser.add_argument("--every", default=None, help="repeat every DURATION (e.g. 10m); default: one round")
    parser.add_argument("--count", type=int, default=None, help="number of rounds (default 1, or forever with --every)")
    parser.add_argument("--hold", default="500ms",
                        help="how long each warm-up holds its environment (default 500ms; at most 500ms over HTTP)")
    parser.add_argument("--secret", default=None,
                        help=f"the warm route's secret (default: ${WARM_SECRET_ENV}); sent as {WARM_SECRET_HEADER}")
    parser.add_argument("--sigv4", action="store_true", help="sign HTTP requests (endpoints packaged with --auth iam)")
    parser.add_argument("--region", default=None, help="AWS region for --function / --sigv4 (default: from the URL "
                                                       "or the AWS configuration)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per round")


def _round_runner(args, hold_ms: int) -> Callable[[int], RoundResult]:
    if args.function:
        if args.url:
            raise ColdbrewError("give a URL or --function, not both")
        if hold_ms > MAX_DIRECT_HOLD_MS:
            raise ColdbrewError(f"--hold must be at most {MAX_DIRECT_HOLD_MS} ms")
        client = lambda_client(args.concurrency, args.region)
        return lambda number: direct_round(args.function, args.concurrency, hold_ms=hold_ms, number=number,
                                           client=client)
    if not args.url:
        raise ColdbrewError("give the endpoint's URL (its POST /_warm route) or --function NAME")
    if hold_ms > MAX_HTTP_HOLD_MS:
        raise ColdbrewError(f"--hold must be at most {MAX_HTTP_HOLD_MS}ms over HTTP (use --function to hold longer)")
    secret = args.secret if args.secret is not None else os.environ.get(WARM_SECRET_ENV)
    if not secret:
        raise ColdbrewError(f"POST /_warm needs the warm-up secret: pass --secret or set ${WARM_SECRET_ENV} "
                            "(or warm with --function NAME, which needs no route)")
    sign = None
    if args.sigv4:
        from coldbrew.experiment.sigv4 import make_signer, scope_for

        sign = make_signer(scope_for(args.url, args.region))
    check_reachable(args.url)
    return lambda number: warm_round(args.url, args.concurrency, hold_ms=hold_ms, number=number, secret=secret,
                                     sign=sign)


def run(args) -> int:
    if args.concurrency < 1:
        raise ColdbrewError("--concurrency must be at least 1")
    hold_ms = int(parse_duration(args.hold, option="--hold") * 1000)
    every = parse_duration(args.every, option="--every") if args.every else None
    count = args.count if args.count is not None else (None if every else 1)
    one_round = _round_runner(args, hold_ms)
    if not args.json:
        print(f"{'round':>5}  {'requested':>9}  {'distinct envs':>13}  {'cold':>4}  {'errors':>6}  {'time':>9}")
    number, last = 0, None
    while count is None or number < count:
        number += 1
        last = one_round(number)
        if args.json:
            print(json.dumps(asdict(last)), flush=True)
        else:
            print(f"{last.round:>5}  {last.requested:>9}  {last.distinct_envs:>13}  {last.cold:>4}  "
                  f"{last.errors:>6}  {last.elapsed_ms:>6.0f} ms", flush=True)
        if every and (count is None or number < count):
            time.sleep(every)
    if last is not None and last.distinct_envs < args.concurrency:
        print(f"only {last.distinct_envs} of {args.concurrency} environments answered the last round", file=sys.stderr)
        if last.distinct_envs == 0 and not args.function:
            print("none answered: is the /_warm route open (404 if not) and the secret right (403 if not)?",
                  file=sys.stderr)
        return 1
    return 0
