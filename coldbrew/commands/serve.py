"""`coldbrew serve`: serve a model over HTTP with waitress, logging start-up timings once.

    coldbrew serve model.brew                      # DISK, inferred from the path
    coldbrew serve model.pkl --allow-pickle        # a pickle you trust (it can run code when loaded)
    coldbrew serve s3://bucket/model.brew          # S3, inferred from the scheme
    MODEL_SOURCE=DISK MODEL_URI=model.brew coldbrew serve   # exactly as the Lambda runtime reads it

Output: one JSON start-up line, a ``try: curl ...`` line with an example request for the model, then
``coldbrew: serving on URL`` (stdout), then one access-log line per request.
"""

from __future__ import annotations

import argparse
import os

from coldbrew.commands import add_model_uri, refuse_uncompiled_model, size


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError("port must be 0-65535 (0 picks a free port)")
    return port


def _workers(text: str) -> int:
    workers = int(text)
    if workers < 1:
        raise argparse.ArgumentTypeError("need at least 1 worker")
    return workers


def _origins(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def add_arguments(parser) -> None:
    add_model_uri(parser, "a model path or s3://bucket/key (default: $MODEL_SOURCE and $MODEL_URI)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=8000, help="port to bind, 0 for any free one (default: 8000)")
    parser.add_argument(
        "--workers",
        type=_workers,
        default=1,
        help="threads running the app; the C kernel predicts in parallel on them (default: 1)",
    )
    parser.add_argument(
        "--allow-pickle",
        action="store_true",
        help="also load a pickle/joblib model, which can run arbitrary code: only for files you trust "
        "(default: .brew only; COLDBREW_ALLOW_PICKLE=1 does the same)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=size("--max-body-bytes"),
        default="1M",
        help="largest accepted request body: bytes, or 512k, 1M, 2M (default: 1M = 1,048,576 bytes)",
    )
    parser.add_argument(
        "--cors",
        metavar="ORIGIN",
        type=_origins,
        action="append",
        default=[],
        help="let browsers on ORIGIN (scheme://host[:port], or * for any) call the API: answers OPTIONS preflights "
        "and sets Access-Control-Allow-Origin; repeat it or give a comma-separated list (default: no CORS)",
    )


def run(args) -> int:
    # Import order matters: everything the server needs is imported before the start-up clock's
    # "imports" phase ends, so the logged timings cover the whole path to the first request.
    from coldbrew.app import create_app, startup
    from coldbrew.app.contract import contract_of, example_request
    from coldbrew.runtimes.local import serve
    from coldbrew.sources import config_from_env, config_from_uri

    refuse_uncompiled_model(args.model_uri or os.environ.get("MODEL_URI"))
    options = startup.options_from_env(os.environ)
    options["allow_pickle"] = options["allow_pickle"] or args.allow_pickle
    config = config_from_uri(args.model_uri) if args.model_uri else config_from_env(os.environ)
    loaded = startup.load(config, **options)
    print(loaded.log_line(), flush=True)
    cors = tuple(origin for origins in args.cors for origin in origins)
    app = create_app(loaded.predictor, max_body_bytes=args.max_body_bytes, cors=cors)
    serve(
        app,
        host=args.host,
        port=args.port,
        workers=args.workers,
        max_body_bytes=args.max_body_bytes,
        example=example_request(contract_of(loaded.predictor)),
    )
    return 0
