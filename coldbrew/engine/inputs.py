"""Input checks shared by the predictors: a 2-D numeric matrix, no NaN, no infinity, float32 range.

Rows given as lists are flattened with the standard library (:func:`flat_rows`; the C kernel then casts and
checks them); numpy arrays and other array-likes go through numpy (:func:`as_float32`,
:func:`as_float64_with_nan`), imported only when they are used.
"""

from __future__ import annotations

import math
from array import array
from typing import TYPE_CHECKING

from coldbrew.errors import ColdbrewError

if TYPE_CHECKING:
    import numpy as np


class InvalidInputError(ColdbrewError, ValueError):
    """The rows given to a predictor cannot be scored (wrong shape, NaN, infinity, not numbers)."""


def as_float32(X, feature_names: tuple[str, ...] | None, n_features: int) -> np.ndarray:
    """``X`` as a C-contiguous float32 matrix, cast the way scikit-learn casts it; refuses NaN and infinity.

    Finite float64 values beyond float32's range become infinite in the cast and are refused too, exactly
    as scikit-learn refuses them.
    """
    import numpy as np

    try:
        X = np.asarray(X)
        with np.errstate(over="ignore", invalid="ignore"):
            X32 = np.ascontiguousarray(X, dtype=np.float32)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInputError(f"rows must be numbers: {exc}") from None
    if X32.ndim != 2:
        raise InvalidInputError(f"expected a 2-D array of shape (n_rows, {n_features}), got {X32.ndim}-D")
    if X32.shape[1] != n_features:
        raise InvalidInputError(f"expected {n_features} features per row, got {X32.shape[1]}")
    finite = np.isfinite(X32)
    if not finite.all():
        row, col = (int(i) for i in np.argwhere(~finite)[0])
        name = feature_names[col] if feature_names else f"column {col}"
        original = _python(X[row, col])
        why = "is NaN" if np.isnan(X32[row, col]) else "is infinite or too large for float32"
        raise InvalidInputError(f"row {row}, {name}: value {original!r} {why}")
    return X32


def as_float64_with_nan(X, feature_names: tuple[str, ...] | None, n_features: int, input_dtype: str) -> np.ndarray:
    """Format version 2 input: ``X`` as a C-contiguous float64 matrix in which NaN means *missing*.

    ``input_dtype="float32"`` rounds each value to float32 first (as XGBoost does), then widens it back exactly;
    ``"float64"`` keeps the values (as scikit-learn's HistGradientBoosting and LightGBM do). ``None`` becomes
    NaN. Infinity, and values beyond float32's range for float32 models, are refused naming row and column.
    """
    import numpy as np

    try:
        X = np.asarray(X, dtype=object if _has_none(X) else None)
        if X.dtype == object:
            X = np.where(X == np.array(None), np.nan, X)  # elementwise against a 0-d None: None is missing
        with np.errstate(over="ignore", invalid="ignore"):
            Xc = np.ascontiguousarray(X, dtype=np.float32 if input_dtype == "float32" else np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInputError(f"rows must be numbers or null: {exc}") from None
    if Xc.ndim != 2:
        raise InvalidInputError(f"expected a 2-D array of shape (n_rows, {n_features}), got {Xc.ndim}-D")
    if Xc.shape[1] != n_features:
        raise InvalidInputError(f"expected {n_features} features per row, got {Xc.shape[1]}")
    infinite = np.isinf(Xc)
    if infinite.any():
        row, col = (int(i) for i in np.argwhere(infinite)[0])
        name = feature_names[col] if feature_names else f"column {col}"
        raise InvalidInputError(
            f"row {row}, {name}: value {_python(X[row, col])!r} is infinite or too large for {input_dtype}"
        )
    return np.ascontiguousarray(Xc, dtype=np.float64)


def _python(value):
    """A numpy scalar as the Python value it holds (``nan``, not ``np.float64(nan)``, in messages)."""
    return value.item() if hasattr(value, "item") else value


def _has_none(X) -> bool:
    import numpy as np

    if isinstance(X, np.ndarray):
        return X.dtype == object and any(v is None for v in X.ravel().tolist())
    if isinstance(X, (list, tuple)):
        return any(v is None or (isinstance(v, (list, tuple)) and any(u is None for u in v)) for v in X)
    return False


def is_rows_list(X) -> bool:
    """True for rows given as a list or tuple of lists or tuples: the path that needs no numpy (a list of numpy
    rows is numpy coming in, and goes the numpy way)."""
    return isinstance(X, (list, tuple)) and not (X and hasattr(X[0], "__array__"))


def flat_rows(X: list | tuple, n_features: int) -> array:
    """Rows given as lists → one flat ``array('d')``, row after row; ``None`` becomes NaN (missing).

    Refuses what numpy's conversion refused: a row that is not a sequence of ``n_features`` numbers. The values
    are only converted to float64 here; the C kernel's ``cast_input`` casts and checks them.
    """
    if not X:
        raise InvalidInputError(f"expected a 2-D array of shape (n_rows, {n_features}), got no rows")
    flat = array("d")
    for i, row in enumerate(X):
        if not isinstance(row, (list, tuple)):
            raise InvalidInputError(f"expected a 2-D array of shape (n_rows, {n_features}), got 1-D")
        if len(row) != n_features:
            raise InvalidInputError(f"expected {n_features} features per row, got {len(row)} (row {i})")
        start = len(flat)
        try:
            flat.extend(row)
        except (TypeError, OverflowError):
            del flat[start:]  # extend may have appended part of the row
            try:
                flat.extend([math.nan if v is None else v for v in row])
            except (TypeError, OverflowError) as exc:
                raise InvalidInputError(f"rows must be numbers or null: row {i}: {exc}") from None
    return flat


def bad_value(X: list | tuple, index: int, n_features: int, feature_names: tuple[str, ...] | None, why: str) -> str:
    """The message refusing the value at flat position ``index`` of list rows ``X`` (as the numpy path words it)."""
    row, col = divmod(index, n_features)
    name = feature_names[col] if feature_names else f"column {col}"
    return f"row {row}, {name}: value {X[row][col]!r} {why}"
