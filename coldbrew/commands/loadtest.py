"""`coldbrew loadtest`: parse the options and load an endpoint with locust (the work is in
``coldbrew.experiment.loadtest``)."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

from coldbrew.commands import add_output
from coldbrew.experiment.loadtest import parse_labels, run_loadtest


def add_arguments(parser) -> None:
    """Options of ``coldbrew loadtest``."""
    parser.add_argument("--host", required=True, metavar="URL", help="base URL of the endpoint (POST URL/predict)")
    parser.add_argument("--users", type=int, default=100, help="concurrent users (default: %(default)s)")
    parser.add_argument("--spawn-rate", type=float, default=20, help="users started per second (default: %(default)s)")
    parser.add_argument(
        "--run-time", default="60s", help="how long to run: 90s, 1.5s, 10m, 1h30m (default: %(default)s)"
    )
    parser.add_argument("--payload", type=Path, metavar="FILE", help="JSON body to POST (default: the study's row)")
    parser.add_argument(
        "--name", default="loadtest", metavar="PREFIX", help="prefix of the files (default: %(default)s)"
    )
    add_output(parser, dest="out", help="folder for the results (default: loadtests/PREFIX-YYYYmmdd-HHMMSS)")
    parser.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a label for report grouping, e.g. setup=DOCKER_DISK model_size=140MB format=brew",
    )
    parser.add_argument(
        "--sigv4",
        action="store_true",
        help="sign every request with SigV4 (an endpoint packaged with --auth iam); AWS credentials "
        "from the usual chain",
    )
    parser.add_argument(
        "--region", default=None, help="AWS region for --sigv4 (default: from an execute-api / lambda-url host name)"
    )


def run(args) -> int:
    """Entry point of ``coldbrew loadtest``."""
    labels = parse_labels(args.label)
    out = args.out or Path("loadtests") / f"{args.name}-{datetime.now():%Y%m%d-%H%M%S}"
    sigv4 = None
    if args.sigv4:
        from coldbrew.experiment.sigv4 import make_signer, scope_for

        scope = scope_for(args.host, args.region)
        make_signer(scope)  # fails here, in one line, when there are no credentials to sign with
        sigv4 = scope.to_option()
    locust = {name: getattr(args, name) for name in ("users", "spawn_rate", "run_time", "payload", "name")}
    run_json = run_loadtest(args.host, out, labels=labels, sigv4=sigv4, **locust)
    info = json.loads(run_json.read_text(encoding="utf-8"))
    print(f"{info['requests']:,} requests, {info['failures']:,} failures against {args.host}")
    print(f"results in {run_json.parent}/")
    width = max(len(k) for k in info["files"])
    for key, fname in info["files"].items():
        print(f"  {key.ljust(width)}  {fname}")
    print(f"next: coldbrew report {run_json.parent}")
    if info["requests"] and info["failures"] == info["requests"]:
        print("every request failed — see the locust console file", file=sys.stderr)
        return 1
    return 0
