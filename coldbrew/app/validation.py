"""Turn a ``/predict`` request body into rows of floats, or say exactly what is wrong.

The rules (docs/serving.md): the body is a JSON object (one row) or a non-empty JSON list of objects (a batch).
Each object has exactly the model's features — a missing or an unknown field is rejected — and every value is a
JSON number within ±FLOAT32_MAX (scikit-learn's trees compare features as float32 and refuse anything that
overflows it), or ``null`` for a feature the model handles as missing (it becomes NaN, the libraries' missing
value). Strings, booleans (a Python ``bool`` is an ``int``: checked by exact type), null elsewhere, NaN, Infinity
and out-of-range numbers are rejected with the field and, for batches, the row index.
"""

from __future__ import annotations

import json

from coldbrew.errors import ColdbrewError

# Largest finite float32 (numpy.finfo(numpy.float32).max): the trees' feature dtype, so the largest usable value.
FLOAT32_MAX = 3.4028234663852886e38
_FLOAT32_MAX_INT = int(FLOAT32_MAX)

_JSON_TYPES = {str: "a string", bool: "a boolean", type(None): "null", dict: "an object", list: "an array"}


class InvalidRequest(ColdbrewError):
    """A request the client must fix: becomes a 4xx JSON body ``{"error", "field", "index"}``."""

    def __init__(self, message: str, *, status: int = 400, field: str | None = None, index: int | None = None):
        super().__init__(message)
        self.status = status
        self.field = field
        self.index = index

    def body(self) -> dict:
        """The JSON error body."""
        return {"error": str(self), "field": self.field, "index": self.index}


def _reject_constant(name: str):
    raise InvalidRequest(f"{name} is not a number this API accepts: send finite numbers only")


def decode_json(raw: bytes):
    """Parse ``raw`` as strict JSON: NaN and ±Infinity literals are refused."""
    if not raw.strip():
        raise InvalidRequest("request body is empty: send a JSON object or a list of objects")
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except InvalidRequest:
        raise
    except RecursionError:
        raise InvalidRequest("request body is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, invalid UTF-8, over-long integer literals
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None


MISSING = float("nan")


def _number(value, field: str, index: int | None, nullable: bool = False) -> float:
    kind = type(value)
    if kind is float:
        if -FLOAT32_MAX <= value <= FLOAT32_MAX:  # False for NaN and ±inf (e.g. a literal 1e400)
            return value
        problem = f"{value!r}, outside ±{FLOAT32_MAX:.7g}"
    elif kind is int:
        if -_FLOAT32_MAX_INT <= value <= _FLOAT32_MAX_INT:
            return float(value)
        problem = f"an integer outside ±{FLOAT32_MAX:.7g}"
    elif value is None and nullable:
        return MISSING
    else:
        problem = _JSON_TYPES.get(kind, kind.__name__)
    where = f" (row {index})" if index is not None else ""
    allowed = " or null" if nullable else ""
    message = f"field '{field}' must be a number within ±3.4e38{allowed}{where}, got {problem}"
    raise InvalidRequest(message, field=field, index=index)


def parse_row(
    obj, features: tuple[str, ...], index: int | None, nullable: tuple[bool, ...] | None = None
) -> list[float]:
    """One JSON object → the feature values in model order (``null`` → NaN where ``nullable``)."""
    where = f" (row {index})" if index is not None else ""
    if not isinstance(obj, dict):
        got = _JSON_TYPES.get(type(obj), "a number")
        raise InvalidRequest(f"each row must be a JSON object of features{where}, got {got}", index=index)
    row = []
    for i, name in enumerate(features):
        if name not in obj:
            raise InvalidRequest(f"missing field '{name}'{where}", field=name, index=index)
        row.append(_number(obj[name], name, index, nullable is not None and nullable[i]))
    if len(obj) != len(features):
        extra = next(key for key in obj if key not in features)
        allowed = ", ".join(features)
        message = f"unknown field '{extra}'{where}; the model takes exactly: {allowed}"
        raise InvalidRequest(message, field=extra, index=index)
    return row


def parse_rows(
    payload, features: tuple[str, ...], nullable: tuple[bool, ...] | None = None
) -> tuple[list[list[float]], bool]:
    """A decoded body → ``(rows, is_batch)``; a single object is a batch of one with ``is_batch=False``.

    ``nullable`` (one flag per feature) says which features accept ``null`` (→ NaN); by default none does.
    """
    if isinstance(payload, dict):
        return [parse_row(payload, features, None, nullable)], False
    if isinstance(payload, list):
        if not payload:
            raise InvalidRequest("empty list: send at least one row")
        return [parse_row(obj, features, i, nullable) for i, obj in enumerate(payload)], True
    got = _JSON_TYPES.get(type(payload), "a number")
    raise InvalidRequest(f"request body must be a JSON object or a list of objects, got {got}")
