"""A background thread started at init counts ticks (every 10 ms); each call reports the count and
what AWS_LAMBDA_INITIALIZATION_TYPE the init code saw."""

import os
import threading
import time

INIT_TYPE = os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE")
TICKS = 0


def _tick():
    global TICKS
    while True:
        time.sleep(0.01)
        TICKS += 1


threading.Thread(target=_tick, daemon=True).start()


def handler(event, context):
    return {"statusCode": 200, "body": f"{TICKS} {INIT_TYPE} {os.environ.get('AWS_LAMBDA_INITIALIZATION_TYPE')}"}
