"""`coldbrew lab`: a local Lambda-like lab hosting a handler in real awslambdaric processes.

Prints the URL, then a live line of stats; Ctrl-C stops every environment. See docs/lab.md.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import errno
import os
import signal
import sys
import time
from pathlib import Path

from coldbrew.commands import (
    add_model_uri,
    duration,
    lambda_memory_mb,
    lambda_timeout,
    refuse_uncompiled_model,
    require,
)
from coldbrew.errors import ConfigError
from coldbrew.pairs import parse_pairs


def add_arguments(parser) -> None:
    """Options of `coldbrew lab` (durations accept 500ms, 1.5s, 10m, 1h30m)."""
    add_model_uri(parser, "model file passed to the function as MODEL_URI (omit for handlers without a model)")
    parser.add_argument("--handler", default="coldbrew.aws.handler", help="module.function (default: %(default)s)")
    parser.add_argument(
        "--wsgi", metavar="MODULE:APP", help="host a WSGI app (Flask, Django...) through apig-wsgi instead of a handler"
    )
    parser.add_argument(
        "--asgi",
        metavar="MODULE:APP",
        help="host an ASGI app (FastAPI, Starlette...) through Mangum instead of a handler",
    )
    parser.add_argument(
        "--task-root",
        "--code",
        dest="task_root",
        metavar="DIR",
        help="the function's code: put on sys.path, LAMBDA_TASK_ROOT (default: current directory)",
    )
    parser.add_argument(
        "--cwd",
        metavar="DIR",
        help="the function's working directory, for apps that open relative paths (default: --code)",
    )
    parser.add_argument(
        "--api",
        choices=("http", "rest", "url", "alb"),
        default="http",
        help="front door: API Gateway HTTP API, REST API, function URL or ALB (default: http)",
    )
    parser.add_argument(
        "--allow-pickle",
        action="store_true",
        help="let the function load a pickle/joblib model, which can run arbitrary code: only for "
        "files you trust (passes COLDBREW_ALLOW_PICKLE=1; default: .brew only)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment variable for the function (repeatable)",
    )
    parser.add_argument(
        "--source",
        choices=("disk", "s3"),
        default="disk",
        help="disk: function reads the file; s3: lab uploads it to a local SeaweedFS (default: disk)",
    )
    parser.add_argument("--bucket", metavar="NAME", help="bucket the model is uploaded to for --source s3")
    parser.add_argument(
        "--s3-network",
        choices=("aws", "none"),
        default="none",
        help="with --source s3: aws = S3's first-byte latency and per-connection bandwidth and the function's "
        "network share (docs/lab.md), none = loopback as it is (default: none)",
    )
    parser.add_argument("--s3-bandwidth", metavar="RATE", help="per-connection bandwidth, e.g. 85MB (per second)")
    parser.add_argument("--s3-first-byte", metavar="DURATION", help="first-byte latency per request, e.g. 50ms")
    parser.add_argument("--s3-aggregate", metavar="RATE", help="the function's total S3 bandwidth, e.g. 200MB")
    parser.add_argument(
        "--evict-page-cache", action="store_true", help="drop the model file from the page cache before each cold start"
    )
    parser.add_argument(
        "--memory-mb",
        type=lambda_memory_mb("--memory-mb"),
        default=4500,
        help="memory limit per environment, Lambda's 128-10240 MB: 512, 1536M, 2G (default: 4500)",
    )
    parser.add_argument(
        "--timeout",
        type=lambda_timeout("--timeout"),
        default="30s",
        help="function timeout, at most Lambda's 15m (default: 30s)",
    )
    parser.add_argument(
        "--gateway-timeout",
        type=duration("--gateway-timeout", positive=True),
        default=None,
        help="front door integration timeout (default: http 30s, rest 29s, url/alb none)",
    )
    parser.add_argument(
        "--init-timeout",
        type=duration("--init-timeout", positive=True),
        default="10s",
        help="on-demand init limit; an overrun init is retried at the first invoke (default: 10s)",
    )
    parser.add_argument("--no-freeze", dest="freeze", action="store_false", help="do not SIGSTOP idle environments")
    parser.add_argument(
        "--idle-timeout",
        type=duration("--idle-timeout", positive=True),
        default="10m",
        help="stop environments idle this long (default: 10m)",
    )
    parser.add_argument(
        "--max-concurrency",
        type=int,
        default=100,
        help="environments at most; beyond: throttled (429 with --api url, 500 http/rest, 502 alb)",
    )
    parser.add_argument(
        "--cpus",
        type=int,
        default=None,
        metavar="N",
        help="cores starting environments may use at once; further cold starts queue (default: this machine's)",
    )
    parser.add_argument("--provisioned", type=int, default=0, metavar="N", help="environments initialised at start")
    parser.add_argument(
        "--snapshot", action="store_true", help="fork environments from one initialised template (a local SnapStart)"
    )
    parser.add_argument("--port", type=int, default=0, help="front door port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--log", metavar="FILE", help="append JSON-lines events (starts, invokes, stops) to FILE")
    parser.add_argument("--function-output", metavar="FILE", help="send the functions' stdout/stderr to FILE")
    parser.add_argument("--no-report", dest="report", action="store_false", help="do not print REPORT lines on stderr")
    parser.add_argument("--quiet", action="store_true", help="no live stats line")
    parser.add_argument(
        "--warm-secret",
        metavar="SECRET",
        default=None,
        help="open POST /_warm (as `package --warm-route`), answered only with this secret in "
        "X-Coldbrew-Warm-Secret (default: $COLDBREW_WARM_SECRET, else no /_warm route)",
    )


def _pickle_opt_in(args, env: dict[str, str]) -> None:
    """``--allow-pickle`` passes COLDBREW_ALLOW_PICKLE=1 to the environments; without any opt-in, a model file
    coldbrew's handler would refuse is refused here, before any environment starts (nothing is unpickled)."""
    if args.allow_pickle:
        env["COLDBREW_ALLOW_PICKLE"] = "1"
    if args.handler == "coldbrew.aws.handler" and not (getattr(args, "wsgi", None) or getattr(args, "asgi", None)):
        refuse_uncompiled_model(args.model_uri)
    local = Path(args.model_uri).expanduser() if args.model_uri and not args.model_uri.startswith("s3://") else None
    if (
        local is not None
        and local.is_file()
        and args.handler == "coldbrew.aws.handler"
        and not (getattr(args, "wsgi", None) or getattr(args, "asgi", None))
    ):
        from coldbrew.engine import model_format

        allowed = env.get("COLDBREW_ALLOW_PICKLE", "").strip().lower() in ("1", "true", "yes")
        model_format(local, allow_pickle=allowed, name=args.model_uri)


def stats_line(stats: dict) -> str:
    """One human line: environments (queued for a core, starting, warm: busy and idle, frozen, reaped so far),
    invocations, cold starts, errors, latency, machine wait, memory."""
    envs = stats["environments"]
    dur = stats["duration_ms"]
    p50 = "-" if dur["p50"] is None else f"{dur['p50']:.1f}"
    p99 = "-" if dur["p99"] is None else f"{dur['p99']:.1f}"
    queue = stats.get("queue_ms", {}).get("p99")
    return (
        f"envs {envs['total']:>3} (queued {envs.get('queued', 0)}, starting {envs['init']}, "
        f"warm {envs['idle'] + envs['busy']}: busy {envs['busy']}, idle {envs['idle']}, "
        f"frozen {envs.get('frozen', 0)}; reaped {stats.get('reaped', 0)})  "
        f"invocations {stats['invocations']:>6}  cold {stats['cold_starts']:>4}  "
        f"throttled {stats['throttles']:>4}  errors {sum(stats['errors'].values()):>4}  "
        f"duration p50 {p50} ms p99 {p99} ms  "
        f"machine wait p99 {'-' if queue is None else f'{queue:.0f}'} ms  RSS {stats['rss_mb_total']:.0f} MB"
    )


def _preflight(args, env: dict[str, str]) -> None:
    """What the lab needs, checked before anything starts: its extra's packages, and AWS credentials for a
    model the functions read from S3 (without them every request would end in a 502)."""
    needs = [("awslambdaric", "lab", "the runtime client every environment runs")]
    if getattr(args, "asgi", None):
        needs.append(("mangum", "lab", "--asgi hosts the app through it"))
    if args.source == "s3":
        needs.append(("boto3", "s3", "uploads the model to the local S3"))  # SeaweedFS itself: lab/s3server.py
    from_s3 = bool(args.model_uri and args.model_uri.startswith("s3://") and args.source != "s3")
    if from_s3:
        needs.append(("boto3", "s3", "the functions read the model from S3"))
    require(*needs)
    if from_s3 and not ("AWS_ACCESS_KEY_ID" in env and "AWS_SECRET_ACCESS_KEY" in env):
        import botocore.session

        if botocore.session.get_session().get_credentials() is None:
            raise ConfigError(
                f"{args.model_uri}: no AWS credentials for the functions to read it with (none in "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or ~/.aws); run `aws configure`, "
                "or use a local file (--source s3 serves it from a local S3)"
            )


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def run(args) -> int:
    """Start the lab and serve until Ctrl-C (or SIGTERM)."""
    from coldbrew.lab import Lab, LabConfig

    env = parse_pairs(args.env, option="--env")
    _preflight(args, env)
    _pickle_opt_in(args, env)
    # Every option whose dest names a LabConfig field is that field, as given (LabConfig checks it).
    settings = {f.name: getattr(args, f.name) for f in dataclasses.fields(LabConfig) if hasattr(args, f.name)}
    settings["env"] = env
    settings["warm_secret"] = args.warm_secret or os.environ.get("COLDBREW_WARM_SECRET") or None
    config = LabConfig(**settings)
    # Both stop the lab, whatever dispositions the lab inherited (a lab started from a background job or under
    # nohup inherits SIGINT ignored, and would otherwise never stop on Ctrl-C or `kill -INT`).
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    lab = Lab(config)
    tty = sys.stdout.isatty()
    try:
        try:
            lab.start()
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise ConfigError(
                f"--port {config.port}: 127.0.0.1:{config.port} is already in use; stop what listens there "
                "or choose another port (--port 0: any free one)"
            ) from None
        what = (
            f"wsgi {config.wsgi}"
            if config.wsgi
            else f"asgi {config.asgi}"
            if config.asgi
            else f"handler {config.handler}"
        )
        print(
            f"coldbrew lab: {lab.url}  ({what}, api {config.api}, max concurrency {config.max_concurrency}, "
            f"memory {config.memory_mb} MB{', snapshot' if config.snapshot else ''}"
            f"{f', provisioned {config.provisioned}' if config.provisioned else ''}) - Ctrl-C stops",
            flush=True,
        )
        ticks = 0
        while True:
            time.sleep(1.0)
            ticks += 1
            if args.quiet:
                continue
            if not tty and ticks % 10:
                continue
            try:
                line = stats_line(lab.stats())
            except (concurrent.futures.TimeoutError, TimeoutError):  # the lab's loop is busy: skip a beat
                line = "(lab busy: stats not available this second)"
            print("\r" + line if tty else line, end="" if tty else "\n", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        # Stopping takes seconds; a second Ctrl-C or SIGTERM meanwhile must not interrupt it halfway (a traceback
        # and processes left behind).
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        lab.stop()
    print(("\n" if tty and not args.quiet else "") + "coldbrew lab: stopped", flush=True)  # ends a \r-line
    return 0
