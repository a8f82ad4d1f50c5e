"""`coldbrew warm`: parse the options and fire warm-up rounds (the work is in ``coldbrew.experiment.warm``)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict

from coldbrew.commands import duration
from coldbrew.errors import ColdbrewError
from coldbrew.experiment.loadtest import check_reachable
from coldbrew.experiment.warm import RoundResult, direct_round, lambda_client, warm_round
from coldbrew.runtimes.aws_lambda import DEFAULT_HOLD_MS, MAX_HTTP_HOLD_MS, WARM_SECRET_ENV, WARM_SECRET_HEADER
from coldbrew.runtimes.aws_lambda import MAX_HOLD_MS as MAX_DIRECT_HOLD_MS


def add_arguments(parser) -> None:
    parser.add_argument(
        "url",
        nargs="?",
        help="base URL whose POST /_warm route is open (the lab's front door or "
        "an endpoint packaged with --warm-route); or use --function",
    )
    parser.add_argument(
        "--function",
        metavar="NAME",
        help="invoke this function (name, ARN or alias ARN) directly with boto3 instead of HTTP",
    )
    parser.add_argument(
        "--concurrency", "-x", type=int, required=True, help="warm-ups per round (environments to keep warm)"
    )
    parser.add_argument(
        "--every",
        type=duration("--every", positive=True),
        default=None,
        help="repeat every DURATION (e.g. 10m); default: one round",
    )
    parser.add_argument("--count", type=int, default=None, help="number of rounds (default 1, or forever with --every)")
    parser.add_argument(
        "--hold",
        type=duration("--hold"),
        default=DEFAULT_HOLD_MS / 1000,
        help=f"how long each warm-up holds its environment (default {DEFAULT_HOLD_MS}ms, as the handler's and the "
        f"scheduled warmer's; at most {MAX_HTTP_HOLD_MS}ms over HTTP)",
    )
    parser.add_argument(
        "--secret",
        default=None,
        help=f"the warm route's secret (default: ${WARM_SECRET_ENV}); sent as {WARM_SECRET_HEADER}",
    )
    parser.add_argument("--sigv4", action="store_true", help="sign HTTP requests (endpoints packaged with --auth iam)")
    parser.add_argument(
        "--region",
        default=None,
        help="AWS region for --function / --sigv4 (default: from the URL or the AWS configuration)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per round")


def _round_runner(args, hold_ms: int) -> Callable[[int], RoundResult]:
    if args.function:
        if args.url:
            raise ColdbrewError("give a URL or --function, not both")
        if hold_ms > MAX_DIRECT_HOLD_MS:
            raise ColdbrewError(f"--hold must be at most {MAX_DIRECT_HOLD_MS} ms")
        client = lambda_client(args.concurrency, args.region)
        return lambda number: direct_round(
            args.function, args.concurrency, hold_ms=hold_ms, number=number, client=client
        )
    if not args.url:
        raise ColdbrewError("give the endpoint's URL (its POST /_warm route) or --function NAME")
    if hold_ms > MAX_HTTP_HOLD_MS:
        raise ColdbrewError(f"--hold must be at most {MAX_HTTP_HOLD_MS}ms over HTTP (use --function to hold longer)")
    secret = args.secret if args.secret is not None else os.environ.get(WARM_SECRET_ENV)
    if not secret:
        raise ColdbrewError(
            f"POST /_warm needs the warm-up secret: pass --secret or set ${WARM_SECRET_ENV} "
            "(or warm with --function NAME, which needs no route)"
        )
    sign = None
    if args.sigv4:
        from coldbrew.experiment.sigv4 import make_signer, scope_for

        sign = make_signer(scope_for(args.url, args.region))
    check_reachable(args.url)
    return lambda number: warm_round(
        args.url, args.concurrency, hold_ms=hold_ms, number=number, secret=secret, sign=sign
    )


def run(args) -> int:
    if args.concurrency < 1:
        raise ColdbrewError("--concurrency must be at least 1")
    hold_ms = round(args.hold * 1000)
    every = args.every
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
            print(
                f"{last.round:>5}  {last.requested:>9}  {last.distinct_envs:>13}  {last.cold:>4}  "
                f"{last.errors:>6}  {last.elapsed_ms:>6.0f} ms",
                flush=True,
            )
        if every and (count is None or number < count):
            time.sleep(every)
    if last is not None and last.distinct_envs < args.concurrency:
        print(f"only {last.distinct_envs} of {args.concurrency} environments answered the last round", file=sys.stderr)
        if last.distinct_envs == 0 and not args.function:
            print(
                "none answered: is the /_warm route open (404 if not) and the secret right (403 if not)?",
                file=sys.stderr,
            )
        return 1
    return 0
