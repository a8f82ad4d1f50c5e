"""`coldbrew demo`: train the tiny model, serve it as pickle and .brew, print the answers and timings side by side
(the table is ``coldbrew.experiment.demo``)."""

from __future__ import annotations

import json

from coldbrew.experiment.demo import ensure_models, format_table, serve_and_ask


def add_arguments(parser) -> None:
    parser.add_argument("--pickle-only", action="store_true", help="serve only the pickle, not the .brew version")


def run(args) -> int:
    from coldbrew.experiment.dataset import STUDY_PAYLOAD

    models = ensure_models(args.pickle_only)
    print(f"\nPOST /predict {json.dumps(STUDY_PAYLOAD)}\n")
    results = {}
    for fmt, path in models.items():
        print(f"serving {path} ...", flush=True)
        results[fmt] = serve_and_ask(path)
    print()
    width = max(len(fmt) for fmt in results)
    for fmt, result in results.items():
        print(f"{fmt.ljust(width)}  → {json.dumps(result['response'])}")
    if len(results) > 1:
        same = len({json.dumps(r["response"]) for r in results.values()}) == 1
        print(f"identical responses: {'yes' if same else 'NO'}")
    print("\nstart-up (each in a fresh process):\n")
    print(format_table(results))
    return 0
