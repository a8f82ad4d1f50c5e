"""Burn ``SPIN_INIT_S`` seconds of CPU (default 0.3) at import; each call burns ``?cpu=S`` and sleeps ``?sleep=S``."""

import os
import time


def burn(seconds: float) -> None:
    """Busy-loop until this process has used ``seconds`` more CPU time (however long that takes on the wall)."""
    until = time.process_time() + seconds
    while time.process_time() < until:
        pass


burn(float(os.environ.get("SPIN_INIT_S", "0.3")))


def handler(event, context):
    query = event.get("queryStringParameters") or {}
    burn(float(query.get("cpu", "0")))
    time.sleep(float(query.get("sleep", "0")))
    return {"statusCode": 200, "body": "done"}
