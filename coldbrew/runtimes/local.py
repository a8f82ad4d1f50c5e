"""The local server: the WSGI app under gunicorn (real worker processes, graceful SIGTERM/Ctrl-C).

The model is loaded once, in the master, before any worker is forked (gunicorn's ``preload_app``), so the
start-up telemetry line is logged once and workers share the loaded model's pages copy-on-write. Workers are
gevent workers (:mod:`coldbrew.runtimes.gevent_worker`): a slow or idle client holds one greenlet, not the worker,
so everyone else keeps being answered (docs/serving.md, "Slow clients").
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

from gunicorn.app.base import BaseApplication

# One access-log line per request: client, request line, status, bytes, duration.
ACCESS_LOG_FORMAT = '%(h)s "%(r)s" %(s)s %(B)s bytes %(M)s ms'
# The line printed on stdout once the server accepts connections (the demo and bench parse it).
READY_PREFIX = "coldbrew: serving on "
# The worker class (by name: gunicorn imports it in the arbiter; gevent is patched in only in the workers).
WORKER_CLASS = "coldbrew.runtimes.gevent_worker.Worker"
# Seconds a connection gets to deliver its request line and headers, and to stay idle between keep-alive
# requests (gunicorn's ``keepalive``, which the gevent worker applies to reading each request's head).
HEADER_TIMEOUT_S = 5
# Connections one worker serves at once (gunicorn's ``worker_connections``); more wait in the listen backlog.
WORKER_CONNECTIONS = 1000
# Seconds a stopping worker lets requests in flight finish.
GRACEFUL_TIMEOUT_S = 10


class LocalServer(BaseApplication):
    """A gunicorn application hosting one ready WSGI callable."""

    def __init__(self, app, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1, on_ready=None):
        self._app = app
        self._options = {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": WORKER_CLASS,
            "worker_connections": WORKER_CONNECTIONS,
            "keepalive": HEADER_TIMEOUT_S,
            "graceful_timeout": GRACEFUL_TIMEOUT_S,
            "preload_app": True,
            "accesslog": "-",
            "access_log_format": ACCESS_LOG_FORMAT,
            "errorlog": "-",
            "loglevel": "info",
            "proc_name": "coldbrew",
            "control_socket_disable": True,  # no shared socket file under $HOME (gunicorn >= 25.1)
        }
        if on_ready is not None:
            self._options["when_ready"] = lambda arbiter: on_ready(listening_urls(arbiter))
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            if key in self.cfg.settings:
                self.cfg.set(key, value)

    def load(self):
        return self._app


def listening_urls(arbiter) -> list[str]:
    """``http://host:port/`` for every socket the arbiter listens on (resolves port 0)."""
    urls = []
    for listener in arbiter.LISTENERS:
        host, port = listener.sock.getsockname()[:2]
        host = f"[{host}]" if ":" in host else host
        urls.append(f"http://{host}:{port}/")
    return urls


def serve(app, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Serve ``app`` until SIGTERM or Ctrl-C; prints ``coldbrew: serving on URL`` to stdout once listening.

    gunicorn ends both the master and each forked worker with ``SystemExit`` (status 0 on a clean stop);
    it is deliberately left to propagate so no caller code runs twice in a worker.
    """

    def announce(urls: list[str]) -> None:
        for url in urls:
            print(f"{READY_PREFIX}{url}", flush=True)

    LocalServer(app, host=host, port=port, workers=workers, on_ready=announce).run()


class ServerProcess:
    """``coldbrew serve MODEL --port 0`` in a child process, as a client sees it (used by demo and bench).

    ``spawned_at`` is taken just before the spawn; ``startup`` is the server's start-up record; ``url`` its
    address. A context manager: leaving it stops the server with SIGTERM.
    """

    def __init__(self, model_uri: str, *, env: dict | None = None, timeout: float = 300.0, workers: int = 1):
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self.access_log: list[str] = []
        self.startup: dict | None = None
        self.spawned_at = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "coldbrew", "serve", str(model_uri), "--port", "0", "--workers", str(workers)],
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
        return None

    def _drain(self) -> None:
        assert self.proc.stdout is not None  # stdout=PIPE
        for line in self.proc.stdout:
            self.access_log.append(line.rstrip("\n"))

    def stderr_tail(self, lines: int = 20) -> str:
        """The last lines the server wrote to stderr (gunicorn's log)."""
        self._stderr.seek(0)
        return "".join(self._stderr.readlines()[-lines:])

    def request(self, method: str, path: str, payload=None, timeout: float = 60.0):
        """Send one request; returns ``(status, decoded JSON body)`` — 4xx/5xx included, not raised."""
        import urllib.error  # client side only: kept off the server's import path
        import urllib.request

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
