"""`coldbrew inspect`: print a .brew file's header as a table; ``--verify`` also checks its SHA-256.

Everything printed comes from the file (or its name), which anyone may have crafted: every character that is not
printable — terminal escape sequences, CR, LF, other C0/C1 controls, bidi overrides, line separators — is shown
escaped (``\x1b``, ``\n``, ``\u202e``), so a file cannot forge a line of output or drive the terminal.
"""

from __future__ import annotations

import json
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("model", type=Path, help="a .brew file")
    parser.add_argument("--verify", action="store_true", help="check the checksum (reads the whole file)")


def escape(text: str) -> str:
    """``text`` with every non-printable character written as a Python escape (``\\x1b``, ``\\n``, ``\\u202e``)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def example(header: dict) -> str:
    """A valid ``/predict`` body for the model, as one JSON line; or why the model cannot be served."""
    from types import SimpleNamespace

    from coldbrew.app.contract import contract_of, example_request
    from coldbrew.errors import ModelFormatError

    names = header["feature_names"] or [f"x{i}" for i in range(header["n_features"])]
    model = SimpleNamespace(feature_names=names, classes=header["classes"], header=header, stage=None)
    if header.get("inputs") is not None:  # an input stage: the request fields are its raw columns
        from coldbrew.engine.stage import Stage

        model.stage = Stage(header["inputs"], tuple(names))
        model.feature_names = model.stage.columns
    try:
        return json.dumps(example_request(contract_of(model)), separators=(", ", ": "))
    except ModelFormatError as exc:
        return f"- (not servable: {exc})"


def summary(path: Path, verify: bool = False) -> list[tuple[str, str]]:
    """(label, value) rows describing the .brew file at ``path``, as the file states them (not yet escaped)."""
    from coldbrew.format import BrewFile

    f = BrewFile(path, verify=verify)
    h = f.header
    names = h["feature_names"] or [f"x{i}" for i in range(h["n_features"])]
    source = h.get("source")  # informational: any JSON value
    if not isinstance(source, dict):
        source = {}
    status = "verified (sha256)" if f.checksum_verified else "not checked (use --verify)"
    return [
        ("file", str(path)),
        ("format version", str(h["version"])),
        ("kind", h["kind"]),
        ("estimator", _estimator(source)),
        ("features", f"{h['n_features']}: {', '.join(names)}"),
        *_inputs(h),
        ("classes", ", ".join(map(str, h["classes"])) if h["classes"] is not None else "-"),
        ("class labels", ", ".join(h["class_labels"]) if h.get("class_labels") else "-"),
        ("outputs", f"{h['n_outputs']} ({h['output']}, {h['combine']} of {h['leaf']} leaves)"),
        *(
            [
                (
                    "arithmetic",
                    f"{h['input_dtype']} input, x {'<' if h['split_compare'] == 'lt' else '<='} threshold, "
                    f"{h['accumulate']} sums, decision {h['decision']}, {h['n_cat_bitsets']} category bitsets",
                )
            ]
            if h["version"] >= 2
            else []
        ),
        ("learning rate", f"{h['learning_rate']} (pre-scaled leaves)" if h.get("learning_rate") is not None else "-"),
        ("base score", ", ".join(repr(float(v)) for v in f.arrays["base_score"])),
        ("trees", f"{h['n_trees']:,}"),
        ("nodes", f"{h['n_nodes']:,} ({h['n_leaves']:,} leaves)"),
        ("max depth", str(h["max_depth"])),
        ("size", f"{f.size_bytes:,} bytes ({f.size_bytes / 1e6:,.1f} MB)"),
        ("checksum", f"{status} {f.digest_hex[:16]}…"),
        ("created by", str(h.get("created_by", "?"))),
        ("example request", example(h)),
    ]


def _inputs(h: dict) -> list[tuple[str, str]]:
    """The request fields of a model with an input stage (format version 3), with their types."""
    stage = h.get("inputs")
    if stage is None:
        return []
    cols = [f"{c['name']} ({c['type']})" for c in stage["columns"]]
    return [("request fields", f"{len(cols)}: {', '.join(cols)}")]


def _estimator(source: dict) -> str:
    if source.get("library") == "xgboost":
        return f"XGBoost {source.get('xgboost_version', '?')} ({source.get('objective', '?')})"
    if source.get("library") == "lightgbm":
        return f"LightGBM {source.get('format', '?')} ({source.get('objective', '?')})"
    if source.get("library") == "catboost":
        return f"CatBoost {source.get('catboost_version', '?')} ({source.get('objective', '?')})"
    return f"{source.get('estimator', '?')} (sklearn {source.get('sklearn_version', '?')})"


def run(args) -> int:
    from coldbrew.errors import ColdbrewError

    try:
        rows = [(label, escape(value)) for label, value in summary(args.model, verify=args.verify)]
    except ColdbrewError as exc:  # its message names the file, whose name may hold control characters too
        raise ColdbrewError(escape(str(exc))) from None
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    return 0
