"""Answer like echo, but ``?crash=1`` kills the process mid-request (a segfault-like crash)."""

import os


def handler(event, context):
    if (event.get("queryStringParameters") or {}).get("crash") == "1":
        os._exit(139)
    return {"statusCode": 200, "body": str(os.getpid())}
