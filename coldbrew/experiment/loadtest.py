"""`coldbrew loadtest`: load an endpoint with locust the way the study did, and keep every number.

Locust runs headless in a child process (``python -m locust -f coldbrew/experiment/locustfile.py``), as the
study ran it: gevent's monkey-patching stays out of our process (and out of ``coldbrew bench``, which
manages other children), the command is the study's own plus our options, and stopping it is one signal.
We follow the run by tailing the structured per-request file the locustfile writes.

Python API (used by ``coldbrew bench``)::

    run_json = run_loadtest("http://127.0.0.1:9000", Path("runs/disk-140mb"), users=100, spawn_rate=20,
                            run_time="60s", labels={"setup": "disk", "model_size": "140mb", "format": "brew"})
"""

from __future__ import annotations

import json
import math
import re
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from coldbrew.durations import parse_duration
from coldbrew.errors import ColdbrewError
from coldbrew.experiment.dataset import STUDY_PAYLOAD
from coldbrew.experiment.results import RUN_FILE, SCHEMA, producing_code, public_host
from coldbrew.pairs import parse_pairs

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
CONNECT_TIMEOUT_S = 5.0


def run_time_seconds(text: str | float | int) -> int:
    """Whole seconds for locust's ``--run-time`` (which counts whole seconds): ``1.5s`` -> 2; at least 1."""
    seconds = parse_duration(text, option="--run-time")
    if seconds < 1:
        raise ColdbrewError("--run-time must be at least 1s")
    return math.ceil(seconds)


def parse_labels(items: list[str]) -> dict[str, str]:
    """``["setup=disk", ...]`` -> ``{"setup": "disk", ...}``; the report's own column names are refused."""
    from coldbrew.experiment.coldstats import RESERVED_KEYS

    return {key: value.strip() for key, value in parse_pairs(items, option="--label", reserved=RESERVED_KEYS).items()}


def check_reachable(host: str) -> None:
    """Raise ColdbrewError unless ``host`` is an http(s) URL whose server accepts a TCP connection.

    Only a connection is opened — no request — so a scale-from-zero target gets no extra cold start.
    """
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ColdbrewError(f"--host {host!r}: give a URL like http://127.0.0.1:8000")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise ColdbrewError(f"--host {host!r}: {exc}") from None
    try:
        with socket.create_connection((parts.hostname, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ColdbrewError(f"cannot reach {host} ({parts.hostname}:{port}): {reason}") from None


class _Progress:
    """Follows the structured file as locust appends to it and prints one status line."""

    def __init__(self, path: Path, run_time_s: int, stream):
        self.path, self.run_time_s, self.stream = path, run_time_s, stream
        self.offset, self.failures = 0, 0
        self.latencies: list[float] = []
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.last_print = 0.0

    def poll(self) -> None:
        """Read the lines completed since the last poll."""
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as fh:
            fh.seek(self.offset)
            chunk = fh.read()
        done = chunk[: chunk.rfind("\n") + 1]
        self.offset += len(done.encode("utf-8"))
        for line in done.splitlines():
            rec = json.loads(line)
            if rec["error"] or not 200 <= rec["status"] < 400:
                self.failures += 1
            else:
                self.latencies.append(rec["latency_ms"])

    def line(self, elapsed: float, final: bool = False) -> str:
        """The status line: requests, failures, p50/p95, elapsed/remaining."""
        import numpy as np

        n = len(self.latencies) + self.failures
        if self.latencies:
            p50, p95 = np.percentile(self.latencies, [50, 95])
            lat = f"p50 {p50:,.0f} ms  p95 {p95:,.0f} ms"
        else:
            lat = "p50 —  p95 —"
        if final:
            clock = f"done in {elapsed:.0f}s"
        else:
            shown = min(elapsed, self.run_time_s)
            clock = f"{shown:4.0f}s / {self.run_time_s}s ({self.run_time_s - shown:.0f}s left)"
        return f"{clock}  requests {n:,}  failures {self.failures:,}  {lat}"

    def show(self, elapsed: float, final: bool = False) -> None:
        """Print the status: in place on a terminal, every 10 s otherwise."""
        if self.stream is None:
            return
        if self.tty:
            self.stream.write("\r\033[K" + self.line(elapsed, final) + ("\n" if final else ""))
            self.stream.flush()
        elif final or elapsed - self.last_print >= 10:
            self.last_print = elapsed
            print(self.line(elapsed, final), file=self.stream, flush=True)


def _locust_version() -> str:
    from importlib.metadata import version

    return version("locust")


def run_loadtest(
    host: str,
    out_dir: Path,
    *,
    users: int = 100,
    spawn_rate: float = 20,
    run_time: str | int = "60s",
    payload=None,
    name: str = "loadtest",
    labels: dict[str, str] | None = None,
    progress=True,
    sigv4: str | None = None,
) -> Path:
    """Run locust against ``host`` into ``out_dir``; returns the path of the run.json written.

    ``payload`` is a JSON-able body or a path to a JSON file (default: the study's row); ``progress`` is a
    stream for the live status line (True: stderr), or None for silence; ``sigv4`` (``REGION:SERVICE``, see
    :mod:`coldbrew.experiment.sigv4`) signs every request for an endpoint behind AWS_IAM.
    """
    run_time_s = run_time_seconds(run_time)
    if users < 1 or spawn_rate <= 0:
        raise ColdbrewError("--users must be >= 1 and --spawn-rate > 0")
    if not re.match(r"^[A-Za-z0-9._-]+$", name):
        raise ColdbrewError(f"--name {name!r}: use letters, digits, '.', '_' or '-'")
    host = host.rstrip("/")
    body = STUDY_PAYLOAD if payload is None else payload
    if isinstance(payload, (str, Path)):
        try:
            body = json.loads(Path(payload).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ColdbrewError(f"--payload {payload}: not a readable JSON file ({exc})") from None

    out_dir = Path(out_dir).resolve()
    if (out_dir / RUN_FILE).exists():
        raise ColdbrewError(f"{out_dir} already holds a run ({RUN_FILE}); choose another --out")
    check_reachable(host)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "payload": "payload.json",
        "requests": f"{name}_requests.jsonl",
        "study_log": f"{name}_locust_logs.txt",
        "html": f"{name}.html",
        "stats": f"{name}_stats.csv",
        "stats_history": f"{name}_stats_history.csv",
        "failures": f"{name}_failures.csv",
        "exceptions": f"{name}_exceptions.csv",
        "console": f"{name}_locust_console.txt",
    }
    for key in ("requests", "study_log"):
        (out_dir / files[key]).unlink(missing_ok=True)
    (out_dir / files["payload"]).write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        host,
        "--users",
        str(users),
        "--spawn-rate",
        f"{spawn_rate:g}",
        "--run-time",
        f"{run_time_s}s",
        "--csv",
        str(out_dir / name),
        "--csv-full-history",
        "--html",
        str(out_dir / files["html"]),
        "--logfile",
        str(out_dir / files["study_log"]),
        "--only-summary",
        "--exit-code-on-error",
        "0",
        "--coldbrew-payload",
        str(out_dir / files["payload"]),
        "--coldbrew-requests",
        str(out_dir / files["requests"]),
    ]
    if sigv4:
        command += ["--coldbrew-sigv4", sigv4]
    started = datetime.now(UTC)
    tracker = _Progress(out_dir / files["requests"], run_time_s, sys.stderr if progress is True else progress)
    status = "complete"
    with open(out_dir / files["console"], "wb") as console:
        proc = subprocess.Popen(
            command, cwd=out_dir, stdout=console, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        t0 = time.monotonic()
        try:
            deadline = t0 + run_time_s + 60
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    status = "timed out"
                    break
                time.sleep(0.5)
                tracker.poll()
                tracker.show(time.monotonic() - t0)
        except BaseException:
            status = "interrupted"
            raise
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            tracker.poll()
            tracker.show(time.monotonic() - t0, final=True)
            _write_run_json(
                out_dir,
                host=host,
                users=users,
                spawn_rate=spawn_rate,
                run_time_s=run_time_s,
                name=name,
                labels=labels or {},
                payload=body,
                files=files,
                started=started,
                status=status,
                exit_code=proc.returncode,
                tracker=tracker,
            )
    if proc.returncode != 0 or status != "complete":
        tail = (out_dir / files["console"]).read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
        raise ColdbrewError(
            f"locust {status if status != 'complete' else 'failed'} "
            f"(exit {proc.returncode}): {' / '.join(tail) or 'no output'}"
        )
    return out_dir / RUN_FILE


def _write_run_json(
    out_dir: Path,
    *,
    host,
    users,
    spawn_rate,
    run_time_s,
    name,
    labels,
    payload,
    files,
    started,
    status,
    exit_code,
    tracker,
) -> None:
    info = {
        "schema": SCHEMA,
        **producing_code(),
        "tool": "coldbrew loadtest",
        "status": status,
        "host": public_host(host),  # no ephemeral loopback port
        "users": users,
        "spawn_rate": spawn_rate,
        "run_time_s": run_time_s,
        "wait_time_s": [3, 5],
        "name": name,
        "labels": labels,
        "payload": payload,
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "requests": len(tracker.latencies) + tracker.failures,
        "failures": tracker.failures,
        "locust_version": _locust_version(),
        "locust_exit_code": exit_code,
        "files": {k: v for k, v in files.items() if (out_dir / v).exists()},
    }
    (out_dir / RUN_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
