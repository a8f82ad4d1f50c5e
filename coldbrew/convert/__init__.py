"""Converters: one module per library, each turning a fitted model into `.brew` arrays and writing the file.

``detect(path)`` tells what an input file holds by its content, never its name; ``compile_file`` dispatches to
``convert.sklearn`` (pickles of scikit-learn estimators), ``convert.xgboost`` (XGBoost JSON/UBJSON model files,
or pickled XGBoost estimators) or ``convert.lightgbm`` (LightGBM text model files, or pickled LightGBM
estimators). Parsing XGBoost/LightGBM *files* needs neither library; they are imported only to check the
compiled file against the library's own predictions when installed, and to compile from a pickled object.

May import: errors, format, engine (to check its output bit for bit). The libraries themselves are imported
lazily, only by the converter that needs them; nothing on the serving path imports this package.
"""

from __future__ import annotations

import os
from pathlib import Path

from coldbrew.errors import ColdbrewError

KINDS = ("brew", "xgboost-json", "xgboost-ubj", "lightgbm-text", "catboost-cbm", "catboost-json", "pickle", "unknown")


def detect(path: str | os.PathLike) -> str:
    """What ``path`` holds, from its first bytes: one of ``KINDS`` (a pickle/joblib is the fallback).

    Raises ``ModelFormatError`` if it cannot be opened.
    """
    from coldbrew.format import MAGIC, read_head

    head = read_head(path, 4096)
    if head.startswith(MAGIC):
        return "brew"
    if head[:1] == b"{" and head[1:2] in (b"i", b"U", b"I", b"l", b"L") and b"learner" in head[:32]:
        return "xgboost-ubj"  # UBJSON object: a key is a length-typed string, no quotes
    if head.lstrip().startswith(b"{") and b'"learner"' in head:
        return "xgboost-json"
    if head.startswith((b"tree\n", b"tree\r\n")):
        return "lightgbm-text"
    if head.startswith(b"CBM1"):
        return "catboost-cbm"
    first_key = head.lstrip()[1:].lstrip()  # CatBoost writes its keys sorted: ctr_data (if any), features_info, ...
    if head.lstrip().startswith(b"{") and (
        b'"oblivious_trees"' in head or first_key.startswith((b'"features_info"', b'"ctr_data"'))
    ):
        return "catboost-json"
    from coldbrew.engine import describe

    return "pickle" if describe(head) else "unknown"


def compile_file(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    progress: bool = True,
    class_labels: list[str] | None = None,
    feature_names: list[str] | None = None,
) -> dict:
    """Compile the model in ``src`` (detected by content) into ``dst``; returns statistics for the CLI.

    Raises ``UnsupportedModelError`` (nothing written) for what .brew cannot represent exactly, and
    ``ModelFormatError`` (nothing written) if the compiled file does not reproduce the library's predictions.
    ``feature_names`` names the features of a model trained without names (bare arrays).
    """
    import time

    started = time.perf_counter()
    src = Path(src)
    kind = detect(src)
    if kind == "brew":
        raise ColdbrewError(f"{src} is already a .brew file")
    if src.name.lower().endswith(".brew"):  # as every other command: a .brew name must hold a .brew file
        raise ColdbrewError(f"{src}: named .brew but not a .brew file ({kind}); refused, nothing was loaded")
    from coldbrew.convert.trees import UnsupportedModelError

    if kind == "unknown":
        raise UnsupportedModelError(
            f"{src}: not a model file coldbrew recognises (not a .brew, pickle/joblib, XGBoost JSON/UBJSON, "
            "LightGBM text or CatBoost file)"
        )
    token = _feature_names(feature_names)
    try:
        if kind in ("xgboost-json", "xgboost-ubj"):
            from coldbrew.convert import xgboost

            stats = xgboost.compile_path(src, dst, class_labels=class_labels)
        elif kind == "lightgbm-text":
            from coldbrew.convert import lightgbm

            stats = lightgbm.compile_path(src, dst, class_labels=class_labels)
        elif kind in ("catboost-cbm", "catboost-json"):
            from coldbrew.convert import catboost

            stats = catboost.compile_path(src, dst, kind=kind, class_labels=class_labels)
        else:
            from coldbrew.engine.pickled import load_estimator

            stats = compile_estimator(load_estimator(src), dst, progress=progress, class_labels=class_labels)
    finally:
        _reset_feature_names(token)
    stats.update(src=str(src), input_bytes=src.stat().st_size, seconds=time.perf_counter() - started, input=kind)
    return stats


def _feature_names(names: list[str] | None):
    from coldbrew.convert import trees

    return None if names is None else trees.FEATURE_NAMES.set(list(names))


def _reset_feature_names(token) -> None:
    from coldbrew.convert import trees

    if token is not None:
        trees.FEATURE_NAMES.reset(token)


#: What a pickle must hold: a fitted estimator (or Booster) of one of these libraries.
LIBRARIES = ("sklearn", "xgboost", "lightgbm", "catboost")


def compile_estimator(
    est,
    dst: str | os.PathLike,
    *,
    progress: bool = True,
    class_labels: list[str] | None = None,
    feature_names: list[str] | None = None,
) -> dict:
    """Compile a fitted estimator object of any supported library into ``dst``."""
    from coldbrew.convert.trees import UnsupportedModelError

    module = type(est).__module__.split(".")[0]
    if module not in LIBRARIES:
        what = type(est).__name__ if module == "builtins" else f"{type(est).__module__}.{type(est).__name__}"
        raise UnsupportedModelError(
            f"cannot compile a {what[:100]}: the pickle must hold a fitted scikit-learn, XGBoost, LightGBM "
            "or CatBoost estimator (docs/models.md lists what compiles)"
        )
    token = _feature_names(feature_names)
    try:
        if module == "xgboost":
            from coldbrew.convert import xgboost

            return xgboost.compile_estimator(est, dst, class_labels=class_labels)
        if module == "lightgbm":
            from coldbrew.convert import lightgbm

            return lightgbm.compile_estimator(est, dst, class_labels=class_labels)
        if module == "catboost":
            from coldbrew.convert import catboost

            return catboost.compile_estimator(est, dst, class_labels=class_labels)
        if type(est).__name__ == "Pipeline":
            from coldbrew.convert import pipeline

            return pipeline.compile_pipeline(est, dst, class_labels=class_labels)
        from coldbrew.convert import sklearn

        return sklearn.compile_estimator(est, dst, progress=progress, class_labels=class_labels)
    finally:
        _reset_feature_names(token)
