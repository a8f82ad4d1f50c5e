"""Input checks shared by the predictors: a 2-D numeric matrix, no NaN, no infinity, float32 range."""

from __future__ import annotations

import numpy as np

from coldbrew.errors import ColdbrewError


class InvalidInputError(ColdbrewError, ValueError):
    """The rows given to a predictor cannot be scored (wrong shape, NaN, infinity, not numbers)."""


def as_float32(X, feature_names: tuple[str, ...] | None, n_features: int) -> np.ndarray:
    """``X`` as a C-contiguous float32 matrix, cast the way scikit-learn casts it; refuses NaN and infinity.

    Finite float64 values beyond float32's range become infinite in the cast and are refused too, exactly
    as scikit-learn refuses them.
    """
    try:
        X = np.asarray(X)
        with np.errstate(over="ignore", invalid="ignore"):
            X32 = np.ascontiguousarray(X, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"rows must be numbers: {exc}") from None
    if X32.ndim != 2:
        raise InvalidInputError(f"expected a 2-D array of shape (n_rows, {n_features}), got {X32.ndim}-D")
    if X32.shape[1] != n_features:
        raise InvalidInputError(f"expected {n_features} features per row, got {X32.shape[1]}")
    finite = np.isfinite(X32)
    if not finite.all():
        row, col = (int(i) for i in np.argwhere(~finite)[0])
        name = feature_names[col] if feature_names else f"column {col}"
        original = X[row, col]
        why = "is NaN" if np.isnan(X32[row, col]) else "is infinite or too large for float32"
        raise InvalidInputError(f"row {row}, {name}: value {original!r} {why}")
    return X32
