"""Calls its own environment's Runtime API (``AWS_LAMBDA_RUNTIME_API``) from inside an invocation and returns what
it answered: a response and an error for a request id that does not exist, for the lab's Runtime API tests."""

import http.client
import json
import os

PREFIX = "/2018-06-01/runtime"


def _post(path: str, body: bytes, headers: dict | None = None) -> list:
    conn = http.client.HTTPConnection(os.environ["AWS_LAMBDA_RUNTIME_API"], timeout=10)
    try:
        conn.request("POST", PREFIX + path, body=body, headers=headers or {})
        response = conn.getresponse()
        return [response.status, json.loads(response.read() or b"null")]
    finally:
        conn.close()


def handler(event, context):
    bogus = "00000000-0000-0000-0000-000000000000"
    return {
        "request_id": context.aws_request_id,
        "unknown_response": _post(f"/invocation/{bogus}/response", b'{"hijack": true}'),
        "unknown_error": _post(
            f"/invocation/{bogus}/error",
            b'{"errorMessage": "x", "errorType": "Y"}',
            {"Lambda-Runtime-Function-Error-Type": "Y"},
        ),
    }
