"""Non-HTTP handlers for the raw Invoke API: echo the event back, fail, or answer ``size`` bytes."""


def handler(event, context):
    return {"got": event, "request_id": context.aws_request_id}


def fail(event, context):
    raise ValueError("raw failure on purpose")


def big(event, context):
    """An HTTP response whose body is ``?mb=`` megabytes (over Lambda's 6 MB response quota at 7)."""
    mb = float((event.get("queryStringParameters") or {}).get("mb", event.get("mb", 7)))
    return {"statusCode": 200, "body": "x" * int(mb * 1024 * 1024)}
