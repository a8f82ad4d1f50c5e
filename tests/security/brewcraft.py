"""Crafting hostile .brew files, and loading them where a crash, a hang or a memory blow-up cannot hurt the tests.

As a module: :func:`split`, :func:`build` and :func:`resign` take a .brew file apart and put it back together,
signed (a valid SHA-256, as an attacker who re-signs would) or not. :func:`run_cases` loads many files in one
worker process (this file run as a script) under a memory limit, with both kernels, and reports per file what
happened; a worker that dies (SIGSEGV, SIGBUS...) or stays on one file longer than the deadline is recorded
against that file and a fresh worker carries on with the next one.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

MAGIC = b"\x89BREW\r\n\x1a"
PREAMBLE = struct.Struct("<8sIIQQ")
#: Rows every case is asked about: zeros, the study's payload, a richer adult row, negatives, large values.
ROWS = [
    [0, 0, 0, 0, 0, 0],
    [34, 261799, 11, 0, 0, 56],
    [50, 100000, 13, 15024, 0, 40],
    [-1e6, -5, -1, -1e30, -3, -7],
    [90, 1.4e6, 16, 99999, 4356, 99],
    [17, 12285, 1, 0, 1902, 1],
]
#: ROWS repeated this many times: a batch (72 rows) that takes the C kernel's batch walks (lanes of rows).
BATCH_TIMES = 12
MEMORY_LIMIT = 1 << 30  # address space of a worker: a header that makes a reader allocate gigabytes fails here


def split(data: bytes) -> tuple[bytes, bytes]:
    """``(header JSON bytes without padding, payload bytes)`` of a well-formed .brew file."""
    _, _, h_len, p_off, _ = PREAMBLE.unpack_from(data, 0)
    return data[64 : 64 + h_len].rstrip(b" "), data[p_off:]


def build(header: dict | bytes, payload: bytes, *, sign: bool = True, version: int = 1) -> bytes:
    """A .brew file from a header (dict, or raw JSON bytes) and payload; ``sign`` writes a valid SHA-256."""
    text = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    padded = text + b" " * (-len(text) % 64)
    prefix = PREAMBLE.pack(MAGIC, version, len(padded), 64 + len(padded), len(payload))
    data = bytearray(prefix + bytes(32) + padded + payload)
    return resign(bytes(data)) if sign else bytes(data)


def resign(data: bytes) -> bytes:
    """``data`` with its SHA-256 (over bytes [0, 32) and [64, end)) recomputed, as an attacker would."""
    digest = hashlib.sha256(data[:32] + data[64:]).digest()
    return data[:32] + digest + data[64:]


def header_of(data: bytes) -> dict:
    return json.loads(split(data)[0])


@dataclass
class Outcome:
    """What loading one file did, per kernel: ``{"error": type, "message": ...}`` or ``{"proba", "predict"}``."""

    kernels: dict = field(default_factory=dict)
    crashed: str | None = None  # "exit status -11", "hang > 5 s", ...

    def errors(self) -> set[str]:
        return {r["error"] for r in self.kernels.values() if "error" in r}


def run_cases(paths: list[Path], *, verify: bool = False, deadline_s: float = 5.0) -> list[Outcome]:
    """Load every file in ``paths`` with each kernel (in a worker process) and predict :data:`ROWS`."""
    outcomes = [Outcome() for _ in paths]
    start = 0
    while start < len(paths):
        start = _run_worker(paths, outcomes, start, verify, deadline_s)
    return outcomes


def _run_worker(paths, outcomes, start, verify, deadline_s) -> int:
    """Run one worker from case ``start``; returns where the next worker must begin (len(paths) when done)."""
    import coldbrew  # the worker imports the same coldbrew as the tests

    root = str(Path(coldbrew.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(
        [sys.executable, __file__, "1" if verify else "0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout] + [lines.put(None)], daemon=True).start()
    proc.stdin.write("".join(f"{p}\n" for p in paths[start:]))
    proc.stdin.close()
    current = start
    try:
        assert lines.get(timeout=60) == "ready\n", "worker failed to start"
        while current < len(paths):
            try:
                line = lines.get(timeout=deadline_s)
            except queue.Empty:
                outcomes[current].crashed = f"hang > {deadline_s:g} s"
                return current + 1
            if line is None:
                outcomes[current].crashed = f"worker died, exit status {proc.wait()}"
                return current + 1
            outcomes[current].kernels = json.loads(line)
            current += 1
        return current
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _worker(verify: bool) -> None:  # runs in the child process
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    import numpy as np

    from coldbrew.engine.brew import KERNELS, BrewPredictor

    rows = np.array(ROWS, dtype=np.float64)
    batch = np.array(ROWS * BATCH_TIMES, dtype=np.float64)
    print("ready", flush=True)
    for line in sys.stdin:
        result = {}
        for kernel in KERNELS:
            try:
                p = BrewPredictor(line.strip(), kernel=kernel, verify=verify)
                # the C kernel's walks, in this order: the checked walk (a fresh predictor's first call), the
                # model's compact form (built by warm()) for a batch and for single rows, and a fresh
                # predictor's first call with a batch (each block compacts the trees it walks)
                labels = p.predict(rows)
                p.warm()  # the compact and row forms, built now
                if p.header["version"] >= 2:  # missing values too: every seventh value of the batch is NaN
                    batch = np.array(ROWS * BATCH_TIMES, dtype=np.float64)
                    batch.flat[::7] = np.nan
                big = p.predict_proba(batch) if p.is_classifier else p.predict(batch)
                proba = p.predict_proba(rows) if p.is_classifier else p.predict(rows)
                fresh = BrewPredictor(line.strip(), kernel=kernel, verify=verify)
                big_fresh = fresh.predict_proba(batch) if fresh.is_classifier else fresh.predict(batch)
                result[kernel] = {
                    "proba": proba.tobytes().hex() + big.tobytes().hex() + big_fresh.tobytes().hex(),
                    "dtype": proba.dtype.str,
                    "predict": labels.tolist(),
                    "predict_dtype": labels.dtype.str,
                }
            except BaseException as exc:  # noqa: BLE001 - every kind of failure is reported, judged by the test
                result[kernel] = {"error": type(exc).__name__, "message": str(exc)}
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    _worker(sys.argv[1] == "1")
