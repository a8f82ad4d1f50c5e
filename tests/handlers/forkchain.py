"""Start a fork-and-exit chain with a cleared environment, the hardest process for the lab to stop.

``?dir=PATH``: the chain's member processes write their pid to ``PATH/chain.pid`` as they go. The chain's first
process is started with an empty environment (no marker variables) in a new session; from then on each member
forks a child and exits, over and over, so the live member's pid keeps changing and its parent is never an
environment process for long.
"""

import subprocess
import sys

CHAIN = """
import os, sys, time
where = sys.argv[1]
os.setsid()
while True:
    if os.fork():
        os._exit(0)
    with open(os.path.join(where, "chain.pid.tmp"), "w") as fh:
        fh.write(str(os.getpid()))
    os.replace(os.path.join(where, "chain.pid.tmp"), os.path.join(where, "chain.pid"))
    time.sleep(0.002)
"""


def handler(event, context):
    where = (event.get("queryStringParameters") or {})["dir"]
    subprocess.Popen([sys.executable, "-c", CHAIN, where], env={}, start_new_session=True)
    return {"statusCode": 200, "body": "started"}
