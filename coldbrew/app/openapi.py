"""The OpenAPI 3 document for the app, built from the model's contract (features, task, class labels)."""

from __future__ import annotations

from coldbrew import __version__
from coldbrew.app.contract import Contract
from coldbrew.app.validation import FLOAT32_MAX, INSTANCES, MAX_ROWS

_JSON = "application/json"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def _feature(nullable: bool, categorical: bool) -> dict:
    schema: dict = {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX}
    if nullable:
        schema["nullable"] = True
    notes = []
    if categorical:
        notes.append("categorical: the numeric category code the model was trained on")
    if nullable:
        notes.append("null = missing value")
    if notes:
        schema["description"] = "; ".join(notes)
    return schema


def _field(contract: Contract, j: int) -> dict:
    """The schema of field ``j``: a number, or (a model with an input stage) a string or anything."""
    null = contract.nullable[j]
    kind = contract.types[j] if contract.types else "number"
    if kind == "number":
        return _feature(null, contract.categorical[j] and not contract.types)
    if kind == "any":
        return {"description": "a column the model does not read: any value, ignored"}
    known = contract.categories[j] or ()
    schema: dict = {"type": "string"}
    if null:
        schema["nullable"] = True
    if contract.closed[j]:
        schema["enum"] = [*known, *([None] if null else [])]
        schema["description"] = "categorical: one of the names the model knows" + ("; null = missing" if null else "")
    else:
        shown = ", ".join(known[:50]) + (", ..." if len(known) > 50 else "")
        schema["description"] = (
            f"categorical, by name; known: {shown}. An unseen name is accepted and answered as the model answers "
            "it" + ("; null = missing" if null else "")
        )
        if known:
            schema["example"] = known[0]
    return schema


def _positional(contract: Contract) -> dict:
    """A row as a JSON array in the model's feature order (OpenAPI 3.0 has one ``items`` schema for all positions)."""
    n = len(contract.features)
    item = _feature(any(contract.nullable), False)
    if any(contract.nullable) and not all(contract.nullable):
        takes = ", ".join(name for name, null in zip(contract.features, contract.nullable, strict=True) if null)
        item["description"] = f"null = missing value, only at the positions of: {takes}"
    return {
        "type": "array",
        "description": f"the {n} feature values in the model's order: {', '.join(contract.features)}",
        "items": item,
        "minItems": n,
        "maxItems": n,
    }


def _labels(contract: Contract) -> tuple[str, ...]:
    """A classifier's display labels (``contract_of`` gives every binary or multiclass contract labels)."""
    assert contract.labels is not None, f"a {contract.task} contract has class labels"
    return contract.labels


def _prediction(contract: Contract) -> dict:
    probability: dict = {"type": "number", "minimum": 0, "maximum": 1}
    properties: dict[str, dict]
    if contract.task == "regression" and contract.outputs > 1:  # a multi-output regressor: one vector per row
        vector = {"type": "array", "items": {"type": "number"}, "minItems": contract.outputs}
        properties = {"prediction": {**vector, "maxItems": contract.outputs, "description": "the predicted values"}}
    elif contract.task == "regression":
        properties = {"prediction": {"type": "number", "description": "the model's predicted value"}}
    elif contract.task == "ranking":
        properties = {"score": {"type": "number", "description": "the ranker's score: higher ranks first"}}
    elif contract.task == "anomaly":
        properties = {
            "prediction": {"type": "integer", "enum": [-1, 1], "description": "1 for an inlier, -1 for an outlier"},
            "score": {"type": "number", "description": "the model's score_samples: the lower, the more abnormal"},
            "decision": {"type": "number", "description": "score minus the model's offset: negative for an outlier"},
        }
    else:
        labels = _labels(contract)
        label: dict = {"type": "string", "enum": list(labels), "description": "the model's predicted class"}
        if not contract.probabilities:  # hard voting: no predict_proba
            properties = {"prediction": label}
        elif contract.task == "binary":
            about = f"probability of the class {labels[1]!r}"
            properties = {"prediction": label, "probability": {**probability, "description": about}}
        else:
            properties = {
                "prediction": label,
                "probabilities": {
                    "type": "object",
                    "description": "probability of every class, by label",
                    "properties": {name: probability for name in labels},
                    "required": list(labels),
                    "additionalProperties": False,
                },
            }
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def _description(contract: Contract, model: str, max_body_bytes: int, max_rows: int) -> str:
    n = len(contract.features)
    if contract.task == "binary":
        what = f"Binary classification ({_labels(contract)[0]!r} or {_labels(contract)[1]!r})"
    elif contract.task == "multiclass":
        what = f"Classification into {len(_labels(contract))} classes"
    elif contract.task == "ranking":
        what = "Ranking scores"
    elif contract.task == "anomaly":
        what = "Anomaly detection (1 inlier, -1 outlier, with scores)"
    else:
        what = "Regression"
    missing = sum(contract.nullable)
    accepts = f"; {missing} of them accept null as a missing value" if missing else ""
    return (
        f"{what} by a {model} from {n} feature{'s' if n != 1 else ''}{accepts}. "
        f"Request bodies are limited to {max_body_bytes} bytes and {max_rows} rows."
    )


def _bodies(contract: Contract) -> list[dict]:
    """The request body shapes: by name and by position, or by name only for a model with string fields."""
    if contract.has_strings:
        return [_ref("Row"), _ref("Batch"), _ref("Instances")]
    return [_ref("Row"), _ref("PositionalRow"), _ref("Batch"), _ref("PositionalBatch"), _ref("Instances")]


def build_openapi(contract: Contract, max_body_bytes: int, *, model: str = "model", max_rows: int = MAX_ROWS) -> dict:
    """An OpenAPI 3.0 document describing ``/``, ``/predict`` and ``/openapi.json`` for ``contract``."""
    error = _json(_ref("Error"), "the request was rejected; `field` and `index` say where")
    features = contract.features
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "coldbrew",
            "version": __version__,
            "description": _description(contract, model, max_body_bytes, max_rows),
            "x-coldbrew-task": contract.task,
        },
        "paths": {
            "/": {
                "get": {
                    "summary": "health check",
                    "operationId": "health",
                    "responses": {"200": _json(_ref("Health"), "the server is up")},
                }
            },
            "/predict": {
                "post": {
                    "summary": "predict one row or a batch of rows",
                    "description": (
                        "One row, by name (an object) or by position (an array of numbers in the model's feature "
                        "order), is answered with one result; a batch (a list of rows, or "
                        '`{"instances": [...]}`), whose rows are all objects or all arrays, with a list of results '
                        "in request order."
                    ),
                    "operationId": "predict",
                    "requestBody": {
                        "required": True,
                        "content": {_JSON: {"schema": {"oneOf": _bodies(contract)}}},
                    },
                    "responses": {
                        "200": _json(
                            {"oneOf": [_ref("Prediction"), {"type": "array", "items": _ref("Prediction")}]},
                            "one result per row, in request order (a list for a batch)",
                        ),
                        "400": error,
                        "411": error,
                        "413": error,
                        "415": error,
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "this document",
                    "operationId": "openapi",
                    "responses": {"200": _json({"type": "object"}, "the OpenAPI document")},
                }
            },
        },
        "components": {
            "schemas": {
                "Row": {
                    "type": "object",
                    "properties": {name: _field(contract, j) for j, name in enumerate(features)},
                    "required": list(features),
                    "additionalProperties": False,
                },
                "PositionalRow": _positional(contract),
                "Batch": {"type": "array", "items": _ref("Row"), "minItems": 1, "maxItems": max_rows},
                "PositionalBatch": {
                    "type": "array",
                    "items": _ref("PositionalRow"),
                    "minItems": 1,
                    "maxItems": max_rows,
                },
                "Instances": {
                    "type": "object",
                    "description": "TF Serving / KServe / SageMaker style: every row an object, or every row an array",
                    "properties": {
                        INSTANCES: _ref("Batch")
                        if contract.has_strings
                        else {"oneOf": [_ref("Batch"), _ref("PositionalBatch")]}
                    },
                    "required": [INSTANCES],
                    "additionalProperties": False,
                },
                "Prediction": _prediction(contract),
                "Health": {
                    "type": "object",
                    "properties": {"success": {"type": "boolean", "enum": [True]}},
                    "required": ["success"],
                },
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {"type": "string"},
                        "field": {"type": "string", "nullable": True},
                        "index": {"type": "integer", "nullable": True, "minimum": 0},
                    },
                    "required": ["error", "field", "index"],
                },
            }
        },
    }
