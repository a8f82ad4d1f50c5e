"""Sleep for ``?s=SECONDS`` (default 1) before answering."""

import time


def handler(event, context):
    seconds = float((event.get("queryStringParameters") or {}).get("s", "1"))
    time.sleep(seconds)
    return {"statusCode": 200, "body": f"slept {seconds}"}
