"""The input stage (docs/format.md section 12): raw named columns (numbers, strings) -> the model's features.

Two kernels, bit for bit the same: :meth:`Stage.rows` on rows given as lists (pure Python, no numpy: Python's
float ``+ - * /`` are the same IEEE-754 float64 operations numpy performs elementwise) and :meth:`Stage.matrix`
on anything else (a pandas DataFrame, a numpy array; numpy vectorised). A value of the wrong type (a string in
a number column, a number in a string column) or an unknown category where the model refuses one raises
:class:`InvalidInputError` naming the row and column.
"""

from __future__ import annotations

import math

from coldbrew.engine.buffers import array
from coldbrew.engine.inputs import InvalidInputError
from coldbrew.errors import ColdbrewError

TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    import numpy as np

NAN = math.nan


def _missing(v: object) -> bool:
    return v is None or (type(v) is float and v != v)


class _Refuse(ColdbrewError):
    """An op refused a value (an unknown category the model refuses); the caller names row and column."""


def _code(outcome: Any) -> float | None:
    """A vocab outcome as a float code; None for ``"error"``."""
    if outcome == "error":
        return None
    return NAN if outcome is None else float(outcome)


# ---------------------------------------------------------------------------------- ops on one Python value
def _py_impute(op: dict) -> Callable[[Any], Any]:
    fill = op["value"]
    fill = fill if isinstance(fill, str) else float(fill)
    return lambda v: fill if _missing(v) else v


def _py_vocab(op: dict) -> Callable[[Any], Any]:
    codes = op.get("codes") or range(len(op["values"]))
    table = {(v if isinstance(v, str) else float(v)): float(c) for v, c in zip(op["values"], codes, strict=True)}
    unknown, missing = _code(op["unknown"]), _code(op["missing"])

    def vocab(v):
        if _missing(v):
            if missing is None:
                raise _Refuse("is missing, and the model refuses a missing category")
            return missing
        code = table.get(v)
        if code is None:
            if unknown is None:
                raise _Refuse(f"{v!r} is not a category the model knows ({len(table)} known)")
            return unknown
        return code

    return vocab


def _py_arith(op: dict) -> Callable[[Any], Any]:
    c = float(op["value"])
    kind = op["kind"]
    if kind == "sub":
        return lambda v: v - c
    if kind == "add":
        return lambda v: v + c
    if kind == "mul":
        return lambda v: v * c
    return lambda v: v / c  # div: the divisor is never 0 (validated)


def _py_onehot(op: dict) -> Callable[[Any], Any]:
    codes = frozenset(float(c) for c in op["codes"])
    return lambda v: 1.0 if v in codes else 0.0


def _py_table(op: dict) -> Callable[[Any], Any]:
    values = [float(v) for v in op["values"]]
    default = float(op["default"])
    n = len(values)

    def table(v):
        if 0 <= v < n and v == int(v):  # False for NaN
            return values[int(v)]
        return default

    return table


def _py_catboost_hash(op: dict) -> Callable[[Any], Any]:
    from coldbrew.engine.cityhash import catboost_cat_hash

    def catboost_hash(v):
        if _missing(v):  # CatBoost refuses a missing categorical value (None, NaN)
            raise _Refuse("is missing; CatBoost takes no missing categorical value")
        try:
            return float(catboost_cat_hash(v))
        except UnicodeEncodeError:
            raise _Refuse("is not valid Unicode text (it has a lone surrogate)") from None

    return catboost_hash


PY_OPS: dict[str, Callable[[dict], Callable[[Any], Any]]] = {
    "impute": _py_impute,
    "vocab": _py_vocab,
    "sub": _py_arith,
    "add": _py_arith,
    "mul": _py_arith,
    "div": _py_arith,
    "onehot": _py_onehot,
    "table": _py_table,
    "catboost_hash": _py_catboost_hash,
}


# ------------------------------------------------------------------------------ ops on a numpy column vector
def _np_impute(op: dict, v: np.ndarray) -> np.ndarray:
    import numpy as np

    fill = op["value"]
    if isinstance(fill, str):
        return np.array([fill if _missing(x) else x for x in v.tolist()], dtype=object)
    return np.where(np.isnan(v), float(fill), v)


def _np_vocab(op: dict, v: np.ndarray) -> np.ndarray:
    import numpy as np

    f = _py_vocab(op)
    return np.array([f(x) for x in v.tolist()], dtype=np.float64).reshape(-1)


def _np_arith(op: dict, v: np.ndarray) -> np.ndarray:
    c = float(op["value"])
    kind = op["kind"]
    if kind == "sub":
        return v - c
    if kind == "add":
        return v + c
    if kind == "mul":
        return v * c
    return v / c


def _np_onehot(op: dict, v: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.isin(v, np.array(op["codes"], dtype=np.float64)).astype(np.float64)


def _np_table(op: dict, v: np.ndarray) -> np.ndarray:
    import numpy as np

    values = np.array(op["values"], dtype=np.float64)
    ok = (v >= 0) & (v < len(values)) & (v == np.floor(v))  # False for NaN
    out = np.full(v.shape, float(op["default"]))
    out[ok] = values[v[ok].astype(np.int64)]
    return out


def _np_catboost_hash(op: dict, v: np.ndarray) -> np.ndarray:
    import numpy as np

    f = _py_catboost_hash(op)
    return np.array([f(x) for x in v.tolist()], dtype=np.float64).reshape(-1)


NP_OPS: dict[str, Callable[[dict, Any], Any]] = {
    "impute": _np_impute,
    "vocab": _np_vocab,
    "sub": _np_arith,
    "add": _np_arith,
    "mul": _np_arith,
    "div": _np_arith,
    "onehot": _np_onehot,
    "table": _np_table,
    "catboost_hash": _np_catboost_hash,
}


class Stage:
    """The ``inputs`` of a version 3 header, ready to apply (the header was validated by the reader)."""

    def __init__(self, inputs: dict, feature_names: tuple[str, ...]):
        self.inputs = inputs
        self.columns: tuple[str, ...] = tuple(c["name"] for c in inputs["columns"])
        self.types: tuple[str, ...] = tuple(c["type"] for c in inputs["columns"])
        self.nullable: tuple[bool, ...] = tuple(bool(c.get("nullable", False)) for c in inputs["columns"])
        self.feature_names = feature_names  # the model's features, the stage's outputs
        self._features = [(f["column"], [PY_OPS[op["kind"]](op) for op in f["ops"]]) for f in inputs["features"]]

    @property
    def n_columns(self) -> int:
        return len(self.columns)

    # --------------------------------------------------------------------------------- lists (no numpy)
    def _check(self, v: Any, row: int, col: int) -> object:
        """A raw value of the column's type (numbers as floats; None and NaN missing), else an input error."""
        kind = type(v)
        if self.types[col] == "any":  # a column the model does not read
            return None
        if self.types[col] == "number":
            if kind is float:
                return v
            if kind is int:
                return float(v)
            if v is None:
                return NAN
            if isinstance(v, float) or (
                hasattr(v, "__index__") and not isinstance(v, (bool, str)) and kind.__name__ != "bool_"
            ):
                return float(v)  # a float or integer subclass (numpy scalars)
            raise InvalidInputError(f"row {row}, {self.columns[col]}: expected a number, got {_what(v)}")
        if kind is str or v is None or (kind is float and v != v):
            return v
        if isinstance(v, str):
            return str(v)  # a str subclass (numpy's str_)
        if isinstance(v, float) and v != v:
            return None
        raise InvalidInputError(f"row {row}, {self.columns[col]}: expected a string, got {_what(v)}")

    def rows(self, X: list | tuple) -> array:
        """Rows of raw values (lists in column order) -> one flat ``array('d')`` of the model's features."""
        n = self.n_columns
        if not X:
            raise InvalidInputError(f"expected rows of {n} columns ({', '.join(self.columns)}), got no rows")
        out = array("d")
        for i, row in enumerate(X):
            if not isinstance(row, (list, tuple)) or len(row) != n:
                got = f"{len(row)} values" if isinstance(row, (list, tuple)) else _what(row)
                raise InvalidInputError(f"row {i}: expected {n} columns ({', '.join(self.columns)}), got {got}")
            values = [self._check(v, i, j) for j, v in enumerate(row)]
            for col, ops in self._features:
                v = values[col]
                try:
                    for op in ops:
                        v = op(v)
                except _Refuse as exc:
                    raise InvalidInputError(f"row {i}, {self.columns[col]}: value {exc}") from None
                out.append(v)
        return out

    # ------------------------------------------------------------------------------------- numpy batches
    def matrix(self, X) -> np.ndarray:
        """A pandas DataFrame (columns by name) or a 2-D array / list (columns in order) -> float64 features."""
        import numpy as np

        columns = self._raw_columns(X)
        out = np.empty((len(columns[0]) if columns else 0, len(self._features)), dtype=np.float64)
        cache: dict[int, Any] = {}
        for j, f in enumerate(self.inputs["features"]):
            col = f["column"]
            if col not in cache:
                cache[col] = self._np_column(columns[col], col)
            v = cache[col]
            try:
                for op in f["ops"]:
                    v = NP_OPS[op["kind"]](op, v)
            except _Refuse as exc:
                raise InvalidInputError(f"{self.columns[col]}: value {exc}") from None
            out[:, j] = v
        return out

    def _raw_columns(self, X) -> list:
        import numpy as np

        if hasattr(X, "columns") and hasattr(X, "iloc"):  # a pandas DataFrame: columns by name
            missing = [name for name in self.columns if name not in X.columns]
            if missing:
                raise InvalidInputError(f"missing column {missing[0]!r}; the model takes {', '.join(self.columns)}")
            return [X[name].to_numpy(dtype=object, na_value=None) for name in self.columns]
        arr = np.asarray(X, dtype=object)
        if arr.ndim != 2 or arr.shape[1] != self.n_columns:
            raise InvalidInputError(
                f"expected a 2-D array of shape (n_rows, {self.n_columns}) ({', '.join(self.columns)}), "
                f"got shape {arr.shape}"
            )
        return [arr[:, j] for j in range(self.n_columns)]

    def _np_column(self, values: np.ndarray, col: int) -> np.ndarray:
        import numpy as np

        checked = [self._check(_scalar(v), i, col) for i, v in enumerate(values.tolist())]
        if self.types[col] != "string":
            return np.array([NAN if v is None else v for v in checked], dtype=np.float64).reshape(-1)
        out = np.empty(len(checked), dtype=object)
        out[:] = checked
        return out


def _scalar(v: object) -> object:
    """A numpy scalar as the Python value it holds."""
    return v.item() if hasattr(v, "item") and not isinstance(v, (str, bytes)) else v


def _what(v: object) -> str:
    if isinstance(v, str):
        return "a string"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return f"the number {v!r}"
    return type(v).__name__
