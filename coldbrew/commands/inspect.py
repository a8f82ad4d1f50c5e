"""`coldbrew inspect`: print a .brew file's header as a table; ``--verify`` also checks its SHA-256."""

from __future__ import annotations

from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("model", type=Path, help="a .brew file")
    parser.add_argument("--verify", action="store_true", help="check the checksum (reads the whole file)")


def summary(path: Path, verify: bool = False) -> list[tuple[str, str]]:
    """(label, value) rows describing the .brew file at ``path``."""
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
        ("created by", h.get("created_by", "?")),
    ]


def _estimator(source: dict) -> str:
    if source.get("library") == "xgboost":
        return f"XGBoost {source.get('xgboost_version', '?')} ({source.get('objective', '?')})"
    if source.get("library") == "lightgbm":
        return f"LightGBM {source.get('format', '?')} ({source.get('objective', '?')})"
    return f"{source.get('estimator', '?')} (sklearn {source.get('sklearn_version', '?')})"


def run(args) -> int:
    rows = summary(args.model, verify=args.verify)
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    return 0
