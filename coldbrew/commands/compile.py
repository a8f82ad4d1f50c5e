"""`coldbrew compile`: a fitted tree model (scikit-learn pickle, XGBoost, LightGBM or CatBoost model file) into .brew."""

from __future__ import annotations

import argparse
from pathlib import Path

from coldbrew.errors import ColdbrewError

HELP = """\
INPUT is detected by content, not by name:
  - a pickle/joblib of a fitted scikit-learn GradientBoosting, RandomForest, ExtraTrees, DecisionTree,
    HistGradientBoosting or Bagging (of trees) classifier/regressor, or of an XGBoost / LightGBM sklearn-API
    estimator (classifier, regressor, ranker) or Booster, or of a CatBoost estimator.
    Compiling UNPICKLES the file, which can run code from it: compile only your own models. (Serving a
    .brew never unpickles anything.)
  - an XGBoost model file from save_model (.json or .ubj), gbtree or dart booster;
  - a LightGBM model file from save_model (.txt);
  - a CatBoost model file from save_model (.cbm, or format="json"); a pickled CatBoostClassifier /
    CatBoostRegressor / CatBoostRanker works too.
The compiled file is re-read and its predictions compared bit for bit with the library's own (when the
library is installed), on rows at the model's thresholds and with missing values; nothing is written if
they differ. Unsupported objectives/options are refused with one line saying what and why (docs/models.md
lists what compiles and what is refused). A file named .brew that is not a .brew is refused, never unpickled;
nothing is written to -o unless the compiled file passed its check.
"""


def add_arguments(parser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = HELP
    parser.add_argument("model", type=Path, metavar="INPUT", help="the model to compile (see below)")
    parser.add_argument("-o", "--output", required=True, type=Path, help="the .brew file to write")
    parser.add_argument(
        "--class-labels",
        metavar="LABEL,LABEL,...",
        help="display names of the classes, in the model's class order, stored in the file for the serving API",
    )
    parser.add_argument(
        "--feature-names",
        metavar="NAME,NAME,...",
        help="names of the features, in column order, for a model trained on bare arrays (the request fields)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    """Compile ``args.model`` into ``args.output`` and print a summary."""
    from coldbrew.convert import compile_file

    if not args.model.is_file():
        raise ColdbrewError(f"{args.model}: no such file")
    labels = None if args.class_labels is None else [s.strip() for s in args.class_labels.split(",")]
    names = None if args.feature_names is None else [s.strip() for s in args.feature_names.split(",")]
    try:
        stats = compile_file(args.model, args.output, progress=not args.quiet, class_labels=labels, feature_names=names)
    except ColdbrewError as exc:  # one line, whatever the library or the file put in the message
        raise ColdbrewError(_one_line(str(exc))) from None
    except (ModuleNotFoundError, KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - a model file is untrusted input: any failure is one line, no traceback
        raise ColdbrewError(f"{args.model}: cannot compile: {type(exc).__name__}: {_one_line(str(exc))}") from None
    rows = [
        ("estimator", f"{stats['estimator']} ({stats['kind']})"),
        ("trees", f"{stats['n_trees']:,}"),
        ("nodes", f"{stats['n_nodes']:,}"),
        ("max depth", f"{stats['max_depth']}"),
        ("input size", _mb(stats["input_bytes"])),
        ("output size", f"{_mb(stats['output_bytes'])} ({stats['output_bytes'] / stats['input_bytes']:.2f}x)"),
        ("checked", _checked(stats)),
        ("time", f"{stats['seconds']:.2f} s"),
    ]
    print(f"wrote {stats['dst']}")
    for key, value in rows:
        print(f"  {key:<12} {value}")
    return 0


def _checked(stats: dict) -> str:
    ref = stats.get("reference")
    if not ref:
        return "checksum only (the library is not installed here, so predictions were not compared)"
    return f"checksum + {stats['checked_rows']} threshold rows bit-identical to {ref}"


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB" if n >= 100_000 else f"{n / 1e3:,.1f} kB"


def _one_line(text: str, limit: int = 500) -> str:
    """``text`` on one line (newlines and control characters as spaces), at most ``limit`` characters."""
    flat = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
