"""The OpenAPI 3 document for the app, built from the model's feature names."""

from __future__ import annotations

from coldbrew import __version__
from coldbrew.app.validation import FLOAT32_MAX

_JSON = "application/json"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def build_openapi(features: tuple[str, ...], max_body_bytes: int) -> dict:
    """An OpenAPI 3.0 document describing ``/``, ``/predict`` and ``/openapi.json``."""
    number = {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX}
    error = _json(_ref("Error"), "the request was rejected; `field` and `index` say where")
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "coldbrew",
            "version": __version__,
            "description": (
                "Predict whether income exceeds $50K from six census features (the cold-start study's API). "
                f"Request bodies are limited to {max_body_bytes} bytes."
            ),
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
                    "summary": "predict one row (object) or a batch (list of objects)",
                    "operationId": "predict",
                    "requestBody": {
                        "required": True,
                        "content": {_JSON: {"schema": {"oneOf": [_ref("Row"), _ref("Batch")]}}},
                    },
                    "responses": {
                        "200": _json(
                            {"oneOf": [_ref("Prediction"), {"type": "array", "items": _ref("Prediction")}]},
                            "one result per row, in request order (a list for a list)",
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
                    "properties": {name: number for name in features},
                    "required": list(features),
                    "additionalProperties": False,
                },
                "Batch": {"type": "array", "items": _ref("Row"), "minItems": 1},
                "Prediction": {
                    "type": "object",
                    "properties": {
                        "prediction": {"type": "string", "enum": [">$50K", "<=$50K"]},
                        "probability": {"type": "number", "minimum": 0, "maximum": 1},
                    },
                    "required": ["prediction", "probability"],
                    "additionalProperties": False,
                },
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
