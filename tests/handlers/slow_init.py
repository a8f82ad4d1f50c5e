"""Take ``SLOW_INIT_S`` seconds (default 5) to import: a slow init phase."""

import os
import time

time.sleep(float(os.environ.get("SLOW_INIT_S", "5")))


def handler(event, context):
    return {"statusCode": 200, "body": "finally ready"}
