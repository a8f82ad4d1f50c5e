"""Helpers for tests that drive the Lambda handler: the context object, AWS's sample events, response decoding,
and a minimal Lambda Runtime API (2018-06-01) for running the real ``awslambdaric`` client against."""

from __future__ import annotations

import base64
import json
import queue
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

EVENTS = Path(__file__).parent / "events"
STUDY_ROW = {
    "age": 39,
    "fnlwgt": 77516,
    "education_num": 13,
    "capital_gain": 2174,
    "capital_loss": 0,
    "hours_per_week": 40,
}


class Context:
    """The attributes of Lambda's context object the handler reads."""

    def __init__(self):
        self.aws_request_id = str(uuid.uuid4())
        self.function_name = "coldbrew-test"


def load_event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def headers_of(response: dict) -> dict[str, list[str]]:
    """Response headers, lower-cased names → values, whether single- or multi-value."""
    out: dict[str, list[str]] = {}
    for k, v in (response.get("headers") or {}).items():
        out.setdefault(k.lower(), []).append(v)
    for k, vs in (response.get("multiValueHeaders") or {}).items():
        out.setdefault(k.lower(), []).extend(vs)
    return out


def body_of(response: dict):
    raw = response["body"]
    if response.get("isBase64Encoded"):
        raw = base64.b64decode(raw).decode()
    return json.loads(raw)


class RuntimeAPI:
    """A minimal Lambda Runtime API (2018-06-01) on 127.0.0.1 serving queued events to one runtime."""

    def __init__(self):
        self.events: queue.Queue = queue.Queue()
        self.responses: dict[str, bytes] = {}
        self.errors: dict[str, bytes] = {}
        self.restored = threading.Event()
        self.done = threading.Condition()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status, body=b"", headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/2018-06-01/runtime/invocation/next":
                    request_id, payload = api.events.get()  # blocks until the test queues one
                    self._reply(
                        200,
                        payload,
                        [
                            ("Content-Type", "application/json"),  # awslambdaric's C client needs it
                            ("Lambda-Runtime-Aws-Request-Id", request_id),
                            ("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30_000)),
                            (
                                "Lambda-Runtime-Invoked-Function-Arn",
                                "arn:aws:lambda:us-east-1:123456789012:function:coldbrew-test",
                            ),
                            (
                                "Lambda-Runtime-Trace-Id",
                                "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419",
                            ),
                        ],
                    )
                elif self.path == "/2018-06-01/runtime/restore/next":
                    api.restored.set()
                    self._reply(200, b"{}", [("Content-Type", "application/json")])
                else:
                    self._reply(404)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = self.path.split("/")
                if self.path.endswith("/response"):
                    store = api.responses
                elif self.path.endswith("/error"):
                    store = api.errors
                else:
                    self._reply(404)
                    return
                key = parts[-2] if "/invocation/" in self.path else parts[-2] + "/error"
                with api.done:
                    store[key] = body
                    api.done.notify_all()
                self._reply(202, b'{"status": "OK"}', [("Content-Type", "application/json")])

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.address = f"127.0.0.1:{self.server.server_address[1]}"

    def invoke(self, event: dict, timeout: float = 30.0) -> dict:
        """Queue ``event`` and wait for the runtime's response (or error)."""
        request_id = str(uuid.uuid4())
        self.events.put((request_id, json.dumps(event).encode()))
        deadline = time.monotonic() + timeout
        with self.done:
            while request_id not in self.responses and request_id not in self.errors:
                if not self.done.wait(deadline - time.monotonic()):
                    raise TimeoutError("the runtime never answered")
        if request_id in self.errors:
            raise AssertionError(f"invocation error: {self.errors[request_id]!r}")
        return json.loads(self.responses[request_id])

    def wait_init_error(self, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        with self.done:
            while "init/error" not in self.errors:
                if not self.done.wait(deadline - time.monotonic()):
                    raise TimeoutError("no init error reported")
        return json.loads(self.errors["init/error"])

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def start_runtime(api: RuntimeAPI, task_root: Path, log, **env: str):
    """``python -m awslambdaric coldbrew.aws.handler`` against ``api``, as Lambda starts it: cwd and
    ``LAMBDA_TASK_ROOT`` the task root, none of this environment's ``AWS_*``/``MODEL_*``/``COLDBREW_*`` variables
    but ``env``; output to the open binary file ``log``. Returns the ``subprocess.Popen``."""
    import os
    import subprocess
    import sys

    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MODEL_", "COLDBREW_"))}
    environ.update(AWS_LAMBDA_RUNTIME_API=api.address, LAMBDA_TASK_ROOT=str(task_root), **env)
    return subprocess.Popen(
        [sys.executable, "-m", "awslambdaric", "coldbrew.aws.handler"],
        cwd=task_root,
        env=environ,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
