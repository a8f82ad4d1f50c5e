"""Counters, percentiles, Lambda's START/END/REPORT/INIT_REPORT lines and the JSON-lines event log.

Every platform log line the lab prints is formatted here (``start_line``, ``end_line``,
``report_line``, ``init_report_line``), so fields added to them (e.g. CPU time) go in one place.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections import Counter


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100, nearest rank) or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def start_line(request_id: str, version: str = "$LATEST") -> str:
    """Lambda's START line, printed when an invocation begins."""
    return f"START RequestId: {request_id} Version: {version}"


def end_line(request_id: str) -> str:
    """Lambda's END line, printed when an invocation ends (before its REPORT line)."""
    return f"END RequestId: {request_id}"


def init_report_line(
    init_ms: float, phase: str, status: str, error_type: str | None = None, *, machine_wait_ms: float | None = None
) -> str:
    """Lambda's INIT_REPORT line for an init that did not succeed in the init phase
    (``phase`` init|invoke, ``status`` error|timeout|success); ``init_ms`` is charged time (coldbrew.lab.cpu).
    The lab appends ``Machine Wait`` (the init's wall time spent waiting for a core, not charged) when given."""
    line = f"INIT_REPORT Init Duration: {init_ms:.2f} ms\tPhase: {phase}\tStatus: {status}"
    line += f"\tError Type: {error_type}" if error_type else ""
    return line + (f"\tMachine Wait: {machine_wait_ms:.2f} ms" if machine_wait_ms is not None else "")


def report_line(
    request_id: str,
    duration_ms: float,
    memory_mb: int,
    max_memory_mb: int,
    *,
    init_ms: float | None = None,
    restore_ms: float | None = None,
    billed_restore_ms: float | None = None,
    status: str | None = None,
    error_type: str | None = None,
    cpu_ms: float | None = None,
    init_cpu_ms: float | None = None,
    machine_wait_ms: float | None = None,
) -> str:
    """Lambda's REPORT line (tab-separated, as in CloudWatch Logs).

    Billed duration rounds up to the millisecond and includes init, as for container images; a
    SnapStart restore is billed separately (``Billed Restore Duration``: the after-restore hooks).
    The lab appends what Lambda does not print: ``CPU Time`` (the invocation's) and ``Init CPU Time``
    (or ``Restore CPU Time``) of the environment's process — on two shared cores, wall time measures
    contention and CPU time what the function itself needed. ``Duration`` and ``Init Duration`` are charged
    time (wall time minus waiting for a core, coldbrew.lab.cpu); ``Machine Wait``, last, is the request's wait
    for this machine that they leave out (queued for a start, and waiting for a core).
    """
    billed = math.ceil(duration_ms + (init_ms or 0))
    parts = [
        f"REPORT RequestId: {request_id}",
        f"Duration: {duration_ms:.2f} ms",
        f"Billed Duration: {billed} ms",
        f"Memory Size: {memory_mb} MB",
        f"Max Memory Used: {max_memory_mb} MB",
    ]
    if init_ms is not None:
        parts.append(f"Init Duration: {init_ms:.2f} ms")
    if restore_ms is not None:
        parts.append(f"Restore Duration: {restore_ms:.2f} ms")
        parts.append(f"Billed Restore Duration: {math.ceil(billed_restore_ms or 0)} ms")
    if status:
        parts.append(f"Status: {status}")
    if error_type:
        parts.append(f"Error Type: {error_type}")
    if cpu_ms is not None:
        parts.append(f"CPU Time: {cpu_ms:.2f} ms")
    if init_cpu_ms is not None:
        parts.append(f"{'Restore' if restore_ms is not None else 'Init'} CPU Time: {init_cpu_ms:.2f} ms")
    if machine_wait_ms is not None:
        parts.append(f"Machine Wait: {machine_wait_ms:.2f} ms")
    return "\t".join(parts)


class Stats:
    """Everything ``GET /_lab/stats`` reports, plus the event log and REPORT lines."""

    def __init__(self, log_path=None, report_stream=sys.stderr):
        self.started = time.time()
        self.counts: Counter = Counter()
        self.errors: Counter = Counter()
        self.durations: list[float] = []
        self.latencies: list[float] = []
        self.inits: list[float] = []
        self.restores: list[float] = []
        self.cpus: list[float] = []  # CPU time per invocation, ms
        self.init_cpus: list[float] = []  # CPU time per init (or restore), ms
        self.queue_waits: list[float] = []  # machine wait per invocation (queued + waiting for a core), ms
        self.report_stream = report_stream
        self._lock = threading.Lock()
        self._log = open(log_path, "a", buffering=1, encoding="utf-8") if log_path else None

    def event(self, name: str, **fields) -> None:
        """Append one event to the JSON-lines log."""
        if self._log is not None:
            with self._lock:
                self._log.write(json.dumps({"ts": round(time.time(), 6), "event": name, **fields}) + "\n")

    def report(self, line: str) -> None:
        """Print a Lambda log line (REPORT, INIT_REPORT) unless the lab runs with ``report=False``."""
        if self.report_stream is not None:
            print(line, file=self.report_stream, flush=True)

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def summary(self) -> dict:
        """Counters and p50/p99 of durations (ms); ``cpu_ms``/``init_cpu_ms``: CPU time beside the wall times."""

        def dist(values):
            return {
                "count": len(values),
                "p50": _round(percentile(values, 50)),
                "p99": _round(percentile(values, 99)),
                "max": _round(max(values) if values else None),
            }

        return {
            "uptime_s": round(time.time() - self.started, 1),
            "invocations": self.counts["invocations"],
            "cold_starts": self.counts["cold_starts"],
            "throttles": self.counts["throttles"],
            "errors": dict(self.errors),
            "duration_ms": dist(self.durations),
            "latency_ms": dist(self.latencies),
            "init_ms": dist(self.inits),
            "restore_ms": dist(self.restores),
            "cpu_ms": dist(self.cpus),
            "init_cpu_ms": dist(self.init_cpus),
            "queue_ms": dist(self.queue_waits),
            "reaped": self.counts["reaped"],
        }


def _round(value):
    return None if value is None else round(value, 2)
