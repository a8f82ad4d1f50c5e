"""Answer like echo, but ``?crash=1`` kills the process mid-request (a segfault-like crash), after
touching ``?mb=N`` megabytes and holding them ``?hold=S`` seconds (default 0)."""

import os
import time


def handler(event, context):
    query = event.get("queryStringParameters") or {}
    if query.get("crash") == "1":
        block = bytearray(int(query.get("mb", "0")) * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
        time.sleep(float(query.get("hold", "0")))
        os._exit(139)
    return {"statusCode": 200, "body": str(os.getpid())}
