"""Three ways to download the model from the lab's S3, side by side over the same (shaped) network.

- ``coldbrew``: coldbrew's own S3 source (``coldbrew.sources.s3.fetch_s3``: parallel ranged GETs into the cache
  file, checked, renamed);
- ``boto3 download_file``: boto3's managed transfer (s3transfer: a HEAD, then parallel ranged GETs, 8 MiB x 10
  threads by default), the baseline the issue names;
- ``one GET``: ``get_object`` streamed to a file on one connection, what most code does.

Each sample is a fresh Python process (a cold start pays its imports), the model's and SeaweedFS's pages evicted
first; the child reports the time of its imports and client creation (``client_ms``) and of the transfer itself
(``download_ms``, the number compared). Used by the isolated cold starts (``coldbrew.experiment.isolated``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from coldbrew.errors import ColdbrewError

CLIENTS = ("coldbrew", "boto3 download_file", "one GET")

# Each child prints {"client_ms": ..., "download_ms": ...}; argv: bucket key destination-folder
_CHILD = {
    "coldbrew": """
import json, sys, time
t0 = time.perf_counter()
from coldbrew.sources.s3 import fetch_s3
from pathlib import Path
got = fetch_s3(sys.argv[1], sys.argv[2], Path(sys.argv[3]) / "cache", t0=t0)
print(json.dumps({"client_ms": got.timings["client"], "download_ms": got.fetch_ms - got.timings["client"],
                  "bytes": got.size_bytes}))
""",
    "boto3 download_file": """
import json, os, sys, time
t0 = time.perf_counter()
import boto3
client = boto3.client("s3")
t1 = time.perf_counter()
path = os.path.join(sys.argv[3], "model")
client.download_file(sys.argv[1], sys.argv[2], path)
t2 = time.perf_counter()
print(json.dumps({"client_ms": (t1 - t0) * 1000, "download_ms": (t2 - t1) * 1000, "bytes": os.path.getsize(path)}))
""",
    "one GET": """
import json, os, shutil, sys, time
t0 = time.perf_counter()
import boto3
client = boto3.client("s3")
t1 = time.perf_counter()
path = os.path.join(sys.argv[3], "model")
with open(path, "wb") as out:
    shutil.copyfileobj(client.get_object(Bucket=sys.argv[1], Key=sys.argv[2])["Body"], out, 1 << 20)
t2 = time.perf_counter()
print(json.dumps({"client_ms": (t1 - t0) * 1000, "download_ms": (t2 - t1) * 1000, "bytes": os.path.getsize(path)}))
""",
}


def download_once(client: str, env: Mapping[str, str], bucket: str, key: str, timeout_s: float = 600.0) -> dict:
    """One download by ``client`` in a fresh process with ``env`` (endpoint and credentials); its timings."""
    with tempfile.TemporaryDirectory(prefix="cb-dl-") as tmp:
        child_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "COLDBREW_S3_"))}
        child_env.update(env)
        child_env["AWS_EC2_METADATA_DISABLED"] = "true"
        done = subprocess.run(
            [sys.executable, "-c", _CHILD[client], bucket, key, tmp],
            env=child_env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ColdbrewError(f"download by {client} failed: {tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare_downloads(env: Mapping[str, str], evict: list[Path], samples: int, progress=None) -> dict[str, list[dict]]:
    """``samples`` downloads of the model named by ``env["MODEL_URI"]`` by each client, interleaved."""
    from coldbrew.lab.staging import evict_page_cache

    bucket, _, key = env["MODEL_URI"].removeprefix("s3://").partition("/")
    found: dict[str, list[dict]] = {c: [] for c in CLIENTS}
    for n in range(1, samples + 1):
        for client in CLIENTS:
            evict_page_cache(evict)
            found[client].append(download_once(client, env, bucket, key))
            if progress:
                got = found[client][-1]
                progress(
                    f"  download {n}/{samples} {client}: {got['download_ms']:,.0f} ms "
                    f"(+{got['client_ms']:,.0f} ms imports and client)"
                )
    return found
