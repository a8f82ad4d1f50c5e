"""`coldbrew warm`: fire X concurrent warm-ups and verify that X distinct environments answered.

Each warm-up is ``POST {url}/_warm`` with ``{"hold_ms": H}``; the handler holds its environment for H ms
(so concurrent warm-ups land on distinct environments instead of queueing on one) and answers
``{"env": ID, "cold": bool}``. A round succeeds when X distinct environment ids answered.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from coldbrew.durations import parse_duration
from coldbrew.errors import ColdbrewError
from coldbrew.experiment.loadtest import check_reachable


@dataclass
class RoundResult:
    """What one warm-up round found."""

    round: int
    requested: int
    distinct_envs: int
    cold: int
    errors: int
    elapsed_ms: float


def _warm_once(url: str, hold_ms: int, timeout_s: float) -> dict | None:
    """One warm-up request; returns the parsed answer or None on failure."""
    body = json.dumps({"hold_ms": hold_ms}).encode()
    request = urllib.request.Request(
        url.rstrip("/") + "/_warm", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            answer = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return answer if isinstance(answer, dict) and "env" in answer else None


def warm_round(url: str, concurrency: int, *, hold_ms: int = 500, timeout_s: float = 60.0, number: int = 1) -> RoundResult:
    """Send ``concurrency`` warm-ups at once and count the distinct environments that answered."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        answers = list(pool.map(lambda _: _warm_once(url, hold_ms, timeout_s), range(concurrency)))
    ok = [a for a in answers if a is not None]
    return RoundResult(
        round=number,
        requested=concurrency,
        distinct_envs=len({a["env"] for a in ok}),
        cold=sum(1 for a in ok if a.get("cold")),
        errors=len(answers) - len(ok),
        elapsed_ms=(time.perf_counter() - started) * 1000,
    )


def add_arguments(parser) -> None:
    parser.add_argument("url", help="base URL of the function (the lab's front door or a deployed endpoint)")
    parser.add_argument("--concurrency", "-x", type=int, required=True, help="warm-ups per round (environments to keep warm)")
    parser.add_argument("--every", default=None, help="repeat every DURATION (e.g. 10m); default: one round")
    parser.add_argument("--count", type=int, default=None, help="number of rounds (default 1, or forever with --every)")
    parser.add_argument("--hold", default="500ms", help="how long each warm-up holds its environment (default 500ms)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per round")


def run(args) -> int:
    if args.concurrency < 1:
        raise ColdbrewError("--concurrency must be at least 1")
    hold_ms = int(parse_duration(args.hold, option="--hold") * 1000)
    every = parse_duration(args.every, option="--every") if args.every else None
    count = args.count if args.count is not None else (None if every else 1)
    check_reachable(args.url)
    if not args.json:
        print(f"{'round':>5}  {'requested':>9}  {'distinct envs':>13}  {'cold':>4}  {'errors':>6}  {'time':>9}")
    number, last = 0, None
    while count is None or number < count:
        number += 1
        last = warm_round(args.url, args.concurrency, hold_ms=hold_ms, number=number)
        if args.json:
            print(json.dumps(asdict(last)), flush=True)
        else:
            print(f"{last.round:>5}  {last.requested:>9}  {last.distinct_envs:>13}  {last.cold:>4}  "
                  f"{last.errors:>6}  {last.elapsed_ms:>6.0f} ms", flush=True)
        if every and (count is None or number < count):
            time.sleep(every)
    if last is not None and last.distinct_envs < args.concurrency:
        print(f"only {last.distinct_envs} of {args.concurrency} environments answered the last round", file=sys.stderr)
        return 1
    return 0
