"""SnapStart runtime hooks that log where they ran: ``before <pid>`` / ``after <pid>`` lines in $HOOKS_LOG."""

import os

from snapshot_restore_py import register_after_restore, register_before_snapshot

INIT_TYPE = os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE")


def _log(what):
    with open(os.environ["HOOKS_LOG"], "a") as fh:
        fh.write(f"{what} {os.getpid()}\n")


@register_before_snapshot
def before():
    _log("before")


@register_after_restore
def after():
    _log("after")


def handler(event, context):
    return {"statusCode": 200, "body": f"{os.getpid()} {INIT_TYPE}"}
