"""`coldbrew serve` under the body-dripper attack of issue #23: are ordinary requests still answered, and how fast?

The attack: DRIPPERS connections each send a request head with ``Content-Length: 100000`` and then one body byte
every EVERY seconds (1,000 × 1 byte / 8 s ≈ 125 B/s in all). A dripper the server closes (shed with a 503, timed
out with a 408, or dropped) connects again at its next tick, as a patient attacker would, so the pressure lasts.
Meanwhile one ordinary client sends ``POST /predict`` with the study's payload on a fresh connection RATE times a
second for DURATION seconds (after the attack is in place) and records each latency; a request not answered
within TIMEOUT seconds counts as TIMEOUT. The drippers run in one thread over non-blocking sockets (selectors).

    python bench/serve_drippers.py [--drippers 1000] [--every 8] [--duration 30] [--rate 10]
                                   [--before DIR] [--kinds body,idle] [--out bench/results/serve_drippers.md] [--json]

``--kinds body,idle`` also runs the same number of idle connections (connect, send nothing, reconnect once closed) against
today's server. ``--before DIR`` also runs the attack on ``coldbrew serve`` from another checkout (``git archive`` of the code
before the body budget; its C kernel is copied from this one), beside today's, in the same run. ``--json`` prints
the results as one JSON line instead of writing the table (the test tests/security/test_serve_drippers.py uses it).
Needs about DRIPPERS + 100 open files in this process and in the server: run it under ``ulimit -n 4096``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import selectors
import shutil
import socket
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from coldbrew.experiment.dataset import STUDY_PAYLOAD
from coldbrew.experiment.modelcache import cache_path
from coldbrew.experiment.train import PRESETS, compile_study_model, train
from coldbrew.runtimes.server_process import ServerProcess

HEAD = b"POST /predict HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n["
BODY = json.dumps(STUDY_PAYLOAD).encode()
ORDINARY = (
    b"POST /predict HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nConnection: close\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
)
TIMEOUT_S = 10.0


def tiny_brew() -> Path:
    """The tiny study model as .brew, from the model cache (trained and compiled there if missing)."""
    brew, pkl = cache_path(PRESETS["tiny"], "brew"), cache_path(PRESETS["tiny"], "pickle")
    if not brew.exists():
        if not pkl.exists():
            pkl.parent.mkdir(parents=True, exist_ok=True)
            train(PRESETS["tiny"], pkl, progress=False)
        compile_study_model(pkl, brew, progress=False)
    return brew


class Drippers(threading.Thread):
    """``n`` dripping connections to ``addr``, each reconnecting at its next tick once the server closes it."""

    def __init__(self, addr: tuple[str, int], n: int, every: float, kind: str = "body"):
        super().__init__(daemon=True)
        self.addr, self.n, self.every, self.kind = addr, n, every, kind
        self.selector = selectors.DefaultSelector()
        self.halt = threading.Event()
        self.connects = 0
        self.connect_errors = 0
        self.closed_by_server: dict[str, int] = {}  # first status code seen (or "no answer") -> count
        self.open_now = 0
        self.established = threading.Event()

    def _connect(self, i: int):
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex(self.addr)
            self.selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, [i, b"", False])
            self.connects += 1
            return sock
        except OSError:
            self.connect_errors += 1
            return None

    def _closed(self, sock, data) -> None:
        status = data[1].split(b" ", 2)[1].decode("ascii", "replace") if data[1].startswith(b"HTTP/") else "no answer"
        self.closed_by_server[status] = self.closed_by_server.get(status, 0) + 1
        self.selector.unregister(sock)
        sock.close()

    def run(self) -> None:
        start = time.monotonic()
        # Tick times spread evenly over one period, so the bytes arrive as a steady trickle.
        due = [start + self.every * i / self.n for i in range(self.n)]
        socks: list = [None] * self.n
        connected_all = False
        while not self.halt.is_set():
            now = time.monotonic()
            for i in range(self.n):
                if due[i] > now:
                    continue
                due[i] += self.every
                sock = socks[i]
                if sock is None or sock.fileno() < 0:
                    socks[i] = self._connect(i)
                    continue
                key = self.selector.get_key(sock)
                if key.data[2]:  # head sent: one more body byte
                    try:
                        sock.send(b"0")
                    except OSError:
                        self._closed(sock, key.data)
                        socks[i] = None
            if not connected_all and self.connects + self.connect_errors >= self.n:
                connected_all = True
                self.established.set()
            self.open_now = sum(1 for s in socks if s is not None and s.fileno() >= 0)
            for key, events in self.selector.select(timeout=0.05):
                sock, data = key.fileobj, key.data
                if events & selectors.EVENT_WRITE and not data[2]:
                    try:
                        if self.kind == "body":  # an idle attacker connects and sends nothing
                            sock.send(HEAD)
                            data[2] = True
                        self.selector.modify(sock, selectors.EVENT_READ, data)
                    except OSError:
                        self._closed(sock, data)
                        socks[data[0]] = None
                    continue
                if events & selectors.EVENT_READ:
                    try:
                        chunk = sock.recv(4096)
                    except OSError:
                        chunk = b""
                    if chunk:
                        data[1] += chunk
                    else:
                        self._closed(sock, data)
                        socks[data[0]] = None
        for sock in socks:
            if sock is not None:
                sock.close()


def ordinary(addr: tuple[str, int]) -> tuple[float, int]:
    """One ``POST /predict`` on a fresh connection: (seconds until the whole answer, status; 0 = none)."""
    started = time.perf_counter()
    try:
        with socket.create_connection(addr, timeout=TIMEOUT_S) as sock:
            sock.sendall(ORDINARY)
            chunks = []
            while True:
                sock.settimeout(max(0.01, TIMEOUT_S - (time.perf_counter() - started)))
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        raw = b"".join(chunks)
        status = int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/") else 0
    except OSError:
        status = 0
    took = time.perf_counter() - started
    return (took if status else max(took, TIMEOUT_S)), status


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def attack(
    model: Path, drippers: int, every: float, duration: float, rate: float, env: dict | None = None, kind: str = "body"
) -> dict:
    """Serve ``model``, run the attack, measure ordinary requests; the numbers as a dict."""
    with ServerProcess(str(model), env=env, timeout=120) as server:
        url = urlsplit(server.url)
        assert url.hostname is not None and url.port is not None
        addr = (url.hostname, url.port)
        baseline = [ordinary(addr)[0] for _ in range(20)]
        attackers = Drippers(addr, drippers, every, kind)
        attackers.start()
        attackers.established.wait(timeout=60)
        time.sleep(2.0)  # let the server see every dripper's head and first bytes
        latencies, statuses = [], {}
        stop_at = time.monotonic() + duration
        while time.monotonic() < stop_at:
            took, status = ordinary(addr)
            latencies.append(took)
            statuses[status] = statuses.get(status, 0) + 1
            time.sleep(max(0.0, 1.0 / rate - took))
        open_at_end = attackers.open_now
        attackers.halt.set()
        attackers.join(timeout=30)
        after = [ordinary(addr)[0] for _ in range(20)]
        server.stop()
        log = server.access_log
    return {
        "drippers": drippers,
        "every_s": every,
        "requests": len(latencies),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies) * 1000,
        "baseline_p50_ms": statistics.median(baseline) * 1000,
        "after_p50_ms": statistics.median(after) * 1000,
        "dripper_connects": attackers.connects,
        "dripper_connect_errors": attackers.connect_errors,
        "drippers_closed_by_server": attackers.closed_by_server,
        "drippers_open_at_end": open_at_end,
        "access_log_lines": len(log),
    }


def before_env(tree: Path) -> dict:
    """PYTHONPATH for a checkout's ``coldbrew``, with this checkout's built C kernel copied in if it has none."""
    import coldbrew.engine

    here = Path(coldbrew.engine.__file__).parent
    for so in here.glob("_kernel*.so"):
        target = tree / "coldbrew" / "engine" / so.name
        if not target.exists():
            shutil.copy2(so, target)
    return {"PYTHONPATH": str(tree)}


ROWS = [
    ("requests", "ordinary requests during the attack", "{:,}"),
    ("statuses", "their statuses", None),
    ("p50_ms", "p50 latency (ms)", "{:,.1f}"),
    ("p99_ms", "**p99 latency (ms)**", "**{:,.1f}**"),
    ("max_ms", "max latency (ms)", "{:,.1f}"),
    ("baseline_p50_ms", "p50 before the attack (ms)", "{:,.1f}"),
    ("after_p50_ms", "p50 after the attack (ms)", "{:,.1f}"),
    ("dripper_connects", "dripper connections made", "{:,}"),
    ("drippers_closed_by_server", "dripper connections the server closed, by first status", None),
    ("drippers_open_at_end", "dripper connections open at the end", "{:,}"),
]


def cell(value, fmt: str | None) -> str:
    if fmt is None:
        return ", ".join(f"{k}: {v:,}" for k, v in value.items()) or "-"
    return fmt.format(value)


def table(results: dict[str, dict], args) -> str:
    names = list(results)
    lines = [
        "# `coldbrew serve` under 1,000 body drippers (issue #23)",
        "",
        f"Generated by `python bench/serve_drippers.py --drippers {args.drippers} --every {args.every:g} "
        f"--duration {args.duration:g} --rate {args.rate:g} --kinds {args.kinds}"
        f"{' --before DIR' if args.before else ''}` on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; the machine was shared with other jobs (load average "
        f"{os.getloadavg()[0]:.1f} at the end). Both servers run the tiny study model (.brew); one ordinary "
        f"client sends `POST /predict` on a fresh connection {args.rate:g}×/s; an unanswered request counts as "
        f"{TIMEOUT_S:g} s.",
        "",
        "| | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for key, label, fmt in ROWS:
        lines.append(f"| {label} | " + " | ".join(cell(results[n][key], fmt) for n in names) + " |")
    lines += [
        "",
        'The body budget (docs/serving.md, "Slow clients"): at most 64 connections read a body at once '
        "(`BODY_READERS_MAX`), a request whose body is still arriving 0.2 s after its head beyond that is shed "
        "with a 503; a body "
        "must arrive at 1,024 B/s on average after a 5 s grace (`BODY_MIN_RATE`, `BODY_GRACE_S`) or it is "
        "answered 408. Ordinary requests arrive whole and are never counted. Idle connections (last column, when "
        "run) are closed by the 5 s head deadline without an answer; past 900 open connections the longest idle "
        "are shed (`IDLE_SHED_AT`), which tests/security/test_serve_drippers.py drives with 1,000 reconnecting "
        "every 2 s. The server before answered none of the ordinary requests: the 1,000 drippers held every "
        "connection slot (`CONNECTION_LIMIT`), so the rest waited in the listen backlog.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drippers", type=int, default=1000)
    parser.add_argument("--every", type=float, default=8.0, help="seconds between one dripper's bytes")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of ordinary requests under attack")
    parser.add_argument("--rate", type=float, default=10.0, help="ordinary requests per second (at most)")
    parser.add_argument("--model", type=Path, help="a .brew (default: the tiny study model from the cache)")
    parser.add_argument("--before", type=Path, help="also attack `coldbrew serve` from this checkout")
    parser.add_argument("--out", "-o", type=Path, default=Path(__file__).parent / "results" / "serve_drippers.md")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON line, write no table")
    parser.add_argument(
        "--kinds",
        default="body",
        help="attacks on today's server, comma-separated: body (drip body bytes), idle (connect, send nothing, "
        "reconnect when closed) (default: body)",
    )
    args = parser.parse_args(argv)
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.drippers + 100:
        print(
            f"serve_drippers: needs {args.drippers + 100} open files, the limit is {soft}: ulimit -n 4096",
            file=sys.stderr,
        )
        return 2
    model = (args.model or tiny_brew()).resolve()
    results = {}
    if args.before:
        here = Path.cwd()
        os.chdir(args.before)  # `python -m coldbrew` imports from the working directory first
        try:
            results["before (no body budget)"] = attack(
                model, args.drippers, args.every, args.duration, args.rate, before_env(args.before.resolve())
            )
        finally:
            os.chdir(here)
    kinds = args.kinds.split(",")
    if "body" in kinds:
        results["now"] = attack(model, args.drippers, args.every, args.duration, args.rate)
    if "idle" in kinds:
        results["now, idle connections instead"] = attack(
            model, args.drippers, args.every, args.duration, args.rate, kind="idle"
        )
    if args.json:
        print(json.dumps(results))
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table(results, args))
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
