"""Which S3 client for the cold path: import + client creation, and download time, per candidate.

Each sample is a fresh Python process (a cold start pays its imports) downloading one model from the lab's S3
(SeaweedFS) through the lab's ``aws`` network shaper (coldbrew/lab/s3shaper.py), SeaweedFS's pages evicted first.
Candidates:

- ``coldbrew s3http``: coldbrew.sources.s3 (stdlib SigV4 reader, parallel ranged GETs, the file's digest checked);
- ``boto3 download_file``: boto3's managed transfer (s3transfer, parallel ranged GETs);
- ``obstore``: obstore's S3Store (Rust object_store), one HEAD then ``get_ranges`` of 8 MiB parts;
- ``botocore signer + urllib3``: only the imports a signer-over-urllib3 client needs (its download would be
  coldbrew's own loop, so its cost over coldbrew's is the import).

Usage: python bench/s3_client.py MODEL_FILE [--samples 7] [--out bench/results/s3_client.md]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILDREN = {
    "coldbrew s3http": """
import json, sys, time
t0 = time.perf_counter()
from pathlib import Path
from coldbrew.sources.s3 import fetch_s3
got = fetch_s3(sys.argv[1], sys.argv[2], Path(sys.argv[3]) / "cache", t0=t0)
print(json.dumps({"client_ms": got.timings["client"], "download_ms": got.fetch_ms - got.timings["client"]}))
""",
    "boto3 download_file": """
import json, os, sys, time
t0 = time.perf_counter()
import boto3
client = boto3.client("s3")
t1 = time.perf_counter()
client.download_file(sys.argv[1], sys.argv[2], os.path.join(sys.argv[3], "m"))
print(json.dumps({"client_ms": (t1 - t0) * 1000, "download_ms": (time.perf_counter() - t1) * 1000}))
""",
    "obstore": """
import json, os, sys, time
t0 = time.perf_counter()
import obstore
from obstore.store import S3Store
store = S3Store(sys.argv[1], client_options={"allow_http": True})
t1 = time.perf_counter()
size = obstore.head(store, sys.argv[2])["size"]
part = 8 << 20
starts = list(range(0, size, part))
ends = [min(s + part, size) for s in starts]
fd = os.open(os.path.join(sys.argv[3], "m"), os.O_WRONLY | os.O_CREAT, 0o644)
for start, buf in zip(starts, obstore.get_ranges(store, sys.argv[2], starts=starts, ends=ends)):
    os.pwrite(fd, buf, start)
os.close(fd)
print(json.dumps({"client_ms": (t1 - t0) * 1000, "download_ms": (time.perf_counter() - t1) * 1000}))
""",
    "botocore signer + urllib3": """
import json, time
t0 = time.perf_counter()
import urllib3, botocore.auth, botocore.awsrequest, botocore.credentials
print(json.dumps({"client_ms": (time.perf_counter() - t0) * 1000, "download_ms": None}))
""",
}


def main() -> int:
    from coldbrew.experiment.isolated import describe_machine
    from coldbrew.lab.s3server import SeaweedS3
    from coldbrew.lab.s3shaper import S3Shaper, network_profile
    from coldbrew.lab.staging import evict_page_cache

    ap = argparse.ArgumentParser()
    ap.add_argument("model", type=Path)
    ap.add_argument("--samples", type=int, default=7)
    ap.add_argument("--out", type=Path, default=Path("bench/results/s3_client.md"))
    args = ap.parse_args()
    profile = network_profile("aws")
    assert profile is not None
    results: dict[str, list[dict]] = {name: [] for name in CHILDREN}
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp, SeaweedS3(Path(tmp) / "weed") as s3:
        s3.create_bucket("models")
        s3.upload(args.model, "models", args.model.name)
        with S3Shaper(("127.0.0.1", s3.ports["s3"]), profile) as shaper:
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            env.update(s3.env(), AWS_ENDPOINT_URL=shaper.url, AWS_EC2_METADATA_DISABLED="true")
            for n in range(args.samples):
                for name, code in CHILDREN.items():
                    evict_page_cache([Path(tmp) / "weed"])
                    with tempfile.TemporaryDirectory() as dest:
                        done = subprocess.run(
                            [sys.executable, "-c", code, "models", args.model.name, dest],
                            env=env,
                            capture_output=True,
                            text=True,
                            timeout=600,
                            check=True,
                        )
                    results[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
                    print(n, name, results[name][-1], file=sys.stderr)
    size_mb = args.model.stat().st_size / 1e6
    lines = [
        "# Which S3 client on the cold path: imports + client creation, and download time",
        "",
        f"Model `{args.model.name}` ({size_mb:,.1f} MB) from the lab's S3 (SeaweedFS) through the `aws` network "
        f"shaper ({profile.describe()}); each sample a fresh Python process, SeaweedFS's pages evicted first, "
        f"{args.samples} samples per client, interleaved. Medians (min-max).",
        "",
        f"Run {started}; load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end "
        "(the machine's 2 cores were shared with other engineers' work: absolute numbers are inflated, ratios "
        "measured side by side).",
        "",
        f"Machine: {describe_machine()['cpu']}, {describe_machine()['software']}.",
        "",
        "| client | imports + client (ms) | download (ms) | MB/s | total (ms) |",
        "|---|---:|---:|---:|---:|",
    ]

    def cell(values: list[float]) -> str:
        return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"

    for name, samples in results.items():
        client = [s["client_ms"] for s in samples]
        if samples[0]["download_ms"] is None:
            lines.append(f"| {name} | {cell(client)} | — | — | — |")
            continue
        dl = [s["download_ms"] for s in samples]
        total = [s["client_ms"] + s["download_ms"] for s in samples]
        lines.append(
            f"| {name} | {cell(client)} | {cell(dl)} | {size_mb / statistics.median(dl) * 1000:,.0f} | {cell(total)} |"
        )
    lines += [
        "",
        "Reproduce: `python bench/s3_client.py ~/.cache/coldbrew/models/gbm-n1261-dnone.brew --samples 7` "
        "(the 140mb `.brew`; `coldbrew bench --sizes 140mb --no-load` puts it in the model cache).",
        "",
    ]
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
