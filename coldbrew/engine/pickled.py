"""PicklePredictor: the baseline, any fitted scikit-learn estimator from a pickle or joblib file.

Loading a pickle imports scikit-learn and can execute code from the file: load only files you trust.
"""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import numpy as np

from coldbrew.engine.inputs import InvalidInputError, as_float32
from coldbrew.errors import ModelFormatError


def load_estimator(path: str | os.PathLike):
    """Unpickle a fitted estimator (plain pickle, or joblib in any of its compressions)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            if fh.read(1) == b"\x80":  # a pickle protocol >= 2 stream: load it the way the study did
                fh.seek(0)
                try:
                    return pickle.load(fh)
                except Exception:  # noqa: BLE001 - joblib's own pickles need joblib's unpickler, tried next
                    pass
            import joblib

            return joblib.load(path)
    except OSError as exc:
        raise ModelFormatError(f"{path}: cannot open: {exc.strerror or exc}") from exc
    except ModuleNotFoundError as exc:
        ours = (exc.name or "").split(".")[0] in ("sklearn", "joblib", "scipy")
        hint = " pip install 'coldbrew[sklearn]'" if ours else ""
        raise ModelFormatError(
            f"{path}: unpickling needs the module {exc.name}, which is not installed;{hint}"
            " (or serve a .brew: coldbrew compile)"
        ) from exc
    except Exception as exc:
        raise ModelFormatError(f"{path}: not a .brew file and not a loadable pickle/joblib model ({exc})") from exc


def serving_header(est, n_features: int, classes: tuple | None) -> dict:
    """The serving facts a .brew header carries (docs/format.md), derived from a fitted estimator.

    ``feature_missing``: every feature, when scikit-learn says the estimator accepts NaN (its ``allow_nan``
    tag: HistGradientBoosting, and the trees/forests whose splitter routes missing values); ``feature_categorical``
    from HistGradientBoosting's ``is_categorical_``; ``task`` from the classes; no ``class_labels`` (a pickle's
    classes are its labels).
    """
    try:
        allow_nan = bool(est.__sklearn_tags__().input_tags.allow_nan)
    except AttributeError:  # not a scikit-learn estimator, or one without tags: assume no missing values
        allow_nan = False
    categorical = getattr(est, "is_categorical_", None)
    if classes is None:
        task = "anomaly" if hasattr(est, "score_samples") and hasattr(est, "offset_") else "regression"
        task = "ranking" if type(est).__name__ in ("XGBRanker", "LGBMRanker") else task
    else:
        task = "binary" if len(classes) == 2 else "multiclass"
    return {
        "feature_missing": [allow_nan] * n_features if allow_nan else None,
        "feature_categorical": [bool(c) for c in categorical] if categorical is not None else None,
        "task": task,
        "class_labels": None,
    }


def _rows_with_missing(X, feature_names: tuple[str, ...], n_features: int) -> np.ndarray:
    """``X`` as float64 with NaN kept as missing; everything else checked as ``as_float32`` checks it.

    The float64 values go to the estimator unchanged, so a model that compares in float64 (HistGradientBoosting)
    sees exactly the numbers it was given; the float32 trees cast them the way they always do.
    """
    try:
        X64 = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"rows must be numbers: {exc}") from None
    as_float32(np.where(np.isnan(X64), 0.0, X64), feature_names, n_features)  # shape, infinity and range checks
    return X64


class PicklePredictor:
    """Wraps a fitted scikit-learn estimator behind the same interface as BrewPredictor."""

    format = "pickle"

    def __init__(self, path, estimator=None):
        self.path = Path(path)
        self.estimator = load_estimator(path) if estimator is None else estimator
        est = self.estimator
        if not hasattr(est, "predict"):
            raise ModelFormatError(f"{path}: the pickle holds a {type(est).__name__}, not a fitted estimator")
        self.kind = type(est).__name__
        self.n_features = int(getattr(est, "n_features_in_", 0)) or None
        names = getattr(est, "feature_names_in_", None)
        self.feature_names = (
            tuple(str(n) for n in names) if names is not None else tuple(f"x{i}" for i in range(self.n_features or 0))
        )
        classes = getattr(est, "classes_", None)
        self.classes = tuple(np.asarray(classes).tolist()) if classes is not None else None
        self.size_bytes = self.path.stat().st_size
        self.header = serving_header(est, len(self.feature_names), self.classes)

    def _call(self, method: str, X):
        if self.n_features is None:
            X = np.asarray(X)
        elif any(self.header["feature_missing"] or ()):
            X = _rows_with_missing(X, self.feature_names, self.n_features)
        else:
            X = as_float32(X, self.feature_names, self.n_features)
        with warnings.catch_warnings():
            # Fitted on a DataFrame, given an array: sklearn warns on every call; the columns are in order.
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
            return getattr(self.estimator, method)(X)

    @property
    def has_proba(self) -> bool:
        """True when the estimator has ``predict_proba`` (a hard-voting VotingClassifier has none)."""
        return self.classes is not None and hasattr(self.estimator, "predict_proba")

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities from the estimator's own ``predict_proba``."""
        return self._call("predict_proba", X)

    def predict(self, X) -> np.ndarray:
        """The estimator's own ``predict``."""
        return self._call("predict", X)

    def score_samples(self, X) -> np.ndarray:
        """An outlier detector's own ``score_samples``."""
        return self._call("score_samples", X)

    def decision_function(self, X) -> np.ndarray:
        """An outlier detector's own ``decision_function``."""
        return self._call("decision_function", X)

    def info(self) -> dict:
        """Facts about the model for logs and telemetry."""
        est = self.estimator
        trees = getattr(est, "estimators_", None)
        flat = list(np.asarray(trees, dtype=object).ravel()) if trees is not None else [est]
        tree_objs = [t.tree_ for t in flat if hasattr(t, "tree_")]
        return {
            "format": self.format,
            "kind": self.kind,
            "size_bytes": self.size_bytes,
            "n_trees": len(tree_objs),
            "n_nodes": int(sum(t.node_count for t in tree_objs)),
            "n_features": self.n_features,
            "classes": list(self.classes) if self.classes is not None else None,
        }
