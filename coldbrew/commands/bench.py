"""`coldbrew bench`: parse the options and run the study's matrix on the lab (the work is in
``coldbrew.experiment.bench``)."""

from __future__ import annotations

from coldbrew.commands import add_output, size
from coldbrew.experiment.bench import (
    DEFAULTS,
    FORMATS,
    QUICK,
    SETUPS,
    resolve_options,
    run_bench,
)
from coldbrew.experiment.train import PRESETS
from coldbrew.sizes import GIB


def add_arguments(parser) -> None:
    """Options of ``coldbrew bench``."""
    parser.add_argument(
        "--sizes", help=f"model sizes, comma-separated, from {','.join(PRESETS)} (default: {DEFAULTS['sizes']})"
    )
    parser.add_argument("--setups", help=f"from {','.join(SETUPS)} (default: {DEFAULTS['setups']})")
    parser.add_argument("--formats", help=f"from {','.join(FORMATS)} (default: {DEFAULTS['formats']})")
    parser.add_argument(
        "--users", type=int, help=f"locust users (default: {DEFAULTS['users']}, quick {QUICK['users']})"
    )
    parser.add_argument(
        "--spawn-rate",
        type=float,
        help=f"users started per second (default: {DEFAULTS['spawn_rate']:g}, quick {QUICK['spawn_rate']:g})",
    )
    parser.add_argument(
        "--run-time", help=f"each load test's length (default: {DEFAULTS['run_time']}, quick {QUICK['run_time']})"
    )
    parser.add_argument(
        "--max-concurrency",
        type=int,
        help="the lab's concurrency limit (default: --users; pickle runs are capped further by RAM)",
    )
    parser.add_argument(
        "--memory-budget-gb",
        type=size("--memory-budget-gb", unit=GIB),
        default=None,
        help="RAM the pickle environments of one run may use (default: 2/3 of this machine's)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"sizes {QUICK['sizes']}, setups {QUICK['setups']}, {QUICK['users']} users, "
        f"{QUICK['run_time']} per run (explicit options still win)",
    )
    parser.add_argument(
        "--isolated",
        type=int,
        metavar="N",
        help="isolated cold starts (one environment at a time) per disk/s3 (size, format) before "
        f"the load runs (default: {DEFAULTS['isolated']}; 0: none)",
    )
    parser.add_argument("--no-load", action="store_true", help="only the isolated cold starts: no load-test runs")
    parser.add_argument(
        "--s3-network",
        choices=("aws", "none"),
        default="aws",
        help="the s3 setup's network: aws = S3's first-byte latency and bandwidths (docs/lab.md), none = loopback "
        "as it is (default: aws)",
    )
    add_output(parser, dest="out", help="results folder (default: bench-out/YYYYmmdd-HHMMSS)")


def run(args) -> int:
    """Entry point of ``coldbrew bench``: options from ``args``, then ``coldbrew.experiment.bench.run_bench``."""
    return run_bench(resolve_options(args))
