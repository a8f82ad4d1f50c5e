"""Start-up: resolve the model source, fetch, load and (optionally) warm up — timing each phase.

Runtime-neutral: the local server and the AWS Lambda handler both call :func:`load_from_env` once per process
and log :meth:`Startup.log_line`, the one JSON line the whole product is measured by.

Phases (milliseconds):

- ``imports``: from process start to the moment loading begins — interpreter start-up plus every import done so
  far (this module imports the engine and the sources). The process start comes from ``/proc/self/stat``
  (``starttime``, in clock ticks since boot, so up to 10 ms coarse) compared with ``CLOCK_BOOTTIME``; ``null``
  where ``/proc`` does not exist. Only meaningful in a fresh process.
- ``fetch``: getting the model bytes (≈0 for DISK, the download for S3).
- ``load``: ``load_predictor`` on the fetched file (unpickling imports scikit-learn; ``.brew`` maps the file).
- ``warmup``: one prediction on a zero row when ``COLDBREW_WARMUP=1``, else ``null``.

Switches (environment variables set to 1/true/yes; docs/serving.md):

- ``COLDBREW_WARMUP``: the warm-up prediction above, so the first request finds the code paths hot;
- ``COLDBREW_EAGER``: ask the OS to read a ``.brew`` file ahead (``MADV_WILLNEED``), for cold disks where
  on-demand page faults are slow (bench/results/brew_vs_pickle.md measures both);
- ``COLDBREW_VERIFY``: check a ``.brew`` file's SHA-256 at load (reads the whole file; the cheap structural
  checks always run);
- ``COLDBREW_ALLOW_PICKLE``: load a pickle/joblib model (which can run arbitrary code); without it only ``.brew``
  files load and a pickle is refused with one line, unopened (docs/security.md).
"""

from __future__ import annotations

import os
import time

from coldbrew import jsonlite  # json.loads/dumps without importing json (re, enum, ...)
from coldbrew.engine import load_predictor
from coldbrew.sources import ModelConfig, config_from_env, fetch

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up (type checkers read it as true)

if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from coldbrew.engine.protocol import Predictor

SWITCHES = {
    "warmup": "COLDBREW_WARMUP",
    "eager": "COLDBREW_EAGER",
    "verify": "COLDBREW_VERIFY",
    "allow_pickle": "COLDBREW_ALLOW_PICKLE",
}


def process_age_ms() -> float | None:
    """Milliseconds since this process started (Linux ``/proc``), or ``None`` if unknown."""
    try:
        fd = os.open("/proc/self/stat", os.O_RDONLY)  # os.read, not open(): no buffered file object to build
        try:
            stat = os.read(fd, 4096)
        finally:
            os.close(fd)
        # Fields after the parenthesised command name start at field 3 (state); starttime is field 22.
        start_ticks = int(stat[stat.rindex(b")") + 2 :].split()[19])
        started = start_ticks / os.sysconf("SC_CLK_TCK")
        return (time.clock_gettime(time.CLOCK_BOOTTIME) - started) * 1000.0
    except (OSError, ValueError, IndexError, AttributeError):
        return None


class Startup:
    """A loaded model plus how long each start-up phase took (a plain class: no dataclasses import at start-up)."""

    def __init__(
        self,
        predictor: Predictor,
        timings: dict[str, float | None] | None = None,
        model: dict[str, Any] | None = None,
    ):
        self.predictor = predictor
        self.timings: dict[str, float | None] = {} if timings is None else timings
        self.model: dict[str, Any] = {} if model is None else model

    def __repr__(self) -> str:
        return f"Startup(predictor={self.predictor!r}, timings={self.timings!r}, model={self.model!r})"

    @property
    def total_ms(self) -> float:
        """Sum of the measured phases."""
        return sum(v for v in self.timings.values() if v is not None)

    def record(self) -> dict[str, Any]:
        """The start-up line's fields: ``{"event": "coldbrew.startup", "timings_ms": {...}, "total_ms": ...,
        "model": {...}, "pid": ...}`` (a runtime adds its own before logging it)."""
        timings = {k: (round(v, 3) if v is not None else None) for k, v in self.timings.items()}
        return {
            "event": "coldbrew.startup",
            "timings_ms": timings,
            "total_ms": round(self.total_ms, 3),
            "model": self.model,
            "pid": os.getpid(),
        }

    def log_line(self) -> str:
        """One JSON line: ``{"event": "coldbrew.startup", "timings_ms": {...}, "total_ms": ..., "model": {...}}``."""
        return jsonlite.dumps(self.record(), separators=(", ", ": "))


def _ms_since(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


def load(
    config: ModelConfig, *, warmup: bool = False, eager: bool = False, verify: bool = False, allow_pickle: bool = False
) -> Startup:
    """Fetch and load the model ``config`` points at, timing every phase (pickles only with ``allow_pickle``)."""
    imports = process_age_ms()
    t0 = time.perf_counter()
    fetched = fetch(config)
    fetch_ms = _ms_since(t0)
    t0 = time.perf_counter()
    predictor = load_predictor(fetched.path, eager=eager, verify=verify, allow_pickle=allow_pickle, name=config.uri)
    load_ms = _ms_since(t0)
    warmup_ms = None
    if warmup:
        t0 = time.perf_counter()
        predictor.predict([[0.0] * len(predictor.feature_names)])  # every task has predict
        warmup_ms = _ms_since(t0)
    return Startup(
        predictor=predictor,
        timings={"imports": imports, "fetch": fetch_ms, "load": load_ms, "warmup": warmup_ms},
        model={
            "uri": config.uri,
            "source": fetched.source,
            "format": predictor.format,
            "size_bytes": fetched.size_bytes,
            # which kernel predicts: "c", or "numpy" where the C kernel was not built (null for pickles)
            "kernel": getattr(predictor, "kernel", None),
        },
    )


def options_from_env(environ: Mapping[str, str]) -> dict[str, bool]:
    """The start-up switches (``warmup``, ``eager``, ``verify``, ``allow_pickle``) from their environment variables."""
    return {name: environ.get(var, "").strip().lower() in ("1", "true", "yes") for name, var in SWITCHES.items()}


def load_from_env(environ: Mapping[str, str] | None = None) -> Startup:
    """Load the model named by ``MODEL_SOURCE``/``MODEL_URI`` in ``environ`` (default ``os.environ``).

    ``COLDBREW_WARMUP``, ``COLDBREW_EAGER`` and ``COLDBREW_VERIFY`` (``1``/``true``/``yes``) switch on a warm-up
    prediction, read-ahead and the checksum check.

    Returns:
        The ``Startup``: the predictor, each phase's milliseconds and facts about the model.

    Raises:
        ConfigError: a setting is missing or invalid.
        SourceError: the model bytes cannot be fetched.
        ModelFormatError: the file is not a usable model.
    """
    environ = os.environ if environ is None else environ
    return load(config_from_env(environ), **options_from_env(environ))
