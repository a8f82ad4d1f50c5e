"""Fail during init: awslambdaric posts the error to /runtime/init/error."""

raise RuntimeError("cannot load the model (on purpose)")


def handler(event, context):  # pragma: no cover - never reached
    return {"statusCode": 200}
