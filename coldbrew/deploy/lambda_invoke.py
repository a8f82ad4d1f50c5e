"""Invoke a Lambda handler once from its code directory, standard library only (the zip smoke test's runner).

Run as a script by any interpreter, e.g. Debian's arm64 python under ``qemu-aarch64-static``, never imported
through coldbrew (nothing of coldbrew is on that interpreter's path)::

    python3.11 -S -B lambda_invoke.py TASK_ROOT HANDLER RESULT_JSON < body.json

It puts ``TASK_ROOT`` first on ``sys.path`` as Lambda does for ``/var/task``, imports ``HANDLER``
(``module.function``) from it, builds an API Gateway HTTP API (payload 2.0) ``POST /predict`` event around the
request body read from stdin, invokes the handler once and writes ``{"init_ms", "invoke_ms", "response"}`` (or
``{"error"}`` naming the exception) to ``RESULT_JSON``. The handler's own output goes to stdout/stderr untouched.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import traceback


def http_v2_event(body: str, path: str = "/predict") -> dict:
    """An HTTP API (payload format 2.0) POST event carrying a JSON ``body``, as API Gateway sends it."""
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": f"POST {path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "smoke.execute-api.local", "user-agent": "coldbrew"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "smoke",
            "domainName": "smoke.execute-api.local",
            "domainPrefix": "smoke",
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "coldbrew",
            },
            "requestId": "coldbrew-smoke",
            "routeKey": f"POST {path}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
        "body": body,
    }


def main(argv: list[str]) -> int:
    """Import, invoke once, write the result file; exit status 0 when the handler returned a response."""
    task_root, handler, result_path = argv[1:4]
    sys.path.insert(0, task_root)
    body = sys.stdin.read()
    result: dict
    try:
        started = time.perf_counter()
        module_name, _, function_name = handler.rpartition(".")
        function = getattr(importlib.import_module(module_name), function_name)
        initialised = time.perf_counter()
        response = function(http_v2_event(body), None)
        done = time.perf_counter()
        result = {
            "init_ms": (initialised - started) * 1000,
            "invoke_ms": (done - initialised) * 1000,
            "response": response,
        }
    except BaseException as exc:  # noqa: BLE001 - report whatever the handler raised, as Lambda's error shape
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        result = {"error": last}
    with open(result_path, "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    return 0 if "response" in result else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
