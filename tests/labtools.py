"""Helpers for tests that drive a real lab (awslambdaric processes hosting tests/handlers).

Imported as ``from labtools import ...`` (tests/ is on sys.path, as for proctools).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from coldbrew.lab import Lab, LabConfig

HANDLERS = Path(__file__).parent / "handlers"


class LabFactory:
    """Start labs hosting tests/handlers (256 MB, output to a file); ``close()`` stops them all."""

    def __init__(self, tmp_path: Path):
        self.tmp_path, self.labs = tmp_path, []

    def __call__(self, handler: str | None = None, **options) -> Lab:
        options.setdefault("function_output", self.tmp_path / "function.log")
        options.setdefault("memory_mb", 256)
        options.setdefault("task_root", HANDLERS)
        if handler is None and not (options.get("wsgi") or options.get("asgi")):
            handler = "echo.handler"
        if handler is not None:
            options["handler"] = handler
        lab = Lab(LabConfig(**options)).start()
        self.labs.append(lab)
        return lab

    def close(self) -> None:
        for lab in self.labs:
            lab.stop()


def call(lab, path="/", body: bytes | None = None, timeout=30, headers=None, method=None):
    """(status, headers, body bytes) of one request to the lab's front door."""
    request = urllib.request.Request(
        lab.url + path, data=body, headers=headers or {}, method=method or ("POST" if body is not None else "GET")
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def raw_exchange(lab, data: bytes, timeout=30) -> bytes:
    """Send raw bytes to the front door and read until the server closes or ``timeout``."""
    with socket.create_connection(("127.0.0.1", lab.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


def head_and_body(raw: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Split one raw HTTP/1.1 response (status, headers, body) exactly as the bytes say."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = [tuple(part.strip() for part in line.split(b":", 1)) for line in lines[1:]]
    return status, headers, body


class LabCommand:
    """``coldbrew lab ARGS...`` as a user runs it, in a child process: ``url`` once it prints its address.

    A context manager: ``stop()`` (Ctrl-C) must end it with status 0 and no traceback; leaving the block kills it
    if it is still running.
    """

    def __init__(self, *args: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "coldbrew", "lab", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("coldbrew lab: http://127.0.0.1:"):
            self.__exit__()
            raise AssertionError(f"coldbrew lab did not start: {line!r}")
        self.url = line.split()[2]

    def stop(self) -> tuple[str, str]:
        """Ctrl-C, check the command ended cleanly; returns what it wrote to (stdout, stderr)."""
        self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=20)
        assert self.proc.returncode == 0 and "Traceback" not in out + err, err[-2000:]
        return out, err

    def __enter__(self) -> LabCommand:
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
