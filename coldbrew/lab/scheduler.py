"""The scheduler: which environment runs a request, when environments start and stop.

Mirrors Lambda's scaling for synchronous invokes
(https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html): a request takes an
idle environment or starts a new one (a cold start); one request per environment; at the
concurrency limit further requests are throttled, not queued; idle environments are reaped.
An on-demand init that overruns its 10 s limit is retried once, at the first invoke, under the
function timeout (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html).

Starts go through the CPU gate (coldbrew.lab.cpu): a cold start the machine cannot serve promptly is
queued (counted toward the concurrency limit, as the environment it is on Lambda), not failed, and the
limits run on each environment's charged clock; the request's machine wait is recorded apart.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from coldbrew.errors import ColdbrewError
from coldbrew.lab import cgroups, proctree
from coldbrew.lab.config import LabConfig
from coldbrew.lab.cpu import CpuGate, GateClosed, MachineWait, cpu_count
from coldbrew.lab.environment import Environment, InitFailure, Outcome, read_proc_kb
from coldbrew.lab.staging import evict_page_cache
from coldbrew.lab.stats import (
    Stats,
    end_line,
    init_report_line,
    report_line,
    start_line,
)


class Throttled(ColdbrewError):
    """Every environment up to the concurrency limit is busy."""


@dataclass
class Result:
    """An invocation's outcome plus where it ran."""

    outcome: Outcome
    env_id: str
    cold: bool
    init_ms: float | None = None  # the environment's init (or restore) wall time, on a cold start
    init_cpu_ms: float | None = None  # and its CPU time
    queue_ms: float = 0.0  # the request's machine wait: queued for a start, and waiting for a core


SHUTDOWN_ERROR = {"errorType": "Lab.Shutdown", "errorMessage": "the lab is stopping"}


class Scheduler:
    """Owns the environments of one function."""

    def __init__(
        self,
        config: LabConfig,
        launcher,
        base_env: dict[str, str],
        stats: Stats,
        workdir: Path,
        evict: list[Path],
        cgroup: cgroups.LabCgroup | None = None,
    ):
        self.config = config
        self.launcher = launcher
        self.base_env = base_env
        self.stats = stats
        self.workdir = workdir
        self.evict = evict
        self.cgroup = cgroup  # each environment in a cgroup of its own below it, where the machine allows it
        self.envs: dict[str, Environment] = {}
        self.function_arn = f"arn:aws:lambda:{config.region}:123456789012:function:{config.function_name}"
        self.lab_id = base_env.get(proctree.LAB_ID_VAR, "")
        # LabConfig has parsed its durations into seconds
        self.timeout_s = float(config.timeout)
        self.init_timeout_s = float(config.init_timeout)
        self.idle_timeout_s = float(config.idle_timeout)
        self._ids = itertools.count(1)
        self._reaper: asyncio.Task | None = None
        self.closing = False
        self.gate = CpuGate(config.cpus or cpu_count())
        self.queued = 0  # cold starts waiting for the gate: environments-to-be, counted toward the limit
        self.spawning = 0  # launches in flight

    # ---- environments -------------------------------------------------------------------------
    def _variables(self, env: Environment, api: str, tmpdir: Path) -> dict[str, str]:
        """The environment variables Lambda defines for a function
        (https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime)."""
        stream = time.strftime("%Y/%m/%d") + f"/[$LATEST]{uuid.uuid4().hex}"
        joins = {cgroups.CGROUP_VAR: str(env.cgroup)} if env.cgroup else {}
        return {
            **joins,
            **self.base_env,
            "AWS_LAMBDA_RUNTIME_API": api,
            "AWS_LAMBDA_LOG_STREAM_NAME": stream,
            "AWS_LAMBDA_INITIALIZATION_TYPE": env.kind,
            "TMPDIR": str(tmpdir),
            proctree.ENV_ID_VAR: env.id,
        }

    def init_limit(self, kind: str) -> float:
        """Seconds init may take: --init-timeout on demand; for provisioned concurrency (and a
        SnapStart snapshot) Lambda allows the higher of 130 s and the function timeout."""
        return max(130.0, self.timeout_s) if kind == "provisioned-concurrency" else self.init_timeout_s

    async def _admit(self, wait: MachineWait | None, first: bool = False) -> object:
        """Wait for the CPU gate (counted as queued); raises InitFailure(Lab.Shutdown) once the lab stops."""
        self.queued += 1
        if wait is not None:
            wait.queue_started()
        try:
            return await self.gate.admit(first)
        except GateClosed:
            raise InitFailure(dict(SHUTDOWN_ERROR), 0.0) from None
        finally:
            self.queued -= 1
            if wait is not None:
                wait.queue_ended()

    async def _spawn(self, kind: str, env_id: str | None = None) -> Environment:
        """Create an environment, start its Runtime API and its process (not waiting for init)."""
        if self.closing:
            raise InitFailure(dict(SHUTDOWN_ERROR), 0.0)
        if self.config.evict_page_cache and self.evict:
            self.stats.event("page_cache_evicted", files=evict_page_cache(self.evict))
        env_id = env_id or f"env-{next(self._ids):04d}"
        env = Environment(
            env_id,
            kind=kind,
            memory_mb=self.config.memory_mb,
            timeout_s=self.timeout_s,
            function_arn=self.function_arn,
            freeze=self.config.freeze,
            markers={proctree.LAB_ID_VAR: self.lab_id, proctree.ENV_ID_VAR: env_id},
        )
        self.envs[env.id] = env
        env.cgroup = self.cgroup.environment(env.id) if self.cgroup else None
        tmpdir = self.workdir / "envs" / env.id / "tmp"
        tmpdir.mkdir(parents=True, exist_ok=True)
        self.spawning += 1
        try:
            api = await env.open_api()
            pid, popen = await self.launcher.launch(self._variables(env, api, tmpdir))
            if env.cgroup is not None and not cgroups.join(env.cgroup, pid):
                env.cgroup = None  # not movable after all: the process-tree kill for this one
            env.attach(pid, popen)
            if self.closing:  # stopped while this process was being started: it never serves
                raise InitFailure(dict(SHUTDOWN_ERROR), 0.0)
        except BaseException:
            await env.stop("lab stopped" if self.closing else "lab error")
            self._forget(env)
            raise
        finally:
            self.spawning -= 1
        self.stats.event("env_start", env=env.id, pid=pid, kind=kind)
        return env

    def _init_failed(self, env: Environment, failure: InitFailure, phase: str) -> None:
        self._forget(env)
        if self.closing:
            return
        self.stats.errors[failure.error["errorType"]] += 1
        self.stats.event(
            "init_error",
            env=env.id,
            init_ms=round(failure.init_ms, 2),
            phase=phase,
            status=failure.status,
            **failure.error,
        )
        self.stats.report(
            init_report_line(
                failure.init_ms, phase, failure.status, failure.error["errorType"], machine_wait_ms=env.init_wait_ms
            )
        )

    async def _gated_init(
        self, kind: str, limit_s: float, reserved: bool, wait: MachineWait | None, env_id=None, first=False
    ) -> tuple[Environment, float]:
        """Admit, spawn and wait for one init: (environment, charged init ms); the gate's core is freed
        when the init ends. InitFailure from wait_ready comes with the environment in ``failure.env``."""
        key = await self._admit(wait, first)
        try:
            env = await self._spawn(kind, env_id)
            env.reserved = reserved  # before it is ready: no other request may take it
            self.gate.started(key, env.pid)
            try:
                return env, await env.wait_ready(limit_s, wait)
            except InitFailure as failure:
                failure.env = env  # type: ignore[attr-defined]
                raise
            except BaseException:
                await env.stop("lab stopped" if self.closing else "lab error")
                self._forget(env)
                raise
        finally:
            self.gate.release(key)

    async def start_environment(self, kind: str, *, reserved: bool, wait: MachineWait | None = None) -> Environment:
        """Start one environment (once the CPU gate admits it) and wait for its init; raises InitFailure
        (environment discarded).

        An on-demand init that overruns ``--init-timeout`` on its charged clock is logged (``INIT_REPORT
        ... Status: timeout``), its processes killed, and init is retried in a fresh process as part of
        the first invocation, limited by the function timeout (``env.reinit_ms`` records it)."""
        try:
            env, init_ms = await self._gated_init(kind, self.init_limit(kind), reserved, wait)
        except InitFailure as failure:
            failed = getattr(failure, "env", None)
            if failed is None:  # never started: the lab is stopping
                raise
            self._init_failed(failed, failure, "init")
            if failure.status != "timeout" or kind != "on-demand" or self.closing:
                raise
            return await self._retry_init(failed.id, reserved, wait)
        key = "restores" if kind == "snap-start" else "inits"
        getattr(self.stats, key).append(init_ms)
        if env.init_cpu_ms is not None:
            self.stats.init_cpus.append(env.init_cpu_ms)
        self.stats.event(
            "env_ready",
            env=env.id,
            pid=env.pid,
            kind=kind,
            **{key[:-1] + "_ms": round(init_ms, 2)},
            init_cpu_ms=None if env.init_cpu_ms is None else round(env.init_cpu_ms, 2),
            init_wait_ms=round(env.init_wait_ms, 2),
        )
        return env

    async def _retry_init(self, env_id: str, reserved: bool, wait: MachineWait | None = None) -> Environment:
        """The suppressed-init retry: init again, inside the first invocation's function timeout (ahead of
        every queued start: it is part of a running invocation)."""
        try:
            env, init_ms = await self._gated_init("on-demand", self.timeout_s, reserved, wait, env_id, first=True)
        except InitFailure as failure:
            failed = getattr(failure, "env", None)
            if failed is None:
                raise
            if failure.status == "timeout":
                failure.error = {
                    "errorType": "Sandbox.Timedout",
                    "errorMessage": f"Task timed out after {self.timeout_s:.2f} seconds",
                }
            self._init_failed(failed, failure, "invoke")
            raise
        env.reinit_ms = init_ms
        self.stats.inits.append(init_ms)
        if env.init_cpu_ms is not None:
            self.stats.init_cpus.append(env.init_cpu_ms)
        self.stats.report(init_report_line(init_ms, "invoke", "success", machine_wait_ms=env.init_wait_ms))
        self.stats.event(
            "env_ready",
            env=env.id,
            pid=env.pid,
            kind="on-demand",
            init_ms=round(init_ms, 2),
            phase="invoke",
            init_cpu_ms=None if env.init_cpu_ms is None else round(env.init_cpu_ms, 2),
        )
        return env

    def _forget(self, env: Environment) -> None:
        self.envs.pop(env.id, None)
        shutil.rmtree(self.workdir / "envs" / env.id, ignore_errors=True)

    async def stop_environment(self, env: Environment, reason: str, swept: bool = False) -> None:
        """Stop ``env`` (every process it started; ``swept``: the lab has killed them already) and log its
        stop, once."""
        await env.stop(reason, swept=swept)
        self._forget(env)
        if not env.stop_logged:
            env.stop_logged = True
            self.stats.event(
                "env_stop",
                env=env.id,
                reason=env.stop_reason or reason,
                invocations=env.invocations,
                max_memory_mb=env.max_memory_mb,
            )

    async def provision(self, count: int) -> None:
        """Start ``count`` environments ahead of traffic (provisioned concurrency)."""
        results = await asyncio.gather(
            *(self.start_environment("provisioned-concurrency", reserved=False) for _ in range(count)),
            return_exceptions=True,
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]

    # ---- invocations ---------------------------------------------------------------------------
    def _idle(self) -> Environment | None:
        candidates = [e for e in self.envs.values() if e.state == "idle" and not e.reserved and e.alive]
        return max(candidates, key=lambda e: e.last_used) if candidates else None

    async def invoke(self, payload: bytes, request_id: str | None = None, wait: MachineWait | None = None) -> Result:
        """Run one invocation; raises Throttled or InitFailure. ``wait`` (the caller's, to see it grow)
        accrues the request's machine wait."""
        request_id = request_id or str(uuid.uuid4())
        wait = wait if wait is not None else MachineWait()
        if self.closing:
            raise InitFailure(dict(SHUTDOWN_ERROR), 0.0)
        env = self._idle()
        cold = env is None
        if env is None:
            if len(self.envs) + self.queued >= self.config.max_concurrency:
                self.stats.counts["throttles"] += 1
                self.stats.event("throttle", environments=len(self.envs) + self.queued)
                raise Throttled()
            kind = "snap-start" if self.config.snapshot else "on-demand"
            self.stats.counts["cold_starts"] += 1
            env = await self.start_environment(kind, reserved=True, wait=wait)
        env.state = "busy"
        env.reserved = False
        reinit_ms = env.reinit_ms if cold else None
        timeout_s = self.timeout_s - (reinit_ms or 0) / 1000  # a retried init ate into the function timeout
        if not self.closing:
            self.stats.report(start_line(request_id))
        outcome = await env.invoke(payload, request_id, timeout_s, wait)
        if reinit_ms:
            outcome.duration_ms += reinit_ms
        queue_ms = wait.total_s() * 1000
        self._record(env, outcome, cold, queue_ms)
        if not env.alive:
            await self.stop_environment(env, env.stop_reason or "exited")
        return Result(outcome, env.id, cold, env.init_ms if cold else None, env.init_cpu_ms if cold else None, queue_ms)

    def _record(self, env: Environment, outcome: Outcome, cold: bool, queue_ms: float = 0.0) -> None:
        stats = self.stats
        stats.counts["invocations"] += 1
        stats.queue_waits.append(queue_ms)
        stats.durations.append(outcome.duration_ms)
        if outcome.cpu_ms is not None:
            stats.cpus.append(outcome.cpu_ms)
        if outcome.kind != "ok":
            stats.errors[outcome.error.get("errorType", outcome.kind)] += 1
        snap = env.kind == "snap-start"
        init = env.init_ms if cold and not snap and env.reinit_ms is None else None
        restore = env.init_ms if cold and snap else None
        status = {"ok": None, "error": None, "timeout": "timeout"}.get(outcome.kind, "error")
        error_type = outcome.error.get("errorType") if outcome.kind not in ("ok", "error") else None
        if self.closing:  # the lab is stopping: its one line, not a REPORT per cut-off invocation
            stats.event(
                "invoke", env=env.id, request_id=outcome.request_id, outcome=outcome.kind, cold=cold, **outcome.error
            )
            return
        stats.report(end_line(outcome.request_id))
        stats.report(
            report_line(
                outcome.request_id,
                outcome.duration_ms,
                self.config.memory_mb,
                outcome.max_memory_mb,
                init_ms=init,
                restore_ms=restore,
                billed_restore_ms=env.restore_hooks_ms if restore is not None else None,
                status=status,
                error_type=error_type,
                cpu_ms=outcome.cpu_ms,
                init_cpu_ms=env.init_cpu_ms if cold else None,
                machine_wait_ms=queue_ms,
            )
        )
        stats.event(
            "invoke",
            env=env.id,
            request_id=outcome.request_id,
            outcome=outcome.kind,
            cold=cold,
            duration_ms=round(outcome.duration_ms, 3),
            max_memory_mb=outcome.max_memory_mb,
            init_ms=None if init is None else round(init, 2),
            restore_ms=None if restore is None else round(restore, 2),
            cpu_ms=None if outcome.cpu_ms is None else round(outcome.cpu_ms, 2),
            init_cpu_ms=None if not cold or env.init_cpu_ms is None else round(env.init_cpu_ms, 2),
            queue_ms=round(queue_ms, 2),
            wait_ms=round(outcome.wait_ms, 2),
            **outcome.error,
        )

    # ---- reaping and shutdown -------------------------------------------------------------------
    def start_reaper(self) -> None:
        self._reaper = asyncio.get_running_loop().create_task(self._reap_forever())

    async def _reap_forever(self) -> None:
        period = min(1.0, self.idle_timeout_s / 4)
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for env in list(self.envs.values()):
                if env.state == "idle" and not env.reserved and not env.alive:
                    await self.stop_environment(env, "exited while idle")
                elif (
                    env.state == "idle"
                    and not env.reserved
                    and env.kind != "provisioned-concurrency"
                    and now - env.last_used >= self.idle_timeout_s
                ):
                    self.stats.counts["reaped"] += 1
                    await self.stop_environment(env, "idle timeout")

    async def _kill_everything(self) -> None:
        """Kill every process the lab started, at once: its cgroup, or one sweep for the whole lab (not one per
        environment)."""
        if self.cgroup is not None:
            self.cgroup.kill()
            if all(e.cgroup is not None for e in self.envs.values()):
                return
        roots = [e.pid for e in self.envs.values() if e.pid and e.alive]
        markers = {proctree.LAB_ID_VAR: self.lab_id} if self.lab_id else None
        await asyncio.get_running_loop().run_in_executor(None, proctree.kill_lab, roots, markers)

    async def shutdown(self) -> None:
        """Stop everything: no new environment after this starts (queued starts fail, launches in flight are
        killed as they return), every process killed in one sweep, then every environment closed."""
        self.closing = True
        self.stats.event("lab_stopping", environments=len(self.envs), queued=self.queued)
        self.gate.close()
        if self._reaper is not None:
            self._reaper.cancel()
        await self._kill_everything()
        for _ in range(500):  # launches in flight (each a few ms): they kill what they started as they return
            if not self.spawning:
                break
            await asyncio.sleep(0.01)
        await asyncio.gather(
            *(self.stop_environment(e, "lab stopped", swept=True) for e in list(self.envs.values())),
            return_exceptions=True,
        )
        await self.launcher.close()
        await self._kill_everything()  # anything left that any environment (or the template) started

    def describe(self) -> dict:
        """Environments by state (``queued`` for the CPU gate, ``init``/``starting``, ``idle``, ``busy``,
        ``warm`` = idle + busy, ``frozen``), memory totals, the CPU gate, and one row per environment."""
        states = {"init": 0, "idle": 0, "busy": 0}
        frozen = 0
        rss_kb = pss_kb = 0
        rows = []
        for env in list(self.envs.values()):
            states[env.state] = states.get(env.state, 0) + 1
            frozen += bool(env.frozen)
            if env.pid:
                rss_kb += read_proc_kb(env.pid, ("VmRSS",)).get("VmRSS", 0)
                pss_kb += read_proc_kb(env.pid, ("Pss",), "smaps_rollup").get("Pss", 0)
            rows.append(env.describe())
        return {
            "environments": {
                **states,
                "queued": self.queued,
                "starting": states["init"],
                "warm": states["idle"] + states["busy"],
                "frozen": frozen,
                "total": len(self.envs) + self.queued,
            },
            "cpu_gate": {
                "cores": self.gate.cores,
                "demand": round(self.gate.demand(), 2),
                "queued": self.queued,
                "admitted": self.gate.admitted,
            },
            "rss_mb_total": round(rss_kb / 1024, 1),
            "pss_mb_total": round(pss_kb / 1024, 1),
            "envs": rows,
        }
