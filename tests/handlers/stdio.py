"""Writes a marked line to stdout and to stderr at import and at each invocation; answers with an env variable.

For the lab's output tests: the function's output must not mix into the lab's stdout, and ``--env`` must reach
the function (``?var=NAME`` returns ``os.environ.get(NAME)``).
"""

import os
import sys

print("STDIO-IMPORT-STDOUT", flush=True)
print("STDIO-IMPORT-STDERR", file=sys.stderr, flush=True)


def handler(event, context):
    print("STDIO-INVOKE-STDOUT", flush=True)
    print("STDIO-INVOKE-STDERR", file=sys.stderr, flush=True)
    name = (event.get("queryStringParameters") or {}).get("var", "")
    return {"var": name, "value": os.environ.get(name)}
