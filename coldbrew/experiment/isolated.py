"""Isolated cold starts: one environment at a time, the lab's apples-to-apples comparison with AWS.

On Lambda every environment has its own CPU; in the lab, under the study's load, dozens of environments
start at once on this machine's cores, so those cold starts measure contention. Here each sample is one
fresh environment with nothing else in the lab: the model's page cache is evicted, one request
(``POST /predict``, the study's payload) starts the environment, its latency is recorded with the lab's
wall and CPU times of the init and the invocation (``x-lab-*-ms`` headers), and the environment is reaped
before the next sample starts. :func:`measure_isolated` runs N samples of one (setup, size, format);
:func:`isolated_rows` summarises them beside the study's AWS rows (``coldbrew.experiment.published``).
"""

from __future__ import annotations

import http.client
import json
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from coldbrew.errors import ColdbrewError

ISOLATED_SETUPS = ("disk", "s3")  # warmed and provisioned are strategies against load; alone they are disk
DEFAULT_SAMPLES = 20
REAP_AFTER_S = 0.2  # the lab's idle timeout here: each environment is gone right after its one request
SCHEMA = 1
STAT_COLUMNS = ("mean", "p25", "p50", "p75", "p95", "max")
STUDY_SETUPS = {"disk": "DOCKER_DISK", "s3": "DOCKER_S3"}


@dataclass
class Sample:
    """One isolated cold start: the client's latency and the lab's wall/CPU times (ms; None when absent)."""

    latency_ms: float
    status: int
    init_ms: float | None = None
    init_cpu_ms: float | None = None
    invoke_ms: float | None = None
    invoke_cpu_ms: float | None = None


@dataclass
class IsolatedResult:
    """The samples of one (setup, size, format)."""

    setup: str
    size: str
    format: str
    model_bytes: int
    samples: list[Sample] = field(default_factory=list)
    # s3 only: the lab's S3 network ("aws": shaped, coldbrew/lab/s3shaper.py; "none": loopback as it is), the
    # figures it enforced, and the same-run downloads by each client (coldbrew.experiment.s3downloads)
    network: str = "none"
    network_figures: dict = field(default_factory=dict)
    downloads: dict = field(default_factory=dict)

    @property
    def ok(self) -> list[Sample]:
        """The samples answered with 200 (the others count as failures)."""
        return [s for s in self.samples if s.status == 200]

    def latencies(self) -> np.ndarray:
        return np.array([s.latency_ms for s in self.ok], dtype=float)

    def to_json(self) -> dict:
        """Every field, the samples' floats rounded to 0.01."""
        data = asdict(self)
        data["samples"] = [
            {k: round(v, 2) if isinstance(v, float) else v for k, v in s.items()} for s in data["samples"]
        ]
        return data

    @classmethod
    def from_json(cls, data: dict) -> IsolatedResult:
        return cls(
            data["setup"],
            data["size"],
            data["format"],
            int(data["model_bytes"]),
            [Sample(**s) for s in data["samples"]],
            data.get("network", "none"),
            data.get("network_figures", {}),
            data.get("downloads", {}),
        )


def _post(url: str, body: bytes, timeout_s: float) -> tuple[int, dict[str, str], float]:
    """(status, lower-cased headers, latency ms) of one POST, the response read to its end."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=timeout_s)  # host[:port], as HTTPConnection parses it
    try:
        started = time.perf_counter()
        conn.request("POST", parts.path, body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        latency_ms = (time.perf_counter() - started) * 1000
        return response.status, {k.lower(): v for k, v in response.getheaders()}, latency_ms
    finally:
        conn.close()


def _header_ms(headers: dict[str, str], name: str) -> float | None:
    try:
        return float(headers[name]) if name in headers else None
    except ValueError:
        return None


def _wait_for_no_environment(lab, deadline_s: float) -> None:
    until = time.monotonic() + deadline_s
    while lab.stats()["environments"]["total"]:
        if time.monotonic() > until:
            raise ColdbrewError(f"the lab's environment was not reaped within {deadline_s:g} s")
        time.sleep(0.05)


def measure_isolated(
    setup: str,
    size: str,
    fmt: str,
    model: Path,
    samples: int,
    run_dir: Path,
    *,
    init_timeout_s: float = 130.0,
    request_timeout_s: float = 180.0,
    progress: Callable[[str], None] | None = None,
    s3_network: str = "aws",
    download_samples: int = 0,
) -> IsolatedResult:
    """``samples`` cold starts of ``model`` one at a time in a fresh lab (``setup`` disk or s3).

    Each sample: no environment alive, the model's page cache evicted (the lab does it before every
    environment start), one ``POST /predict``, then the environment is reaped. Pickle models get the
    explicit opt-in (``COLDBREW_ALLOW_PICKLE=1``). The lab's event log and the function's output go to
    ``run_dir``. For s3 the function reads through the ``s3_network`` shaper (default ``aws``), and after the
    cold starts ``download_samples`` downloads by coldbrew, boto3's download_file and one plain GET are timed
    over the same network. Raises ColdbrewError if the lab cannot start or an environment is not reaped.
    """
    from coldbrew.experiment.dataset import STUDY_API, STUDY_PAYLOAD
    from coldbrew.lab import Lab, LabConfig

    if setup not in ISOLATED_SETUPS:
        raise ColdbrewError(f"isolated cold starts are measured for {', '.join(ISOLATED_SETUPS)}, not {setup!r}")
    run_dir.mkdir(parents=True, exist_ok=True)
    config = LabConfig(
        model_uri=model,
        api=STUDY_API,  # the study's REST API front door, as in the load runs
        source=setup,
        evict_page_cache=True,
        max_concurrency=1,
        init_timeout=init_timeout_s,
        idle_timeout=REAP_AFTER_S,
        report=False,
        log=run_dir / "lab_events.jsonl",
        function_output=run_dir / "function_output.log",
        env={"COLDBREW_ALLOW_PICKLE": "1"} if fmt == "pickle" else {},
        s3_network=s3_network if setup == "s3" else "none",
    )
    result = IsolatedResult(setup, size, fmt, model.stat().st_size)
    if setup == "s3":
        from coldbrew.lab.s3shaper import network_profile

        profile = network_profile(s3_network)
        result.network = s3_network
        if profile is not None:
            result.network_figures = {
                "per_connection_Bps": profile.per_connection,
                "aggregate_Bps": profile.aggregate,
                "first_byte_s": profile.first_byte,
            }
    body = json.dumps(STUDY_PAYLOAD).encode()
    with Lab(config) as lab:
        for n in range(1, samples + 1):
            _wait_for_no_environment(lab, 30.0)
            try:
                status, headers, latency_ms = _post(lab.url + "/predict", body, request_timeout_s)
            except OSError as exc:
                raise ColdbrewError(f"isolated cold start {n} of {setup}-{size}-{fmt}: no answer ({exc})") from None
            sample = Sample(
                latency_ms,
                status,
                _header_ms(headers, "x-lab-init-ms"),
                _header_ms(headers, "x-lab-init-cpu-ms"),
                _header_ms(headers, "x-lab-duration-ms"),
                _header_ms(headers, "x-lab-cpu-ms"),
            )
            result.samples.append(sample)
            if progress:
                cpu = "—" if sample.init_cpu_ms is None else f"{sample.init_cpu_ms:,.0f}"
                progress(f"  {setup}-{size}-{fmt} {n}/{samples}: {status}, {latency_ms:,.0f} ms (init CPU {cpu} ms)")
        if setup == "s3" and download_samples:
            from coldbrew.experiment.s3downloads import compare_downloads

            result.downloads = compare_downloads(lab.model_env, lab.s3_evict, download_samples, progress)
    return result


# ---------------------------------------------------------------- summaries and the table


def latency_stats(values: Sequence[float] | np.ndarray) -> dict[str, float | None]:
    """n, mean and linear percentiles (numpy's default, as the study) of ``values`` in ms."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return {"n": 0, **{k: None for k in STAT_COLUMNS}}
    pct = {f"p{q}": float(np.percentile(data, q)) for q in (25, 50, 75, 95)}
    return {"n": int(data.size), "mean": float(data.mean()), **pct, "max": float(data.max())}


def summary(result: IsolatedResult) -> dict:
    """The distribution of one cell: latency stats, failures, and the p50 of init wall and CPU time."""
    ok = result.ok

    def p50(key):
        values = [getattr(s, key) for s in ok if getattr(s, key) is not None]
        return float(np.percentile(values, 50)) if values else None

    return {
        "setup": result.setup,
        "size": result.size,
        "format": result.format,
        **latency_stats(result.latencies()),
        "failures": len(result.samples) - len(ok),
        "init_p50": p50("init_ms"),
        "init_cpu_p50": p50("init_cpu_ms"),
        "invoke_cpu_p50": p50("invoke_cpu_ms"),
    }


def study_rows(setup: str, size: str) -> list[tuple[str, dict]]:
    """The study's AWS (source, stats) for our (setup, size), most complete first; empty when he has none."""
    from coldbrew.experiment.published import STUDY_COLD_STARTS

    if setup not in STUDY_SETUPS:
        return []
    return STUDY_COLD_STARTS.get((STUDY_SETUPS[setup], size.upper()), [])


def _ms(value) -> str:
    return "—" if value is None else f"{math.trunc(value):,}"


ISOLATED_TITLE = "Isolated cold starts (one environment at a time, beside the study's AWS rows), ms"
ISOLATED_HEADERS = ["setup", "model_size", "format", "source", "n", "failed", *STAT_COLUMNS, "init p50", "init CPU p50"]


def isolated_rows(results: Sequence[IsolatedResult]) -> list[list[str]]:
    """Display rows (whole ms, truncated as the study) of each cell, each (setup, size)'s study rows after it."""
    rows: list[list[str]] = []
    pairs = list(dict.fromkeys((r.setup, r.size) for r in results))
    for setup, size in pairs:
        for result in (r for r in results if (r.setup, r.size) == (setup, size)):
            s = summary(result)
            rows.append(
                [
                    setup,
                    size,
                    "pickle" if result.format == "pickle" else ".brew",
                    "lab, one at a time" + (f", S3 network {result.network}" if result.network != "none" else ""),
                    f"{s['n']:,}",
                    f"{s['failures']:,}",
                    *(_ms(s[k]) for k in STAT_COLUMNS),
                    _ms(s["init_p50"]),
                    _ms(s["init_cpu_p50"]),
                ]
            )
        for source, stats in study_rows(setup, size):
            rows.append(
                [
                    setup,
                    size,
                    "pickle",
                    source,
                    "—" if stats.get("n") is None else f"{stats['n']:,}",
                    "—",
                    *(_ms(stats.get(k)) for k in STAT_COLUMNS),
                    "—",
                    "—",
                ]
            )
    return rows


# ---------------------------------------------------------------- the machine


def describe_machine() -> dict[str, str]:
    """What the numbers ran on: CPU model and count, RAM, kernel, Python and key library versions, load."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            ram = f"{int(fh.readline().split()[1]) / 2**20:.0f} GB RAM"
    except (OSError, ValueError, IndexError):
        ram = "unknown RAM"
    try:
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        load = "unknown"
    software = f"Python {platform.python_version()}, numpy {np.__version__}"
    try:
        import sklearn  # the pickles' library

        software += f", scikit-learn {sklearn.__version__}"
    except ImportError:
        pass
    return {
        "cores": f"{os.cpu_count()} CPU cores",
        "cpu": f"{os.cpu_count()} × {cpu}",
        "ram": ram,
        "os": f"{platform.system()} {platform.release()}",
        "software": software,
        "load": load,
    }


def code_commit() -> str | None:
    """The git commit of the coldbrew code that runs (None outside a git checkout)."""
    import subprocess

    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            text=True,
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


BOUND_TITLE = "S3 cold start against its bound (p50, ms): max(1.5 x disk, (disk + size / aggregate + first byte) x 1.2)"
BOUND_HEADERS = ["model_size", "format", "MB", "disk p50", "s3 p50", "bound", "s3 / bound", "within"]


def s3_bound(disk_p50_ms: float, size_bytes: int, figures: dict) -> float | None:
    """The issue's bound for an S3 cold start (ms): the larger of 1.5x the disk cold start and (disk cold start +
    the file's size over the aggregate bandwidth + one first-byte latency) x 1.2; None without a shaped network."""
    aggregate, first_byte = figures.get("aggregate_Bps"), figures.get("first_byte_s")
    if not aggregate or first_byte is None:
        return None
    return max(1.5 * disk_p50_ms, (disk_p50_ms + size_bytes / aggregate * 1000 + first_byte * 1000) * 1.2)


def bound_rows(results: Sequence[IsolatedResult]) -> list[list[str]]:
    """Each shaped s3 cell's p50 beside its bound (from the same run's disk p50 of the same size and format)."""
    rows = []
    disk = {(r.size, r.format): summary(r)["p50"] for r in results if r.setup == "disk"}
    for r in results:
        if r.setup != "s3" or disk.get((r.size, r.format)) is None:
            continue
        s3_p50, disk_p50 = summary(r)["p50"], disk[(r.size, r.format)]
        bound = s3_bound(disk_p50, r.model_bytes, r.network_figures)
        if bound is None or s3_p50 is None:
            continue
        rows.append(
            [
                r.size,
                "pickle" if r.format == "pickle" else ".brew",
                f"{r.model_bytes / 1e6:,.1f}",
                _ms(disk_p50),
                _ms(s3_p50),
                _ms(bound),
                f"{s3_p50 / bound:.2f}",
                "yes" if s3_p50 <= bound else "NO",
            ]
        )
    return rows


DOWNLOAD_TITLE = "S3 downloads over the same network, same run (p50, ms; each a fresh process, pages evicted)"
DOWNLOAD_HEADERS = ["model_size", "format", "client", "n", "download p50", "MB/s", "imports + client p50", "total p50"]


def download_rows(results: Sequence[IsolatedResult]) -> list[list[str]]:
    """coldbrew's download beside boto3's download_file and one plain GET, for each s3 cell that timed them."""
    rows = []
    for r in results:
        for client, samples in r.downloads.items():
            if not samples:
                continue
            dl = float(np.percentile([s["download_ms"] for s in samples], 50))
            cl = float(np.percentile([s["client_ms"] for s in samples], 50))
            total = float(np.percentile([s["download_ms"] + s["client_ms"] for s in samples], 50))
            rows.append(
                [
                    r.size,
                    "pickle" if r.format == "pickle" else ".brew",
                    client,
                    str(len(samples)),
                    _ms(dl),
                    f"{r.model_bytes / dl / 1000:,.0f}",
                    _ms(cl),
                    _ms(total),
                ]
            )
    return rows


def extra_sections(results: Sequence[IsolatedResult], fmt: str) -> str:
    """The bound and download tables (empty when the run has no shaped s3 cell), rendered in ``fmt``."""
    from coldbrew.experiment.tables import render_section

    parts = []
    bounds, downloads = bound_rows(results), download_rows(results)
    if bounds:
        parts.append(render_section(BOUND_TITLE, BOUND_HEADERS, bounds, fmt))
    if downloads:
        parts.append(render_section(DOWNLOAD_TITLE, DOWNLOAD_HEADERS, downloads, fmt))
    return "\n\n".join(parts)


def write_isolated(results: Sequence[IsolatedResult], out: Path, machine: dict[str, str], command: str) -> None:
    """Write ``isolated.json`` (schema version, command, code commit, machine, every sample) and
    ``isolated.md`` (the table) to ``out``."""
    from coldbrew.experiment.tables import render_section

    out.mkdir(parents=True, exist_ok=True)
    data = {
        "schema": SCHEMA,
        "command": command,
        "commit": code_commit(),
        "machine": machine,
        "cells": [r.to_json() for r in results],
    }
    (out / "isolated.json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    extra = extra_sections(results, "markdown")
    (out / "isolated.md").write_text(
        render_section(ISOLATED_TITLE, ISOLATED_HEADERS, isolated_rows(results), "markdown")
        + ("\n\n" + extra if extra else "")
        + "\n",
        encoding="utf-8",
    )


def read_isolated(path: Path) -> tuple[list[IsolatedResult], dict]:
    """The results and the whole document from an ``isolated.json``; ColdbrewError when it is not one."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("schema") != SCHEMA:
            raise ValueError(f"schema {data.get('schema')!r}, expected {SCHEMA}")
        return [IsolatedResult.from_json(c) for c in data["cells"]], data
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ColdbrewError(f"{path}: not an isolated cold-start file ({exc})") from None
