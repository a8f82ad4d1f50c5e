"""Echo the request back (HTTP API payload v2 response), with where and when it ran."""

import json
import os
import time

IMPORTED_IN_PID = os.getpid()
IMPORTED_AT = time.time()
CALLS = 0


def handler(event, context):
    global CALLS
    CALLS += 1
    query = event.get("queryStringParameters") or {}
    if "sleep" in query:
        time.sleep(float(query["sleep"]))
    body = {
        "path": event.get("rawPath"),
        "method": event["requestContext"]["http"]["method"],
        "body": event.get("body"),
        "query": query,
        "pid": os.getpid(),
        "imported_in_pid": IMPORTED_IN_PID,
        "calls": CALLS,
        "env": os.environ.get("COLDBREW_LAB_ENV"),
        "memory_size": os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
        "function_name": context.function_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "init_type": os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE"),
        "handler": os.environ.get("_HANDLER"),
    }
    return {"statusCode": 200, "headers": {"content-type": "application/json", "x-echo": "1"}, "body": json.dumps(body)}


def plain(event, context):
    """Return a bare dict (no statusCode): API Gateway wraps it as a 200 JSON body."""
    return {"hello": "world"}


def fail(event, context):
    raise ValueError("the handler failed on purpose")
