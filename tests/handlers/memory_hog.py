"""Touch ``?mb=N`` megabytes (default 200) and hold them for ``?hold=S`` seconds (default 1)."""

import time


def handler(event, context):
    query = event.get("queryStringParameters") or {}
    block = bytearray(int(query.get("mb", "200")) * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(float(query.get("hold", "1")))
    return {"statusCode": 200, "body": f"held {len(block) >> 20} MB"}
