"""Kill its own process in the middle of a request (a segfault-like crash)."""

import os


def handler(event, context):
    os._exit(139)
