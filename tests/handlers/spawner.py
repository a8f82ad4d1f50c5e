"""Start processes that try to outlive the environment, and report their pids.

``?dir=PATH`` names a directory; each started process writes its own pid to a file there:
a child that calls setsid (leaves the process group), and a double fork whose middle process exits
at once (the grandchild is orphaned and in a new session).
"""

import os
import subprocess
import sys
import time

SLEEPER = """
import os, sys, time
try:
    os.setsid()
except OSError:
    pass
open(os.path.join(sys.argv[1], f"{os.getpid()}.pid"), "w").close()
time.sleep(600)
"""
DOUBLE = (
    "import subprocess, sys; subprocess.Popen([sys.executable, '-c', sys.argv[2], sys.argv[1]], start_new_session=True)"
)


def handler(event, context):
    where = (event.get("queryStringParameters") or {})["dir"]
    subprocess.Popen([sys.executable, "-c", SLEEPER, where])
    subprocess.Popen([sys.executable, "-c", DOUBLE, where, SLEEPER]).wait()
    deadline = time.time() + 10
    while len([n for n in os.listdir(where) if n.endswith(".pid")]) < 2 and time.time() < deadline:
        time.sleep(0.02)
    return {"statusCode": 200, "body": ",".join(sorted(os.listdir(where)))}
