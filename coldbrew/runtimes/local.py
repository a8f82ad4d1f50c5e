"""The local server: the WSGI app under gunicorn (real worker processes, graceful SIGTERM/Ctrl-C).

The model is loaded once, in the master, before any worker is forked (gunicorn's ``preload_app``), so the
start-up telemetry line is logged once and workers share the loaded model's pages copy-on-write.
"""

from __future__ import annotations

from gunicorn.app.base import BaseApplication

# One access-log line per request: client, request line, status, bytes, duration.
ACCESS_LOG_FORMAT = '%(h)s "%(r)s" %(s)s %(B)s bytes %(M)s ms'
# The line printed on stdout once the server accepts connections (the demo and bench parse it).
READY_PREFIX = "coldbrew: serving on "


class LocalServer(BaseApplication):
    """A gunicorn application hosting one ready WSGI callable."""

    def __init__(self, app, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1, on_ready=None):
        self._app = app
        self._options = {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": "sync",
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


__all__ = ["LocalServer", "serve", "listening_urls", "ACCESS_LOG_FORMAT", "READY_PREFIX"]
