"""Turn a ``/predict`` request body into rows of floats, or say exactly what is wrong.

The shapes a body may take (docs/serving.md, "Request shapes"):

- a JSON object of the model's features by name: one row;
- a non-empty JSON list of such objects: a batch;
- a JSON array of numbers in the model's feature order: one positional row;
- a non-empty JSON list of such arrays: a batch of positional rows;
- ``{"instances": [...]}`` (TF Serving, KServe v1, SageMaker): a batch whose rows are all objects or all arrays.

A named row has exactly the model's features — a missing or an unknown field is rejected; a positional row has
exactly as many values as the model has features. Every value is a JSON number within ±FLOAT32_MAX (scikit-learn's
trees compare features as float32 and refuse anything that overflows it), or ``null`` for a feature the model
handles as missing (it becomes NaN, the libraries' missing value). Strings, booleans (a Python ``bool`` is an
``int``: checked by exact type), null elsewhere, NaN, Infinity and out-of-range numbers are rejected with the field
and, for batches, the row index; so are rows of mixed shapes and batches over :data:`MAX_ROWS` rows.
"""

from __future__ import annotations

from coldbrew import jsonlite  # json.loads/dumps without importing json (re, enum, ...)
from coldbrew.errors import ColdbrewError

# Largest finite float32 (numpy.finfo(numpy.float32).max): the trees' feature dtype, so the largest usable value.
FLOAT32_MAX = 3.4028234663852886e38
_FLOAT32_MAX_INT = int(FLOAT32_MAX)

#: Rows per request at most (a batch, or ``instances``); the body limit usually binds first.
MAX_ROWS = 100_000
#: The one key of a TF Serving / KServe / SageMaker style body.
INSTANCES = "instances"

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
        return jsonlite.loads(raw, parse_constant=_reject_constant)
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


def _string(value, field: str, index: int | None, nullable: bool = False):
    """A string field (a model with an input stage): a JSON string, or null where missing is handled."""
    if type(value) is str or (value is None and nullable):
        return value
    where = f" (row {index})" if index is not None else ""
    allowed = " or null" if nullable else ""
    got = _JSON_TYPES.get(type(value), "a number")
    raise InvalidRequest(f"field '{field}' must be a string{allowed}{where}, got {got}", field=field, index=index)


def _anything(value, field: str, index: int | None, nullable: bool = False):
    """A field the model does not read (a column its pipeline drops): any JSON value, ignored."""
    return None


_PARSERS = {"number": _number, "string": _string, "any": _anything}


def parse_row(
    obj,
    features: tuple[str, ...],
    index: int | None,
    nullable: tuple[bool, ...] | None = None,
    types: tuple[str, ...] = (),
) -> list:
    """One JSON object → the feature values in model order (``null`` → NaN where ``nullable``)."""
    where = f" (row {index})" if index is not None else ""
    if not isinstance(obj, dict):
        got = _JSON_TYPES.get(type(obj), "a number")
        raise InvalidRequest(f"each row must be a JSON object of features{where}, got {got}", index=index)
    row = []
    for i, name in enumerate(features):
        if name not in obj:
            raise InvalidRequest(f"missing field '{name}'{where}", field=name, index=index)
        parse = _PARSERS[types[i]] if types else _number
        row.append(parse(obj[name], name, index, nullable is not None and nullable[i]))
    if len(obj) != len(features):
        extra = next(key for key in obj if key not in features)
        allowed = ", ".join(features)
        message = f"unknown field '{extra}'{where}; the model takes exactly: {allowed}"
        raise InvalidRequest(message, field=extra, index=index)
    return row


def parse_positional(
    values: list, features: tuple[str, ...], index: int | None, nullable: tuple[bool, ...] | None = None
) -> list[float]:
    """One JSON array of values in the model's feature order → the row (``null`` → NaN where ``nullable``)."""
    if len(values) != len(features):
        where = f" (row {index})" if index is not None else ""
        message = (
            f"a positional row has {len(values)} values{where}; the model takes {len(features)}, "
            f"in this order: {', '.join(features)}"
        )
        raise InvalidRequest(message, index=index)
    if nullable is None:
        return [_number(v, name, index) for v, name in zip(values, features, strict=True)]
    return [_number(v, name, index, null) for v, name, null in zip(values, features, nullable, strict=True)]


def _shape(item) -> str:
    return "an object" if isinstance(item, dict) else "an array" if isinstance(item, list) else "a value"


def parse_batch(
    items: list,
    features: tuple[str, ...],
    nullable: tuple[bool, ...] | None = None,
    max_rows: int = MAX_ROWS,
    types: tuple[str, ...] = (),
) -> list[list]:
    """A non-empty list of rows, all objects by name or all positional arrays, at most ``max_rows`` of them."""
    if not items:
        raise InvalidRequest("empty list: send at least one row")
    if len(items) > max_rows:
        raise InvalidRequest(f"{len(items)} rows in one request; the limit is {max_rows}", status=413)
    if isinstance(items[0], list):
        _by_name_only(types)
        rows = []
        for i, item in enumerate(items):
            if not isinstance(item, list):
                raise InvalidRequest(
                    f"rows of mixed shapes: row 0 is an array, row {i} is {_shape(item)}; send every row the same way",
                    index=i,
                )
            rows.append(parse_positional(item, features, i, nullable))
        return rows
    for i, item in enumerate(items):
        if isinstance(item, list):
            raise InvalidRequest(
                f"rows of mixed shapes: row 0 is {_shape(items[0])}, row {i} is an array; send every row the same way",
                index=i,
            )
    return [parse_row(obj, features, i, nullable, types) for i, obj in enumerate(items)]


def _by_name_only(types: tuple[str, ...]) -> None:
    """A model with string fields takes rows by name only (a positional row's values cannot say their types)."""
    if any(t != "number" for t in types):
        raise InvalidRequest("this model takes rows by name only (it has string fields): send JSON objects")


def parse_rows(
    payload,
    features: tuple[str, ...],
    nullable: tuple[bool, ...] | None = None,
    max_rows: int = MAX_ROWS,
    types: tuple[str, ...] = (),
) -> tuple[list[list], bool]:
    """A decoded body → ``(rows, is_batch)``; a single row is a batch of one with ``is_batch=False``.

    ``nullable`` (one flag per feature) says which features accept ``null`` (→ NaN); by default none does.
    ``types`` (one per feature, a model with an input stage): ``"number"``, ``"string"`` or ``"any"``; by default
    every feature is a number.
    """
    if isinstance(payload, dict):
        if len(payload) == 1 and type(payload.get(INSTANCES)) is list:  # a field's value is never a list
            return parse_batch(payload[INSTANCES], features, nullable, max_rows, types), True
        return [parse_row(payload, features, None, nullable, types)], False
    if isinstance(payload, list):
        if payload and not isinstance(payload[0], (dict, list)):
            _by_name_only(types)
            return [parse_positional(payload, features, None, nullable)], False
        return parse_batch(payload, features, nullable, max_rows, types), True
    got = _JSON_TYPES.get(type(payload), "a number")
    raise InvalidRequest(
        f'request body must be a JSON object, an array of numbers, a list of rows or {{"instances": [...]}}, got {got}'
    )
