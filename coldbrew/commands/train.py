"""`coldbrew train`: parse the options and train the study's model (the work is in ``coldbrew.experiment.train``)."""

from __future__ import annotations

from pathlib import Path

from coldbrew.experiment.train import FORMATS, PRESETS, STUDY_CLASS_LABELS, compile_study_model, resolve_recipe, train


def add_arguments(parser) -> None:
    parser.add_argument("-o", "--output", required=True, type=Path, help="where to write the model")
    parser.add_argument("--preset", choices=list(PRESETS), default="tiny", help="model size (default: tiny)")
    parser.add_argument("--n-estimators", type=int, help="override the preset's number of boosting stages")
    parser.add_argument("--max-depth", type=int, help="override the preset's tree depth")
    parser.add_argument("--format", choices=FORMATS, default="pickle", help="file format (default: pickle)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--brew",
        type=Path,
        metavar="OUT.brew",
        help="also compile the model to .brew, with the class labels <=$50K,>$50K (as coldbrew compile --class-labels)",
    )


def run(args) -> int:
    recipe = resolve_recipe(args.preset, args.n_estimators, args.max_depth)
    print(f"training GradientBoostingClassifier n_estimators={recipe.n_estimators} max_depth={recipe.max_depth}")
    result = train(recipe, args.output, fmt=args.format, progress=not args.quiet)
    print(f"wrote {result.path}")
    print(f"  test accuracy  {result.accuracy:.4f}")
    print(f"  file size      {result.size_bytes / 1e6:,.1f} MB")
    print(f"  tree nodes     {result.nodes:,}")
    print(f"  training time  {result.seconds:,.1f} s")
    if getattr(args, "brew", None):
        stats = compile_study_model(result.path, args.brew, progress=not args.quiet)
        print(
            f"wrote {stats['dst']} ({stats['output_bytes'] / 1e6:,.1f} MB, class labels {', '.join(STUDY_CLASS_LABELS)})"
        )
    return 0
