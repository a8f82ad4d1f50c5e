"""The input stage of a .brew file (format version 3, header field ``inputs``; docs/format.md section 12).

A request carries raw named columns (numbers or strings); the stage maps them to the model's feature vector. Each
model feature is one raw column run through a list of ops, each op an object with a ``kind``. The ops are data:
nothing here is evaluated. This module checks an ``inputs`` object (no numpy); ``coldbrew.engine.stage`` applies
it. A new op is registered in :data:`OPS` (its argument checks and its input/output types) and in the engine.
"""

from __future__ import annotations

import math

from coldbrew.errors import ModelFormatError

#: ``any``: a column the pipeline drops (the request must carry it, as the DataFrame must; any value is accepted).
COLUMN_TYPES = ("number", "string", "any")

#: A vocab's result for a value it does not hold (``unknown``) or a missing value (``missing``): an integer code,
#: ``null`` (NaN: missing for the model) or ``"error"`` (the row is refused naming its column).
ERROR = "error"


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _outcome(v: object) -> bool:
    return v is None or v == ERROR or _number(v)


def _check_impute(op: dict, value_type: str) -> str:
    fill = op.get("value")
    ok = isinstance(fill, str) if value_type == "string" else _number(fill)
    if not ok:
        raise ModelFormatError(f"input stage: an impute op on a {value_type} needs a {value_type} value")
    return value_type


def _check_vocab(op: dict, value_type: str) -> str:
    values = op.get("values")
    if not isinstance(values, list):
        raise ModelFormatError("input stage: a vocab op needs a list of values")
    if value_type == "string":
        if not all(isinstance(v, str) for v in values):
            raise ModelFormatError("input stage: a vocab on a string column holds strings")
    elif not all(_number(v) for v in values):
        raise ModelFormatError("input stage: a vocab on a number holds finite numbers")
    if len(set(values)) != len(values):
        raise ModelFormatError("input stage: a vocab's values must be distinct")
    codes = op.get("codes")
    if codes is not None and (not isinstance(codes, list) or len(codes) != len(values) or not all(map(_number, codes))):
        raise ModelFormatError("input stage: a vocab's codes must be one finite number per value")
    if not ("unknown" in op and "missing" in op and _outcome(op["unknown"]) and _outcome(op["missing"])):
        raise ModelFormatError("input stage: a vocab op needs unknown and missing: a number, null or 'error'")
    return "number"


def _check_arith(op: dict, value_type: str) -> str:
    if value_type != "number" or not _number(op.get("value")):
        raise ModelFormatError(f"input stage: a {op['kind']} op needs a finite number value and a number input")
    if op["kind"] == "div" and op["value"] == 0:
        raise ModelFormatError("input stage: a div op's value must not be 0")
    return "number"


def _check_onehot(op: dict, value_type: str) -> str:
    codes = op.get("codes")
    if value_type != "number" or not isinstance(codes, list) or not all(_is_int(c) and c >= 0 for c in codes):
        raise ModelFormatError("input stage: a onehot op needs a number input and a list of codes (integers >= 0)")
    return "number"


def _check_table(op: dict, value_type: str) -> str:
    values = op.get("values")
    if value_type != "number" or not isinstance(values, list) or not all(_number(v) for v in values):
        raise ModelFormatError("input stage: a table op needs a number input and a list of finite numbers")
    if not _number(op.get("default")):
        raise ModelFormatError("input stage: a table op needs a finite default")
    return "number"


def _check_catboost_hash(op: dict, value_type: str) -> str:
    if value_type != "string" or len(op) != 1:
        raise ModelFormatError("input stage: a catboost_hash op takes a string and no arguments")
    return "number"


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


#: Every op kind: a check of its arguments given the type of the value it receives, returning the type it gives.
OPS = {
    "impute": _check_impute,
    "vocab": _check_vocab,
    "sub": _check_arith,
    "add": _check_arith,
    "mul": _check_arith,
    "div": _check_arith,
    "onehot": _check_onehot,
    "table": _check_table,
    # CatBoost's categorical hash (CityHash64 of the UTF-8 bytes, low 32 bits, as a number; coldbrew.engine.cityhash)
    "catboost_hash": _check_catboost_hash,
}


def validate_inputs(h: dict) -> None:
    """Refuse an ``inputs`` object that is malformed or does not give exactly ``n_features`` numbers."""
    stage = h.get("inputs")
    if stage is None:
        if h["version"] >= 3 and "inputs" in h:
            raise ModelFormatError("header inputs must be an object")
        return
    if h["version"] < 3:
        raise ModelFormatError("header inputs needs format version 3")
    if not isinstance(stage, dict) or not isinstance(stage.get("columns"), list):
        raise ModelFormatError("header inputs must be an object with columns and features")
    columns, features = stage["columns"], stage.get("features")
    if not columns:
        raise ModelFormatError("header inputs.columns must not be empty")
    names = []
    for c in columns:
        if (
            not isinstance(c, dict)
            or not isinstance(c.get("name"), str)
            or not c["name"]
            or c.get("type") not in COLUMN_TYPES
            or not isinstance(c.get("nullable", False), bool)
        ):
            raise ModelFormatError(
                "header inputs.columns: each column is {name: non-empty string, type: number|string|any, nullable: bool}"
            )
        names.append(c["name"])
    if len(set(names)) != len(names):
        raise ModelFormatError("header inputs.columns has duplicate names")
    if not isinstance(features, list) or len(features) != h["n_features"]:
        raise ModelFormatError("header inputs.features must list n_features features")
    for f in features:
        if not isinstance(f, dict) or not _is_int(f.get("column")) or not 0 <= f["column"] < len(columns):
            raise ModelFormatError("header inputs.features: each feature names a column index")
        ops = f.get("ops")
        if not isinstance(ops, list):
            raise ModelFormatError("header inputs.features: each feature has a list of ops")
        value_type = columns[f["column"]]["type"]
        if value_type == "any":
            raise ModelFormatError("header inputs.features: a feature cannot read a column of type 'any'")
        for op in ops:
            check = OPS.get(str(op.get("kind"))) if isinstance(op, dict) else None
            if check is None:
                kind = op.get("kind") if isinstance(op, dict) else op
                raise ModelFormatError(f"header inputs: unknown op {str(kind)[:40]!r}")
            value_type = check(op, value_type)
        if value_type != "number":
            raise ModelFormatError("header inputs: a feature's ops must end in a number (a string needs a vocab)")
