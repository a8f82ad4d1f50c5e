"""How an environment's process comes to life: a fresh ``python -m awslambdaric`` or a fork.

``ProcessLauncher`` starts the real runtime client the way Lambda's Python base image does
(through coldbrew.lab.boot, which arms PR_SET_PDEATHSIG and PR_SET_CHILD_SUBREAPER first);
``SnapshotLauncher`` asks an initialised template (coldbrew.lab.snapshot) to fork.
Every process runs in its own session and dies with its parent, so nothing outlives the lab.
Processes are spawned from a worker thread so a slow spawn never stalls the lab's event loop
(and with it every timer of every other environment).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time

from coldbrew.lab.cgroups import CGROUP_VAR, join
from coldbrew.lab.proctree import die_with_parent_and_keep_orphans
from coldbrew.lab.snapshot import die_with_parent


class _Launcher:
    """What both launchers share: the handler they start, in ``cwd``, writing to ``output``."""

    def __init__(self, handler: str, cwd: str, output):
        self.handler, self.cwd, self.output = handler, cwd, output

    def _start(self, argv: list[str], env: dict, preexec, **popen) -> subprocess.Popen:
        """Start ``argv`` with exactly ``env``: no stdin, stdout and stderr to ``output``, in a session of its own,
        ``preexec`` (arming death with the lab) run just before exec; ``popen``: more ``subprocess.Popen`` arguments."""
        return subprocess.Popen(
            argv,
            env=env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=self.output,
            stderr=self.output,
            start_new_session=True,
            preexec_fn=preexec,
            **popen,
        )


class ProcessLauncher(_Launcher):
    """Start each environment as ``python -m awslambdaric HANDLER`` in ``cwd``: through coldbrew.lab.boot with
    this interpreter, or, when ``python`` is given (an isolated interpreter that cannot import coldbrew, as in
    the zip smoke test), exactly ``[*python, "-m", "awslambdaric", HANDLER]``."""

    def __init__(self, handler: str, cwd: str, output, python: list[str] | None = None):
        super().__init__(handler, cwd, output)
        self.python = list(python) if python else None

    async def launch(self, env: dict) -> tuple[int, subprocess.Popen]:
        """Start one runtime process with ``env``; returns (pid, Popen)."""
        if self.python is None:
            argv = [sys.executable, "-m", "coldbrew.lab.boot", str(os.getpid()), self.handler]
            preexec = None
        else:
            argv = [*self.python, "-m", "awslambdaric", self.handler]
            cgroup = env.get(CGROUP_VAR)

            def preexec() -> None:  # what coldbrew.lab.boot does, done before exec instead
                if cgroup:
                    join(cgroup)
                die_with_parent_and_keep_orphans()

        proc = await asyncio.get_running_loop().run_in_executor(None, self._start, argv, env, preexec)
        return proc.pid, proc

    async def close(self) -> None:
        return None


class SnapshotLauncher(_Launcher):
    """Fork environments from one template process that has already imported the handler.

    Like a snapshot, the template does not run between forks: with ``freeze`` it is SIGSTOPped after
    its init and continued only for the moment it takes to fork (threads its init started stay still).
    """

    def __init__(self, handler: str, cwd: str, output, freeze: bool = True):
        super().__init__(handler, cwd, output)
        self.freeze = freeze
        self.template: subprocess.Popen | None = None
        self.init_ms: float | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    async def open(self, env: dict, init_timeout_s: float) -> dict | None:
        """Start the template and wait for its init; returns Lambda's error shape on failure."""
        ours, theirs = socket.socketpair()
        started = time.monotonic()
        argv = [sys.executable, "-m", "coldbrew.lab.snapshot", self.handler, str(theirs.fileno())]
        self.template = self._start(argv, env, die_with_parent, pass_fds=(theirs.fileno(),))
        theirs.close()
        self._reader, self._writer = await asyncio.open_unix_connection(sock=ours)
        try:
            line = await asyncio.wait_for(self._reader.readline(), init_timeout_s)
        except TimeoutError:
            line = json.dumps(
                {
                    "error": {
                        "errorType": "Runtime.InitTimeout",
                        "errorMessage": f"snapshot init exceeded {init_timeout_s:g} s",
                    }
                }
            ).encode()
        reply = json.loads(line or b'{"error": {"errorType": "Runtime.ExitError", "errorMessage": "template exited"}}')
        self.init_ms = (time.monotonic() - started) * 1000
        if "error" in reply:
            await self.close()
            return reply["error"]
        self._signal(signal.SIGSTOP)
        return None

    def _signal(self, sig: int) -> None:
        if self.freeze and self.template is not None and self.template.poll() is None:
            try:
                os.kill(self.template.pid, sig)
            except ProcessLookupError:
                pass

    async def launch(self, env: dict) -> tuple[int, None]:
        """Fork one environment from the template; returns (pid, None)."""
        if self._writer is None or self._reader is None:
            raise RuntimeError("snapshot launcher used before open()")
        async with self._lock:
            self._signal(signal.SIGCONT)
            try:
                self._writer.write(json.dumps({"env": env}).encode() + b"\n")
                await self._writer.drain()
                reply = json.loads(await self._reader.readline())
            finally:
                self._signal(signal.SIGSTOP)
        return reply["pid"], None

    async def close(self) -> None:
        """Stop the template (its forked children die with it)."""
        if self._writer is not None:
            self._writer.close()
        if self.template is not None and self.template.poll() is None:
            self.template.kill()
            await asyncio.get_running_loop().run_in_executor(None, self.template.wait)
