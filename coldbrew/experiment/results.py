"""Load-test results on disk: the study's locust log, our per-request JSON lines, run.json.

Three kinds of file hold request latencies:

* the study's log — locust's ``--logfile`` with one ``[YYYY-mm-dd HH:MM:SS,mmm] host/INFO/root: <ms>``
  line per request (all other lines are locust's own and are ignored);
* our structured file — JSON lines, one object per request:
  ``{"timestamp": ISO-8601 UTC, "latency_ms": float, "status": int, "env": str|null, "cold": bool|null,
  "error": str|null, "outcome": str|null, "invoke_ms": float|null, "invoke_cpu_ms": float|null,
  "init_ms": float|null, "init_cpu_ms": float|null, "queue_ms": float|null}`` — ``outcome`` is the lab's ``x-lab-outcome`` header
  (``throttled`` or ``gateway-timeout`` on the answers the lab's front door makes for those), the last four
  its ``x-lab-duration-ms``, ``x-lab-cpu-ms``, ``x-lab-init-ms`` and ``x-lab-init-cpu-ms`` headers (wall and
  CPU time of the invocation and, on a cold start, of the init it waited for); ``queue_ms`` its
  ``x-lab-queue-ms`` (the request's wait for the lab's machine, which the latency includes and AWS would not
  have: docs/lab.md, "The CPU model"); each null when the server does not send it;
* ``run.json`` — what ``coldbrew loadtest`` ran (parameters, labels, file names).

Schema versions (``run.json``'s ``schema``; absent means 1). Schema 2 is the form results are committed in: it
records the producing code (``coldbrew_version``, git ``commit``), no machine paths or ephemeral loopback ports,
lists only files that exist, and may hold the requests gzipped (``*.jsonl.gz``, latencies to the microsecond,
null fields left out). :func:`compact_run_folder` turns a schema-1 folder into schema 2; every reader here
accepts both, and gzip wherever a ``.jsonl`` is accepted.

:func:`load_inputs` turns files and folders of them into :class:`Run` objects with labels attached
(from run.json, a manifest, or the study's file names — see docs/experiment.md).

Which latencies are measurements (:func:`is_measured`): every successful response, and API Gateway's
integration timeout — a 504 (the REST API the study used: a cold start the client waited out for 29 s, which
the study's log recorded like any other response), or any answer the lab names ``gateway-timeout`` (an HTTP
API front door answers 503). Throttles (429, or any answer the lab names ``throttled``: API Gateway answers a
Lambda throttle with 500), connection errors and other failures are no latency of the model; the report
counts them in their own columns.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import re
import subprocess
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from coldbrew.errors import ColdbrewError

RUN_FILE = "run.json"
BENCH_FILE = "bench.json"
SCHEMA = 2  # of run.json and bench.json (see the module docstring); readers accept 1..SCHEMA
_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")

_STUDY_LINE = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\] .*?/INFO/root: (-?\d+(?:\.\d+)?)\s*$", re.MULTILINE
)
THROTTLED = 429
GATEWAY_TIMEOUT = 504
# The lab's name for the answer its front door made (coldbrew.lab.front_door.OUTCOME_HEADER), for the two
# outcomes a status alone does not tell on every front door.
OUTCOME_HEADER = "x-lab-outcome"
OUTCOME_THROTTLED = "throttled"
OUTCOME_GATEWAY_TIMEOUT = "gateway-timeout"
_STUDY_NAME = re.compile(r"(?P<setup>[A-Z0-9]+(?:_[A-Z0-9]+)*?)_TEST_ROUND_(?P<round>\d+)")
# The study's rounds (per setup): which model size each round deployed.
STUDY_ROUND_SIZES = ((range(1, 8), "140MB"), (range(8, 14), "420MB"), (range(14, 18), "1090MB"))


@dataclass
class Run:
    """The requests of one load-test run (or one log file), with its labels."""

    source: Path
    labels: dict[str, str]
    t: np.ndarray  # completion time of each request, seconds since the epoch (study logs: their clock as UTC)
    latency_ms: np.ndarray
    # bool: the latency counts in the statistics (is_measured; always True for study logs, which record
    # every response and no status)
    measured: np.ndarray
    status: np.ndarray | None = None  # HTTP status per request (0: no response), None when the file has none
    env: list[str | None] | None = None  # environment id per request, None when the file has none
    cold: np.ndarray | None = None  # bool per request from X-Coldbrew-Cold, None when absent
    meta: dict = field(default_factory=dict)
    # the lab's wall and CPU time of the init each request waited for (NaN: none), None when no record has them
    init_ms: np.ndarray | None = None
    init_cpu_ms: np.ndarray | None = None
    # the lab's machine wait per request (x-lab-queue-ms; NaN: none), None when no record has one
    queue_ms: np.ndarray | None = None
    # the lab's x-lab-outcome per request (None: not said), None when no record has one
    outcome: list[str | None] | None = None

    def _outcome_is(self, name: str) -> np.ndarray:
        if self.outcome is None:
            return np.zeros(len(self.latency_ms), dtype=bool)
        return np.array([o == name for o in self.outcome], dtype=bool)

    def throttled(self) -> np.ndarray | None:
        """Which requests were throttled: status 429 or the lab's ``throttled``; None without statuses."""
        if self.status is None:
            return None
        return (self.status == THROTTLED) | self._outcome_is(OUTCOME_THROTTLED)

    def gateway_timeouts(self) -> np.ndarray | None:
        """Which requests hit the integration timeout: 504 or the lab's ``gateway-timeout``; None without statuses."""
        if self.status is None:
            return None
        return (self.status == GATEWAY_TIMEOUT) | self._outcome_is(OUTCOME_GATEWAY_TIMEOUT)

    @property
    def has_env(self) -> bool:
        """True when requests carry environment ids (true cold starts can be counted)."""
        return self.env is not None and any(e is not None for e in self.env)


# ---------------------------------------------------------------- writing (used by the locustfile)


def request_record(end_epoch: float, latency_ms: float, status: int, headers, error: str | None) -> dict:
    """One line of our structured file, from a finished request and its response headers."""
    env = headers.get("X-Coldbrew-Env") if headers is not None else None
    cold_header = headers.get("X-Coldbrew-Cold") if headers is not None else None
    outcome = headers.get(OUTCOME_HEADER) if headers is not None else None
    stamp = datetime.fromtimestamp(end_epoch, tz=UTC).isoformat(timespec="milliseconds")
    return {
        "timestamp": stamp.replace("+00:00", "Z"),
        "latency_ms": float(latency_ms),  # unrounded: the study log's two decimals are derived from it
        "status": int(status),
        "env": env or None,
        # coldbrew environments answer X-Coldbrew-Cold 1 (first request) or 0; None: the server does not say.
        "cold": cold_header.strip() == "1" if cold_header is not None else None,
        "error": error,
        "outcome": outcome or None,
        **{key: _header_ms(headers, name) for key, name in LAB_TIMING_HEADERS},
    }


# Our record's keys ← the lab's timing headers (coldbrew.lab.front_door.timing_headers), all in ms.
LAB_TIMING_HEADERS = (
    ("invoke_ms", "x-lab-duration-ms"),
    ("invoke_cpu_ms", "x-lab-cpu-ms"),
    ("init_ms", "x-lab-init-ms"),
    ("init_cpu_ms", "x-lab-init-cpu-ms"),
    ("queue_ms", "x-lab-queue-ms"),  # the request's wait for the lab's machine (docs/lab.md, "The CPU model")
)


def _header_ms(headers, name: str) -> float | None:
    value = headers.get(name) if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def study_log_message(latency_ms: float) -> str:
    """The message the study's locustfile logged per request: the latency in ms, two decimals."""
    return f"{latency_ms:.2f}"


# ---------------------------------------------------------------- provenance (used by loadtest and bench)


def producing_code() -> dict[str, str | None]:
    """``{"coldbrew_version": ..., "commit": ...}`` of the code running now; commit is None outside a git checkout."""
    from coldbrew import __version__

    commit = None
    source = Path(__file__).resolve().parents[2]
    if (source / ".git").exists():
        try:
            done = subprocess.run(
                ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
            )
            commit = done.stdout.strip() or None if done.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            commit = None
    return {"coldbrew_version": __version__, "commit": commit}


def public_host(host: str) -> str:
    """``host`` without the port when it is a loopback address (an ephemeral port means nothing later)."""
    from urllib.parse import urlsplit

    parts = urlsplit(host)
    if parts.hostname in _LOOPBACK or f"[{parts.hostname}]" in _LOOPBACK:
        netloc = parts.netloc.rsplit(":", 1)[0] if parts.port is not None else parts.netloc
        return parts._replace(netloc=netloc).geturl()
    return host


# ---------------------------------------------------------------- reading


def _open_text(path: Path):
    """A text stream of ``path``, gunzipped when it is gzip (by its magic bytes, whatever its name)."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _is_requests_file(name: str) -> bool:
    return name.endswith((".jsonl", ".jsonl.gz"))


def is_measured(status: int | None, error: str | None, outcome: str | None = None) -> bool:
    """Whether a request's latency counts: a 2xx/3xx response without a locust error, or an integration
    timeout (a 504, or any answer the lab names ``gateway-timeout``)."""
    if status is None:
        return False
    if status == GATEWAY_TIMEOUT or outcome == OUTCOME_GATEWAY_TIMEOUT:
        return True
    return 200 <= status < 400 and not error and outcome != OUTCOME_THROTTLED


def labels_from_filename(name: str) -> tuple[dict[str, str], dict]:
    """Labels from a study log's name: ``DOCKER_DISK_TEST_ROUND_5_...`` → setup DOCKER_DISK, 140MB (round 5)."""
    match = _STUDY_NAME.search(name)
    if not match:
        return {}, {}
    round_no = int(match["round"])
    labels = {"setup": match["setup"]}
    for rounds, size in STUDY_ROUND_SIZES:
        if round_no in rounds:
            labels["model_size"] = size
    return labels, {"round": round_no}


def read_study_log(path: Path) -> Run | None:
    """Parse a log in the study's format; None when it holds no request lines."""
    path = Path(path)
    text = path.read_text(encoding="utf-8", errors="replace")
    stamps, values = [], []
    for stamp, value in _STUDY_LINE.findall(text):
        when = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC)
        stamps.append(when.timestamp())
        values.append(float(value))
    if not values:
        return None
    labels, meta = labels_from_filename(path.name)
    return Run(
        source=path,
        labels=labels,
        t=np.array(stamps),
        latency_ms=np.array(values),
        measured=np.ones(len(values), dtype=bool),
        meta={"kind": "study-log", **meta},
    )


def read_requests(path: Path) -> Run:
    """Parse our structured per-request file (JSON lines)."""
    path = Path(path)
    stamps, values, measured, statuses, envs, colds, inits, init_cpus = [], [], [], [], [], [], [], []
    queues: list[float] = []
    outcomes: list[str | None] = []
    try:
        fh = _open_text(path)
    except OSError as exc:
        raise ColdbrewError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with fh:
        lines = enumerate(fh, 1)
        for lineno, line in _lines_or_error(path, lines):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                when = datetime.fromisoformat(rec["timestamp"])
                values.append(float(rec["latency_ms"]))
                status = None if rec.get("status") is None else int(rec["status"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ColdbrewError(f"{path}:{lineno}: not a request record ({exc})") from None
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            stamps.append(when.timestamp())
            outcome = rec.get("outcome") if isinstance(rec.get("outcome"), str) else None
            outcomes.append(outcome)
            measured.append(is_measured(status, rec.get("error"), outcome))
            statuses.append(0 if status is None else status)
            envs.append(rec.get("env"))
            colds.append(rec.get("cold"))
            inits.append(_float_or_nan(rec.get("init_ms")))
            init_cpus.append(_float_or_nan(rec.get("init_cpu_ms")))
            queues.append(_float_or_nan(rec.get("queue_ms")))
    has_cold = any(c is not None for c in colds)  # the server flags cold starts; else use first-seen per env
    return Run(
        source=path,
        labels={},
        t=np.array(stamps, dtype=float),
        latency_ms=np.array(values, dtype=float),
        measured=np.array(measured, dtype=bool),
        status=np.array(statuses, dtype=int),
        env=envs if any(e is not None for e in envs) else None,
        cold=np.array([bool(c) for c in colds]) if has_cold else None,
        init_ms=np.array(inits, dtype=float) if not all(np.isnan(inits)) else None,
        init_cpu_ms=np.array(init_cpus, dtype=float) if not all(np.isnan(init_cpus)) else None,
        queue_ms=np.array(queues, dtype=float) if not all(np.isnan(queues)) else None,
        outcome=outcomes if any(o is not None for o in outcomes) else None,
        meta={"kind": "requests"},
    )


def _lines_or_error(path: Path, lines):
    """Yield from ``lines``; a corrupt gzip stream or bad UTF-8 becomes a one-line ColdbrewError."""
    try:
        yield from lines
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
        raise ColdbrewError(f"{path}: not a readable requests file ({exc})") from None


def _schema(info: dict, path: Path) -> int:
    schema = info.get("schema", 1)
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
        raise ColdbrewError(f"{path}: schema {schema!r} is not a version number")
    if schema > SCHEMA:
        raise ColdbrewError(f"{path}: schema {schema} was written by a newer coldbrew (this one reads 1..{SCHEMA})")
    return schema


def _float_or_nan(value) -> float:
    try:
        return float(value) if value is not None else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def read_run(run_json: Path) -> Run:
    """Load a ``coldbrew loadtest`` run from its run.json (labels and the structured file it names)."""
    run_json = Path(run_json)
    try:
        info = json.loads(run_json.read_text(encoding="utf-8"))
        requests = run_json.parent / info["files"]["requests"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ColdbrewError(f"{run_json}: not a coldbrew run.json ({exc})") from None
    schema = _schema(info, run_json)
    if not requests.exists():
        raise ColdbrewError(f"{run_json}: its requests file {requests.name} is missing")
    run = read_requests(requests)
    run.labels = {str(k): str(v) for k, v in (info.get("labels") or {}).items()}
    run.meta.update(
        run=str(run_json), host=info.get("host"), users=info.get("users"), schema=schema, commit=info.get("commit")
    )
    return run


def _requests_named_by(run_json: Path) -> Path | None:
    try:
        return run_json.parent / json.loads(run_json.read_text(encoding="utf-8"))["files"]["requests"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _load_file(path: Path, *, strict: bool) -> Run | None:
    if path.name == RUN_FILE:
        return read_run(path)
    if _is_requests_file(path.name):
        sibling = path.parent / RUN_FILE
        if sibling.exists() and _requests_named_by(sibling) == path:
            return read_run(sibling)
        return read_requests(path)
    run = read_study_log(path)
    if run is None and strict:
        raise ColdbrewError(
            f"{path}: no request lines in the study's log format "
            "([YYYY-mm-dd HH:MM:SS,mmm] host/INFO/root: <ms>) and not a .jsonl or run.json"
        )
    return run


def _load_folder(folder: Path) -> list[Run]:
    runs = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        here = Path(root)
        if RUN_FILE in files:
            runs.append(read_run(here / RUN_FILE))
            continue  # the run's other files (locust CSVs, study log) describe the same requests
        for name in sorted(files):
            if _is_requests_file(name) or name.endswith((".txt", ".log")):
                run = _load_file(here / name, strict=False)
                if run is not None:
                    runs.append(run)
    return runs


def read_manifest(path: Path) -> tuple[list[str], dict[Path, dict[str, str]]]:
    """A manifest CSV: a ``path`` column plus label columns. Returns (label columns, resolved path → labels)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            rows = list(reader)
    except OSError as exc:
        raise ColdbrewError(f"cannot read manifest {path}: {exc.strerror}") from None
    if "path" not in columns:
        raise ColdbrewError(f"manifest {path} needs a 'path' column (found: {', '.join(columns) or 'none'})")
    label_columns = [c for c in columns if c != "path"]
    entries = {}
    for row in rows:
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        target = Path(row["path"])
        if not target.is_absolute():
            target = path.parent / target
        entries[target.resolve()] = {c: row[c] for c in label_columns}
    return label_columns, entries


def load_inputs(inputs: list[Path], manifest: Path | None = None) -> tuple[list[Run], list[str]]:
    """Load runs from files/folders (and the manifest's paths); returns (runs, label columns in order).

    Labels come from the manifest when it lists the file, else from run.json, else from the study's
    file-name pattern, else the file's name becomes a ``run`` label.
    """
    label_columns: list[str] = []
    entries: dict[Path, dict[str, str]] = {}
    if manifest is not None:
        label_columns, entries = read_manifest(manifest)
        if not inputs:
            inputs = list(entries)
    if not inputs:
        raise ColdbrewError("no inputs: give log files, run folders, or --manifest")
    runs: list[Run] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = _load_folder(item)
            if not found:
                raise ColdbrewError(f"{item}: no load-test logs, .jsonl files or run.json found")
            runs.extend(found)
        elif item.exists():
            run = _load_file(item, strict=True)
            assert run is not None  # strict: raises instead
            runs.append(run)
        else:
            raise ColdbrewError(f"{item}: no such file or folder")
    for run in runs:
        listed = entries.get(run.source.resolve())
        if listed is None and run.meta.get("run"):
            listed = entries.get(Path(run.meta["run"]).resolve())
        if listed is not None:
            run.labels = {**run.labels, **listed}
        elif not run.labels:
            run.labels = {"run": run.source.stem}
        for key in run.labels:
            if key not in label_columns:
                label_columns.append(key)
    return runs, label_columns


# ---------------------------------------------------------------- the committed form


def _compact_record(rec: dict) -> dict:
    """A request record as schema 2 stores it: latency to the microsecond, null fields left out."""
    out = {"timestamp": rec["timestamp"], "latency_ms": round(float(rec["latency_ms"]), 3)}
    for key in ("status", "env", "cold", "error", "outcome"):
        if rec.get(key) is not None:
            out[key] = rec[key]
    return out


def write_requests_gz(records, path: Path) -> None:
    """Write request records as compact gzipped JSON lines (byte-for-byte reproducible: no name or time inside)."""
    from coldbrew.atomicfile import atomic_write

    with atomic_write(path) as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
        for rec in records:
            gz.write((json.dumps(_compact_record(rec), separators=(",", ":")) + "\n").encode("utf-8"))


def compact_run_folder(folder: Path, *, commit: str | None = None, coldbrew_version: str | None = None) -> None:
    """Rewrite one run folder (``run.json``, its requests file, optional ``bench.json``) in schema 2, in place.

    The requests become ``NAME.jsonl.gz``; ``run.json`` gets ``schema``, the producing code's ``commit`` and version
    (pass them for results made by an older commit; default: none recorded), a host without its loopback port,
    and a ``files`` table of the files that exist; ``bench.json`` loses the model's machine path (its file name
    stays). Already-compact folders are left as they are.

    Raises:
        ColdbrewError: the folder holds no readable run.json, or its requests file is missing or corrupt.
    """
    folder = Path(folder)
    run_json = folder / RUN_FILE
    try:
        info = json.loads(run_json.read_text(encoding="utf-8"))
        requests = folder / info["files"]["requests"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ColdbrewError(f"{run_json}: not a coldbrew run.json ({exc})") from None
    if _schema(info, run_json) >= SCHEMA:
        return
    packed = folder / (requests.name if requests.name.endswith(".gz") else requests.name + ".gz")
    try:
        with _open_text(requests) as fh:
            records = [json.loads(line) for line in fh if line.strip()]
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise ColdbrewError(f"{requests}: not a readable requests file ({exc})") from None
    write_requests_gz(records, packed)
    if packed != requests:
        requests.unlink()
    provenance = {"coldbrew_version": coldbrew_version, "commit": commit}
    info = {"schema": SCHEMA, **provenance, **{k: v for k, v in info.items() if k not in provenance}}
    if isinstance(info.get("host"), str):
        info["host"] = public_host(info["host"])
    files = {**info.get("files", {}), "requests": packed.name}
    info["files"] = {key: name for key, name in files.items() if (folder / name).exists()}
    run_json.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    bench_json = folder / BENCH_FILE
    if bench_json.exists():
        bench = json.loads(bench_json.read_text(encoding="utf-8"))
        bench = {"schema": SCHEMA, **provenance, **{k: v for k, v in bench.items() if k not in provenance}}
        if isinstance(bench.get("model"), str):
            bench["model"] = Path(bench["model"]).name
        bench_json.write_text(json.dumps(bench, indent=2) + "\n", encoding="utf-8")
