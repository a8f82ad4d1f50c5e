"""The snapshot template: import the handler once, then fork initialised environments.

A local analogue of Lambda SnapStart
(https://docs.aws.amazon.com/lambda/latest/dg/snapstart.html). Run as
``python -m coldbrew.lab.snapshot HANDLER CONTROL_FD``. The lab sends one JSON
line per environment (``{"env": {...}}``) on the control socket; the template forks, the
child takes the environment's variables, calls ``os.setsid`` and runs the unmodified
awslambdaric loop (which finds the handler module already imported), and the template
answers ``{"pid": N}``. Its first line is ``{"ready": true}`` or ``{"error": {...}}``.

As on SnapStart, the function's ``before_snapshot`` hooks run once, in the template, after its
init ("publishing the version"); each forked environment runs only the ``after_restore`` hooks
(awslambdaric's own ``run_before_snapshot`` finds the registry already emptied).

This module is executed in the template process; it imports nothing from coldbrew.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import signal
import socket
import sys
import traceback

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent exits (no orphans)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _send(sock: socket.socket, obj: dict) -> None:
    sock.sendall(json.dumps(obj).encode() + b"\n")


def _become_environment(handler: str, env: dict) -> None:
    """In the forked child: adopt the environment's variables and run awslambdaric."""
    os.setsid()
    die_with_parent()
    try:  # adopt orphaned descendants, so the environment's process tree stays whole
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1)
    except (OSError, AttributeError):
        pass
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.environ.update(env)
    cgroup = env.get("COLDBREW_LAB_CGROUP")  # coldbrew.lab.cgroups.CGROUP_VAR: join before the function runs
    if cgroup:
        try:
            with open(os.path.join(cgroup, "cgroup.procs"), "w") as fh:
                fh.write(str(os.getpid()))
        except OSError:
            pass
    # Imported only now: awslambdaric's C client reads AWS_LAMBDA_RUNTIME_API once, on import.
    from awslambdaric import __main__ as ric_main

    try:
        ric_main.main(["awslambdaric", handler])
    finally:
        os._exit(1)


def _preimport_runtime() -> None:
    """Import what awslambdaric needs except its C extension ``runtime_client``, which reads
    AWS_LAMBDA_RUNTIME_API when loaded and so must be imported after the fork."""
    import http.client  # noqa: F401
    import logging  # noqa: F401

    import simplejson  # noqa: F401
    import snapshot_restore_py  # noqa: F401
    from awslambdaric import lambda_context, lambda_runtime_log_utils, lambda_runtime_marshaller  # noqa: F401


def main(argv: list[str]) -> int:
    handler, control_fd = argv[1], int(argv[2])
    sock = socket.socket(fileno=control_fd)
    die_with_parent()
    try:
        _preimport_runtime()
        module_name = handler.rsplit(".", 1)[0]
        getattr(importlib.import_module(module_name.replace("/", ".")), handler.rsplit(".", 1)[1])
    except BaseException as exc:  # noqa: BLE001 - any failure of the function's init is reported, not raised
        _send(
            sock,
            {
                "error": {
                    "errorType": type(exc).__name__,
                    "errorMessage": str(exc),
                    "stackTrace": traceback.format_exc().splitlines(),
                }
            },
        )
        return 1
    try:  # "publish": before_snapshot hooks run once, here, before the first snapshot
        from awslambdaric import lambda_runtime_hooks_runner

        lambda_runtime_hooks_runner.run_before_snapshot()
    except BaseException as exc:  # noqa: BLE001 - a failing hook fails the "publish", reported like an init error
        _send(
            sock,
            {
                "error": {
                    "errorType": "Runtime.BeforeSnapshotError",
                    "errorMessage": f"{type(exc).__name__}: {exc}",
                    "stackTrace": traceback.format_exc().splitlines(),
                }
            },
        )
        return 1
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    _send(sock, {"ready": True})
    reader = sock.makefile("rb")
    for line in reader:
        command = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            reader.close()
            sock.close()
            _become_environment(handler, command["env"])
        _send(sock, {"pid": pid})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
