"""`coldbrew package`: parse the options, build the deployable Lambda context and print what was built (the work is
in ``coldbrew.deploy.package``)."""

from __future__ import annotations

import sys
from pathlib import Path

from coldbrew.commands import lambda_memory_mb, lambda_timeout
from coldbrew.deploy import render as tpl
from coldbrew.deploy.package import (
    ARCHES,
    AUTH_MODES,
    DEFAULT_MEMORY_MB,
    DEFAULT_TIMEOUT_S,
    SETUPS,
    PackageResult,
    PlanOptions,
    _estimate_text,
    _human,
    _table,
    package,
)


def _cors(plan) -> str:
    return f", CORS {' '.join(plan.cors)}" if plan.cors else ", CORS off"


def _print_zip(result: PackageResult) -> int:
    plan, manifest = result.plan, result.manifest
    print(f"coldbrew package: setup zip-snapstart, {plan.arch}, model {plan.model_name} → {result.out_dir}/")
    print(f"  model source   {plan.model_source} {plan.model_uri}")
    print(f"  function       {tpl.RUNTIME}, {plan.memory} MB, {plan.timeout} s, {plan.arch}, handler {tpl.HANDLER}")
    print(f"  target         {getattr(manifest, 'target', '')}")
    print(
        f"  HTTP doors     auth {plan.auth}, /_warm route {'on (secret required)' if plan.warm_route else 'off'}{_cors(plan)}"
    )
    print()
    print(_table([("file", "size"), *((rel, _human(size)) for rel, size in result.files)]))
    print()
    unzipped = getattr(manifest, "unzipped_bytes", None)
    print(
        _table(
            [
                ("unzipped part", "size"),
                *((k, _human(v)) for k, v in result.size_parts.items()),
                ("total", _human(unzipped)),
            ]
        )
    )
    print()
    print(_table([("check", "result", "detail"), *((c.name, c.status, c.detail) for c in result.checks)]))
    if result.failed:
        failed = ", ".join(c.name for c in result.checks if c.failed)
        print(
            f"\nerror: the built zip failed its checks ({failed}); the files are in {result.out_dir}/", file=sys.stderr
        )
        return 1
    print(f"\nnext: follow {result.out_dir / 'README.md'}")
    return 0


def add_arguments(parser) -> None:
    parser.add_argument(
        "model_uri", metavar="MODEL_URI", help="a local model file (.brew or pickle) or s3://bucket/key"
    )
    parser.add_argument("--setup", required=True, choices=SETUPS, help="what to build (see docs/deploy.md)")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="DIR", help="directory to write")
    parser.add_argument(
        "--s3-uri", metavar="s3://BUCKET/KEY", help="where the function reads a local model from once uploaded"
    )
    parser.add_argument(
        "--memory",
        type=lambda_memory_mb("--memory"),
        default=DEFAULT_MEMORY_MB,
        help=f"function memory, Lambda's 128-10240 MB: 1024, 1536M, 2G (default {DEFAULT_MEMORY_MB})",
    )
    parser.add_argument(
        "--timeout",
        type=lambda_timeout("--timeout", whole_seconds=True),
        default=DEFAULT_TIMEOUT_S,
        help=f"function timeout in whole seconds, at most Lambda's 15m: 30s, 2m, 900 (default {DEFAULT_TIMEOUT_S}s)",
    )
    parser.add_argument(
        "--cors",
        action="append",
        metavar="ORIGIN",
        help="allow browsers on ORIGIN (https://app.example.com, or *) to call the HTTP API; repeatable",
    )
    parser.add_argument("--arch", choices=ARCHES, default="x86_64", help="Lambda architecture (default x86_64)")
    parser.add_argument(
        "--model-format", choices=("auto", "brew", "pickle"), default="auto", help="override format detection"
    )
    parser.add_argument("--force", action="store_true", help="overwrite coldbrew's files in a non-empty DIR")
    parser.add_argument(
        "--warm-route",
        action="store_true",
        help="also route POST /_warm through the HTTP API, behind a generated secret (default: direct invocation only)",
    )
    parser.add_argument(
        "--auth",
        choices=AUTH_MODES,
        default="none",
        help="HTTP API authorization: none (public, throttled) or iam (SigV4-signed callers only); default none",
    )
    parser.add_argument(
        "--no-smoke",
        dest="smoke",
        action="store_false",
        help="zip-snapstart: do not run the built zip's handler from a clean directory before handing it over",
    )
    parser.add_argument(
        "--target-python",
        metavar="PATH",
        help=f"zip-snapstart: the {tpl.RUNTIME} interpreter that byte-compiles the zip and runs its smoke test "
        f"(default: found on PATH or in pyenv; without one the zip ships no bytecode and says so)",
    )


def run(args) -> int:
    options = {name: getattr(args, name) for name in PlanOptions.__annotations__}  # dests named as make_plan's options
    zip_options = {"target_python": args.target_python, "smoke": args.smoke}
    result = package(args.model_uri, args.setup, args.output, force=args.force, **zip_options, **options)
    plan = result.plan
    if plan.setup == "zip-snapstart":
        return _print_zip(result)
    print(f"coldbrew package: setup {plan.setup}, {plan.model_format} model {plan.model_name} → {result.out_dir}/")
    print(f"  model source   {plan.model_source} {plan.model_uri}")
    print(f"  function       {plan.memory} MB, {plan.timeout} s, {plan.arch}, handler {tpl.HANDLER}")
    print(f"  native build   {'yes (compiled inside the Lambda base image)' if plan.native_build else 'no'}")
    print(
        f"  HTTP doors     auth {plan.auth}, /_warm route {'on (secret required)' if plan.warm_route else 'off'}{_cors(plan)}"
    )
    print()
    width = max(len(rel) for rel, _ in result.files)
    print(f"  {'file':<{width}}  {'size':>10}")
    for rel, size in result.files:
        print(f"  {rel:<{width}}  {_human(size):>10}")
    print()
    label = "estimated unzipped size" if plan.setup == "zip-snapstart" else "estimated code size"
    print(f"  {label}: {_estimate_text(result)}" + (" (limit 262.1 MB)" if plan.setup == "zip-snapstart" else ""))
    for part, part_size in result.size_parts.items():
        print(f"    {part:<14} {_human(part_size):>10}")
    for warning in result.warnings:
        print(f"\nwarning: {warning}")
    print(f"\nnext: follow {result.out_dir / 'README.md'}")
    return 0
