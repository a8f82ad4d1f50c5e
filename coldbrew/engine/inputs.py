"""Input checks shared by the predictors: a 2-D numeric matrix, no NaN, no infinity, float32 range.

Rows given as lists are flattened with the standard library (:func:`flat_rows`; the C kernel then casts and
checks them); numpy arrays and other array-likes go through numpy (:func:`as_float32`,
:func:`as_float64_with_nan`), imported only when they are used.
"""

from __future__ import annotations

import math

from coldbrew.engine.buffers import array
from coldbrew.errors import ColdbrewError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up (type checkers read it as true)

if TYPE_CHECKING:
    from typing import Any

    import numpy as np


#: A linear-leaf model (docs/format.md section 13) multiplies its inputs: an extreme value can overflow the answer.
LINEAR_OVERFLOW = "an input value is too large for this model: its linear leaves overflow to infinity"


class InvalidInputError(ColdbrewError, ValueError):
    """The rows given to a predictor cannot be scored (wrong shape, NaN, infinity, not numbers)."""


def as_float32(X, feature_names: tuple[str, ...] | None, n_features: int) -> np.ndarray:
    """``X`` as a C-contiguous float32 matrix, cast the way scikit-learn casts it; refuses NaN and infinity.

    Finite float64 values beyond float32's range become infinite in the cast and are refused too, exactly
    as scikit-learn refuses them.
    """
    import numpy as np

    with _converting("numbers"):
        X = np.asarray(X)
        X32 = np.ascontiguousarray(X, dtype=np.float32)
    _check_shape(X32, n_features)
    finite = np.isfinite(X32)
    if not finite.all():
        row, col, name = _first_cell(~finite, feature_names)
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

    with _converting("numbers or null"):
        X = np.asarray(X, dtype=object if _has_none(X) else None)
        if X.dtype == object:
            X = np.where(X == np.array(None), np.nan, X)  # elementwise against a 0-d None: None is missing
        Xc = np.ascontiguousarray(X, dtype=np.float32 if input_dtype == "float32" else np.float64)
    _check_shape(Xc, n_features)
    infinite = np.isinf(Xc)
    if infinite.any():
        row, col, name = _first_cell(infinite, feature_names)
        raise InvalidInputError(
            f"row {row}, {name}: value {_python(X[row, col])!r} is infinite or too large for {input_dtype}"
        )
    return np.ascontiguousarray(Xc, dtype=np.float64)


class _converting:  # noqa: N801 - used as ``with _converting(...)``, like the function it replaces
    """numpy's conversion of the rows, its errors as ``InvalidInputError("rows must be <what>: ...")``.

    Overflow is not an error here: a value too large for the dtype becomes infinite, which the caller refuses
    naming its row and column. A class rather than ``contextlib.contextmanager``: contextlib stays off the
    serving path's imports.
    """

    def __init__(self, what: str):
        self.what = what
        self._errstate: Any = None

    def __enter__(self) -> None:
        import numpy as np

        self._errstate = np.errstate(over="ignore", invalid="ignore")
        self._errstate.__enter__()

    def __exit__(self, kind, exc, tb) -> None:
        if self._errstate is not None:
            self._errstate.__exit__(kind, exc, tb)
        if isinstance(exc, (TypeError, ValueError, OverflowError)):
            raise InvalidInputError(f"rows must be {self.what}: {exc}") from None


def _check_shape(X: np.ndarray, n_features: int) -> None:
    """Refuse anything but a matrix of ``n_features`` columns."""
    if X.ndim != 2:
        raise InvalidInputError(f"expected a 2-D array of shape (n_rows, {n_features}), got {X.ndim}-D")
    if X.shape[1] != n_features:
        raise InvalidInputError(f"expected {n_features} features per row, got {X.shape[1]}")


def _first_cell(mask: np.ndarray, feature_names: tuple[str, ...] | None) -> tuple[int, int, str]:
    """Row, column and the column's name (or ``column <i>``) of the first true cell of ``mask``."""
    import numpy as np

    row, col = (int(i) for i in np.argwhere(mask)[0])
    return row, col, feature_names[col] if feature_names else f"column {col}"


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
