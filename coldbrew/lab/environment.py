"""One execution environment: a runtime process, its Runtime API server, and its life cycle.

States: ``init`` (process started, runtime not yet polling ``/next``), ``idle``, ``busy``,
``dead``. One invocation at a time, as on Lambda
(https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html). Like Lambda, an
environment is frozen (its whole process tree SIGSTOPped) once the runtime asks for the next event
and thawed when one arrives; stopping it kills every process it started (coldbrew.lab.proctree).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from coldbrew.errors import ColdbrewError
from coldbrew.lab import cgroups, proctree
from coldbrew.lab.cpu import ChargedClock, MachineWait, charged_wait
from coldbrew.lab.httpserver import server_port, start_server
from coldbrew.lab.runtime_api import NextEvent, build_handler, error_summary

MEMORY_POLL_S = 0.05
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")  # /proc/PID/stat counts CPU time in these (100 per second on Linux)


@dataclass
class Outcome:
    """How one invocation ended.

    ``kind``: ``ok`` (response posted), ``error`` (runtime posted an invocation error),
    ``crash`` (process exited), ``timeout`` (function timeout), ``oom`` (memory limit),
    ``shutdown`` (the lab stopped the environment mid-invocation).
    """

    kind: str
    request_id: str
    body: bytes = b""
    error: dict = field(default_factory=dict)
    duration_ms: float = 0.0
    max_memory_mb: int = 0
    cpu_ms: float | None = None  # CPU the environment used during the invocation (None: process gone)
    wait_ms: float = 0.0  # of its wall time, waiting for a core (not charged: duration_ms excludes it)


class InitFailure(ColdbrewError):
    """The environment did not become ready; ``error`` is Lambda's error shape."""

    def __init__(self, error: dict, init_ms: float, status: str = "error"):
        super().__init__(f"{error.get('errorType')}: {error.get('errorMessage')}")
        self.error = error
        self.init_ms = init_ms
        self.status = status  # error | timeout (INIT_REPORT's Status)


def read_proc_kb(pid: int, names: tuple[str, ...], filename: str = "status") -> dict[str, int]:
    """Fields (in kB) from /proc/PID/status (or smaps_rollup); empty if the process is gone."""
    found: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/{filename}", "rb") as fh:
            for line in fh:
                key, _, rest = line.partition(b":")
                name = key.decode()
                if name in names:
                    found[name] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return found


def read_cpu_ms(pid: int) -> float | None:
    """CPU time (user + system, ms) of process ``pid``'s threads and its reaped children; None if it is gone.

    From /proc/PID/stat (utime + stime + cutime + cstime), so its resolution is one clock tick (10 ms).
    A child process the handler started counts once it has exited and been waited for.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
        fields = data[data.rindex(b")") + 2 :].split()  # fields from 3 (state) on; comm may hold spaces
        return sum(int(f) for f in fields[11:15]) * 1000 / CLOCK_TICKS  # fields 14-17
    except (OSError, ValueError, IndexError):
        return None


class Environment:
    """A Lambda execution environment hosted in a child process."""

    def __init__(
        self,
        env_id: str,
        *,
        kind: str,
        memory_mb: int,
        timeout_s: float,
        function_arn: str,
        markers: dict[str, str] | None = None,
        freeze: bool = True,
    ):
        self.id = env_id
        self.kind = kind  # on-demand | provisioned-concurrency | snap-start
        self.memory_mb = memory_mb
        self.timeout_s = timeout_s
        self.function_arn = function_arn
        self.state = "init"
        self.pid: int | None = None
        self.port: int | None = None
        self.clock = ChargedClock()  # the init's: wall time since started_at minus waiting for a core
        self.last_used = self.started_at
        self.init_ms: float | None = None  # charged (what Lambda's Init Duration would show)
        self.init_wait_ms = 0.0  # the init's wall time spent waiting for a core, not charged
        self.init_cpu_ms: float | None = None  # CPU time of the init (or restore) phase
        self.invocations = 0
        self.max_memory_mb = 0
        self.stop_reason: str | None = None
        self._loop = asyncio.get_running_loop()
        self._server: asyncio.AbstractServer | None = None
        self._ready: asyncio.Future = self._loop.create_future()
        self._exited: asyncio.Future = self._loop.create_future()
        self._waiter: asyncio.Future | None = None
        self._pending: NextEvent | None = None
        self._current: tuple[NextEvent, asyncio.Future] | None = None
        self._delivered_at = 0.0
        self._idle_since: float | None = None  # when the runtime last asked for its next event
        self._oom = False
        self._popen = None
        self._pidfd: int | None = None
        self.markers = markers or {}
        self.freeze_idle = freeze
        self.frozen: set[int] = set()
        self._tree: list[int] = []
        self._tree_stamp = -1
        self.peak_kb = 0
        self.stop_logged = False
        self._restore_at: float | None = None
        self.restore_hooks_ms = 0.0
        self.reinit_ms: float | None = None  # an on-demand init retried at the first invoke (suppressed init)
        self.reserved = False
        self.cgroup: Path | None = None  # its own cgroup, where the machine allows it (coldbrew.lab.cgroups)

    @property
    def started_at(self) -> float:
        """When the environment started (monotonic s): its init clock counts from here."""
        return self.clock.started

    @started_at.setter
    def started_at(self, value: float) -> None:
        self.clock.started = value

    # ---- life cycle -------------------------------------------------------------------------
    async def open_api(self) -> str:
        """Start this environment's Runtime API; returns the ``host:port`` for the runtime."""
        self._server = await start_server(build_handler(self))
        self.port = server_port(self._server)
        return f"127.0.0.1:{self.port}"

    def attach(self, pid: int, popen=None) -> None:
        """Track the runtime process (its exit resolves ``exited``)."""
        self.pid, self._popen = pid, popen
        self.clock.follow(pid)
        if pid is None:  # an in-process runtime (the scheduler's unit tests): nothing to watch
            return
        try:
            self._pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._on_exit()
            return
        self._loop.add_reader(self._pidfd, self._on_exit)

    def _on_exit(self) -> None:
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        if self._popen is not None:
            # Not wait4's ru_maxrss for the peak: a vfork()ed child's counts the lab's own RSS.
            self._popen.poll()
        if not self._exited.done():
            self._exited.set_result(True)

    async def wait_ready(self, init_timeout_s: float, wait: MachineWait | None = None) -> float:
        """Wait for the runtime's first ``/next`` until the init's charged clock (counted from the
        environment's start, not from when the launch returned, minus its waits for a core) reaches
        ``init_timeout_s``; returns the charged init ms or raises InitFailure. ``wait`` accrues the
        init's waits for a core."""
        watch = self._loop.create_task(self._watch_memory())
        if wait is not None:
            wait.watch(self.clock)
        try:
            await charged_wait({self._ready, self._exited}, init_timeout_s, self.clock.charged_s)
        finally:
            watch.cancel()
            if wait is not None:
                wait.unwatch()
        elapsed = self.clock.charged_s() * 1000 if self.init_ms is None else self.init_ms
        self.init_wait_ms = self.init_wait_ms or self.clock.wait_s() * 1000
        failure = self._ready.exception() if self._ready.done() else None
        if self._ready.done() and failure is None and self.init_ms is not None:
            return self.init_ms
        if isinstance(failure, InitFailure):
            error = failure.error
        elif self._oom:
            error = {"errorType": "Runtime.OutOfMemory", "errorMessage": "init exceeded the memory limit"}
        elif self._exited.done():
            error = {"errorType": "Runtime.ExitError", "errorMessage": "Runtime exited without providing a reason"}
        else:
            error = {
                "errorType": "Runtime.InitTimeout",
                "errorMessage": f"init did not finish within {init_timeout_s * 1000:.0f} ms",
            }
            await self.stop(error["errorType"])
            raise InitFailure(error, elapsed, "timeout")
        await self.stop(error["errorType"])
        raise InitFailure(error, elapsed)

    async def stop(self, reason: str, swept: bool = False) -> None:
        """Kill every process of the environment (its tree and anything carrying its markers; ``swept``: the
        lab has just killed them all, only the runtime is signalled again) and close the Runtime API."""
        if self.state == "dead":
            return
        self.state = "dead"
        self.stop_reason = reason
        if self.cgroup is not None:  # every process it started, wherever it went, in one write
            cgroups.kill(self.cgroup)
        elif self.pid is not None and not swept:
            # Stop the whole tree before killing anything, so no child is reparented out of it meanwhile.
            root = None if self._exited.done() else self.pid
            await self._loop.run_in_executor(None, proctree.kill_all, root, self.markers)
        self.kill()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.cancel()
        if self._current is not None and not self._current[1].done():
            self._current[1].cancel()
        if self._server is not None:
            self._server.close()
        if self.pid is not None and not self._exited.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._exited), 2.0)
            except TimeoutError:
                pass
        if self.cgroup is not None:
            cgroups.remove(self.cgroup)  # once empty; what is still dying goes with the lab's cgroup

    def kill(self) -> None:
        """SIGKILL the runtime's process group (it runs in its own session)."""
        if self.pid is None or self._exited.done():
            return
        for send in (lambda: os.killpg(self.pid, signal.SIGKILL), lambda: os.kill(self.pid, signal.SIGKILL)):
            try:
                send()
                return
            except (ProcessLookupError, PermissionError):
                continue

    @property
    def alive(self) -> bool:
        return self.state != "dead" and not self._exited.done()

    # ---- freezing -----------------------------------------------------------------------------
    def freeze(self) -> None:
        """SIGSTOP the environment's process tree (Lambda freezes an environment between invocations).

        This runs at every invocation's end, so the tree found by scanning /proc is reused for as long as
        no process has been created on the machine since (``proctree.last_pid``)."""
        if not self.freeze_idle or self.pid is None or self.frozen or self._exited.done():
            return
        stamp = proctree.last_pid()
        if stamp == -1 or stamp != self._tree_stamp:
            self._tree, self._tree_stamp = proctree.tree(self.pid), stamp
        proctree.send(self._tree, signal.SIGSTOP)
        self.frozen = set(self._tree)

    def thaw(self) -> None:
        """SIGCONT every process ``freeze`` stopped."""
        if self.frozen:
            proctree.send(self.frozen, signal.SIGCONT)
            self.frozen = set()

    # ---- memory -------------------------------------------------------------------------------
    def memory_kb(self) -> dict[str, int]:
        """Current VmRSS and VmHWM (kB)."""
        return read_proc_kb(self.pid, ("VmRSS", "VmHWM")) if self.pid else {}

    async def _watch_memory(self) -> None:
        limit_kb = self.memory_mb * 1024
        while self.pid is None:
            await asyncio.sleep(MEMORY_POLL_S)
        while not self._exited.done():
            memory = self.memory_kb()
            rss = memory.get("VmRSS", 0)
            self.peak_kb = max(self.peak_kb, memory.get("VmHWM", 0))
            if rss > limit_kb:
                self._oom = True
                self.kill()
                return
            await asyncio.sleep(MEMORY_POLL_S)

    # ---- invocations -------------------------------------------------------------------------
    async def invoke(
        self,
        payload: bytes,
        request_id: str | None = None,
        timeout_s: float | None = None,
        wait: MachineWait | None = None,
    ) -> Outcome:
        """Run one invocation to its end (response, error, crash, timeout, OOM or lab shutdown);
        ``timeout_s`` (default: the function timeout) is what is left of it, on the charged clock (waiting
        for a core is not counted; ``wait`` accrues it)."""
        request_id = request_id or str(uuid.uuid4())
        timeout_s = self.timeout_s if timeout_s is None else max(0.0, timeout_s)
        self.state = "busy"
        self.invocations += 1
        clock = ChargedClock()  # started before the thaw: the wait to run again after SIGCONT is in its window
        clock.start(self.pid, self._idle_since)
        self.thaw()
        deadline_ms = int(time.time() * 1000 + timeout_s * 1000)
        event = NextEvent(
            request_id,
            payload,
            deadline_ms,
            self.function_arn,
            f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0",
        )
        result: asyncio.Future = self._loop.create_future()
        self._current = (event, result)
        self._delivered_at = time.monotonic()
        if wait is not None:
            wait.watch(clock)
        cpu_before = read_cpu_ms(self.pid) if self.pid else None
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(event)
        else:
            self._pending = event
        watch = self._loop.create_task(self._watch_memory())
        try:
            await charged_wait({result, self._exited}, timeout_s, clock.charged_s)
        finally:
            watch.cancel()
            if wait is not None:
                wait.unwatch()
        duration_ms = clock.charged_s() * 1000
        wait_ms = clock.wait_s() * 1000
        cpu_after = read_cpu_ms(self.pid) if self.pid else None
        cpu_ms = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
        self.peak_kb = max(self.peak_kb, self.memory_kb().get("VmHWM", 0))
        hwm = self.peak_kb // 1024  # polled every 50 ms: a crashed process's peak survives it
        self.max_memory_mb = max(self.max_memory_mb, hwm)
        self._current, self._pending = None, None
        self.last_used = time.monotonic()
        shutdown = self.stop_reason is not None and not (result.done() and not result.cancelled())
        if shutdown:  # the lab stopped this environment mid-invocation: neither a timeout nor a crash
            return Outcome(
                "shutdown",
                request_id,
                duration_ms=duration_ms,
                max_memory_mb=hwm,
                error={
                    "errorType": "Lab.Shutdown",
                    "errorMessage": f"RequestId: {request_id} Error: the environment was stopped ({self.stop_reason})",
                },
            )
        if result.done() and not result.cancelled():
            outcome = result.result()
            outcome.duration_ms, outcome.max_memory_mb = duration_ms, hwm
            if hwm > self.memory_mb:
                self._oom = True
        elif self._oom or self._exited.done():
            outcome = Outcome(
                "crash",
                request_id,
                duration_ms=duration_ms,
                max_memory_mb=hwm,
                error={
                    "errorType": "Runtime.ExitError",
                    "errorMessage": f"RequestId: {request_id} Error: Runtime exited without providing a reason",
                },
            )
        else:
            outcome = Outcome(
                "timeout",
                request_id,
                duration_ms=duration_ms,
                max_memory_mb=hwm,
                error={
                    "errorType": "Sandbox.Timedout",
                    "errorMessage": f"RequestId: {request_id} Error: Task timed out after {self.timeout_s:.2f} seconds",
                },
            )
            await self.stop("timeout")
        if self._oom:
            outcome = Outcome(
                "oom",
                request_id,
                duration_ms=duration_ms,
                max_memory_mb=max(hwm, self.memory_mb),
                error={
                    "errorType": "Runtime.OutOfMemory",
                    "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: signal: killed",
                },
            )
            await self.stop("out of memory")
        elif outcome.kind == "crash":
            await self.stop("crashed")
        elif outcome.error.get("errorType") == "Function.ResponseSizeTooLarge":
            # The Runtime API refused the response with 413; awslambdaric exits on that, so the environment is reset.
            await self.stop("response too large")
        outcome.cpu_ms = cpu_ms
        outcome.wait_ms = wait_ms
        if self.state == "busy":
            self.state = "idle"
        return outcome

    # ---- RuntimeHost (called by the Runtime API) ---------------------------------------------
    async def next_invocation(self) -> NextEvent:
        if not self._ready.done():
            now = time.monotonic()
            self.init_ms = self.clock.charged_s() * 1000
            self.init_wait_ms = self.clock.wait_s() * 1000
            self.init_cpu_ms = read_cpu_ms(self.pid) if self.pid else None
            if self._restore_at is not None:
                self.restore_hooks_ms = (now - self._restore_at) * 1000
            self.state = "idle"
            self._ready.set_result(True)
        self._idle_since = time.monotonic()
        if self._pending is not None:
            event, self._pending = self._pending, None
        else:
            self._waiter = self._loop.create_future()
            if not self.reserved:  # a cold start's environment gets its event at once: no freeze-thaw in between
                self.freeze()  # nothing to do until the next event: freeze, as Lambda does
            event = await self._waiter
            self._waiter = None
        self._delivered_at = time.monotonic()
        return event

    def _finish(self, request_id: str, outcome: Outcome) -> bool:
        if self._current is None or self._current[0].request_id != request_id:
            return False
        if not self._current[1].done():
            self._current[1].set_result(outcome)
        return True

    def invocation_response(self, request_id: str, body: bytes) -> bool:
        return self._finish(request_id, Outcome("ok", request_id, body=body))

    def invocation_error(self, request_id: str, body: bytes, error_type: str) -> bool:
        return self._finish(request_id, Outcome("error", request_id, body=body, error=error_summary(body, error_type)))

    def init_error(self, body: bytes, error_type: str) -> None:
        if not self._ready.done():
            self._ready.set_exception(InitFailure(error_summary(body, error_type), 0.0))

    def restore_next(self) -> None:
        self._restore_at = time.monotonic()  # after_restore hooks run from here to the first /next

    def describe(self) -> dict:
        """A JSON-able summary for ``/_lab/stats``."""
        return {
            "id": self.id,
            "pid": self.pid,
            "state": self.state,
            "kind": self.kind,
            "frozen": bool(self.frozen),
            "invocations": self.invocations,
            "init_ms": None if self.init_ms is None else round(self.init_ms, 2),
            "init_cpu_ms": _round(self.init_cpu_ms),
            "cpu_ms": _round(read_cpu_ms(self.pid) if self.pid else None),
            "max_memory_mb": self.max_memory_mb,
            "age_s": round(time.monotonic() - self.started_at, 1),
            "idle_s": round(time.monotonic() - self.last_used, 1) if self.state == "idle" else 0.0,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
