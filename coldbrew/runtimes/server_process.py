"""``coldbrew serve`` in a child process, as a client sees it: the demo, the benchmarks and the tests drive it.

The client side of :mod:`coldbrew.runtimes.local`: it spawns the real command, waits for its ready line, sends
requests and stops it with SIGTERM. Nothing here runs in the server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from coldbrew.runtimes.local import READY_PREFIX


class ServerProcess:
    """``coldbrew serve MODEL --port 0`` in a child process, as a client sees it (used by demo and bench).

    ``spawned_at`` is taken just before the spawn; ``startup`` is the server's start-up record; ``url`` its
    address. A context manager: leaving it stops the server with SIGTERM.
    """

    def __init__(
        self,
        model_uri: str,
        *,
        env: dict | None = None,
        timeout: float = 300.0,
        workers: int = 1,
        args: tuple[str, ...] = (),
    ):
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self.access_log: list[str] = []
        self.banner: list[str] = []  # the other lines printed before the ready line (the ``try: curl ...`` line)
        self.startup: dict | None = None
        self.spawned_at = time.perf_counter()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "coldbrew",
                "serve",
                str(model_uri),
                "--port",
                "0",
                "--workers",
                str(workers),
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env={**os.environ, **(env or {})},
        )
        watchdog = threading.Timer(timeout, self.proc.kill)
        watchdog.start()
        try:
            self.url = self._read_until_ready()
        finally:
            watchdog.cancel()
        if self.url is None:
            code = self.proc.wait()
            raise RuntimeError(f"coldbrew serve exited with status {code} before listening:\n{self.stderr_tail()}")
        threading.Thread(target=self._drain, daemon=True).start()

    def _read_until_ready(self) -> str | None:
        assert self.proc.stdout is not None  # stdout=PIPE
        for line in self.proc.stdout:
            if line.startswith("{") and self.startup is None:
                self.startup = json.loads(line)
            elif line.startswith(READY_PREFIX):
                return line[len(READY_PREFIX) :].strip()
            else:
                self.banner.append(line.rstrip("\n"))
        return None

    def _drain(self) -> None:
        assert self.proc.stdout is not None  # stdout=PIPE
        for line in self.proc.stdout:
            self.access_log.append(line.rstrip("\n"))

    def stderr_tail(self, lines: int = 20) -> str:
        """The last lines the server wrote to stderr (its log)."""
        self._stderr.seek(0)
        return "".join(self._stderr.readlines()[-lines:])

    def request(self, method: str, path: str, payload=None, timeout: float = 60.0):
        """Send one request; returns ``(status, decoded JSON body)`` — 4xx/5xx included, not raised."""
        if self.url is None:
            raise RuntimeError("the server is not listening")
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.url.rstrip("/") + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; kills after ``timeout`` seconds. Returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()
        return self.proc.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
