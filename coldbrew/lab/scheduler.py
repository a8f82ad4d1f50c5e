"""The scheduler: which environment runs a request, when environments start and stop.

Mirrors Lambda's scaling for synchronous invokes
(https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html): a request takes an
idle environment or starts a new one (a cold start); one request per environment; at the
concurrency limit further requests are throttled, not queued; idle environments are reaped.
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
from coldbrew.lab.config import LabConfig
from coldbrew.lab.environment import Environment, InitFailure, Outcome, read_proc_kb
from coldbrew.lab.staging import evict_page_cache
from coldbrew.lab.stats import Stats, report_line


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


class Scheduler:
    """Owns the environments of one function."""

    def __init__(self, config: LabConfig, launcher, base_env: dict[str, str], stats: Stats, workdir: Path,
                 evict: list[Path]):
        self.config = config
        self.launcher = launcher
        self.base_env = base_env
        self.stats = stats
        self.workdir = workdir
        self.evict = evict
        self.envs: dict[str, Environment] = {}
        self.function_arn = f"arn:aws:lambda:{config.region}:123456789012:function:{config.function_name}"
        self._ids = itertools.count(1)
        self._reaper: asyncio.Task | None = None
        self.closing = False

    # ---- environments -------------------------------------------------------------------------
    def _variables(self, env: Environment, api: str, tmpdir: Path) -> dict[str, str]:
        """The environment variables Lambda defines for a function
        (https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime)."""
        stream = time.strftime("%Y/%m/%d") + f"/[$LATEST]{uuid.uuid4().hex}"
        return {**self.base_env, "AWS_LAMBDA_RUNTIME_API": api, "AWS_LAMBDA_LOG_STREAM_NAME": stream,
                "AWS_LAMBDA_INITIALIZATION_TYPE": env.kind, "TMPDIR": str(tmpdir), "COLDBREW_LAB_ENV": env.id}

    def init_limit(self, kind: str) -> float:
        """Seconds init may take: --init-timeout on demand; for provisioned concurrency (and a
        SnapStart snapshot) Lambda allows the higher of 130 s and the function timeout."""
        return max(130.0, self.config.timeout) if kind == "provisioned-concurrency" else self.config.init_timeout

    async def start_environment(self, kind: str, *, reserved: bool) -> Environment:
        """Start one environment and wait for its init; raises InitFailure (environment discarded)."""
        if self.config.evict_page_cache and self.evict:
            self.stats.event("page_cache_evicted", files=evict_page_cache(self.evict))
        env = Environment(f"env-{next(self._ids):04d}", kind=kind, memory_mb=self.config.memory_mb,
                          timeout_s=self.config.timeout, function_arn=self.function_arn)
        env.reserved = reserved
        self.envs[env.id] = env
        tmpdir = self.workdir / "envs" / env.id / "tmp"
        tmpdir.mkdir(parents=True)
        try:
            api = await env.open_api()
            pid, popen = await self.launcher.launch(self._variables(env, api, tmpdir))
            env.attach(pid, popen)
            self.stats.event("env_start", env=env.id, pid=pid, kind=kind)
            init_ms = await env.wait_ready(self.init_limit(kind))
        except InitFailure as failure:
            self._forget(env)
            if self.closing:
                raise
            self.stats.errors[failure.error["errorType"]] += 1
            self.stats.event("init_error", env=env.id, init_ms=round(failure.init_ms, 2), **failure.error)
            self.stats.report(f"INIT_REPORT Init Duration: {failure.init_ms:.2f} ms\tPhase: init\tStatus: error\t"
                              f"Error Type: {failure.error['errorType']}")
            raise
        except BaseException:
            await env.stop("lab error")
            self._forget(env)
            raise
        key = "restores" if kind == "snap-start" else "inits"
        getattr(self.stats, key).append(init_ms)
        if env.init_cpu_ms is not None:
            self.stats.init_cpus.append(env.init_cpu_ms)
        self.stats.event("env_ready", env=env.id, pid=pid, kind=kind, **{key[:-1] + "_ms": round(init_ms, 2)},
                         init_cpu_ms=None if env.init_cpu_ms is None else round(env.init_cpu_ms, 2))
        return env

    def _forget(self, env: Environment) -> None:
        self.envs.pop(env.id, None)
        shutil.rmtree(self.workdir / "envs" / env.id, ignore_errors=True)

    async def stop_environment(self, env: Environment, reason: str) -> None:
        await env.stop(reason)
        self._forget(env)
        self.stats.event("env_stop", env=env.id, reason=reason, invocations=env.invocations,
                         max_memory_mb=env.max_memory_mb)

    async def provision(self, count: int) -> None:
        """Start ``count`` environments ahead of traffic (provisioned concurrency)."""
        results = await asyncio.gather(*(self.start_environment("provisioned-concurrency", reserved=False)
                                         for _ in range(count)), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]

    # ---- invocations ---------------------------------------------------------------------------
    def _idle(self) -> Environment | None:
        candidates = [e for e in self.envs.values() if e.state == "idle" and not e.reserved and e.alive]
        return max(candidates, key=lambda e: e.last_used) if candidates else None

    async def invoke(self, payload: bytes) -> Result:
        """Run one invocation; raises Throttled or InitFailure."""
        env = self._idle()
        cold = env is None
        if env is None:
            if len(self.envs) >= self.config.max_concurrency:
                self.stats.counts["throttles"] += 1
                self.stats.event("throttle", environments=len(self.envs))
                raise Throttled()
            kind = "snap-start" if self.config.snapshot else "on-demand"
            self.stats.counts["cold_starts"] += 1
            env = await self.start_environment(kind, reserved=True)
        env.state = "busy"
        env.reserved = False
        outcome = await env.invoke(payload)
        self._record(env, outcome, cold)
        if not env.alive:
            await self.stop_environment(env, env.stop_reason or "exited")
        return Result(outcome, env.id, cold, env.init_ms if cold else None, env.init_cpu_ms if cold else None)

    def _record(self, env: Environment, outcome: Outcome, cold: bool) -> None:
        stats = self.stats
        stats.counts["invocations"] += 1
        stats.durations.append(outcome.duration_ms)
        if outcome.cpu_ms is not None:
            stats.cpus.append(outcome.cpu_ms)
        if outcome.kind != "ok":
            stats.errors[outcome.error.get("errorType", outcome.kind)] += 1
        snap = env.kind == "snap-start"
        init = env.init_ms if cold and not snap else None
        restore = env.init_ms if cold and snap else None
        status = {"ok": None, "error": None, "timeout": "timeout"}.get(outcome.kind, "error")
        error_type = outcome.error.get("errorType") if outcome.kind not in ("ok", "error") else None
        stats.report(report_line(outcome.request_id, outcome.duration_ms, self.config.memory_mb,
                                 outcome.max_memory_mb, init_ms=init, restore_ms=restore, status=status,
                                 error_type=error_type, cpu_ms=outcome.cpu_ms,
                                 init_cpu_ms=env.init_cpu_ms if cold else None))
        stats.event("invoke", env=env.id, request_id=outcome.request_id, outcome=outcome.kind, cold=cold,
                    duration_ms=round(outcome.duration_ms, 3), max_memory_mb=outcome.max_memory_mb,
                    init_ms=None if init is None else round(init, 2),
                    restore_ms=None if restore is None else round(restore, 2),
                    cpu_ms=None if outcome.cpu_ms is None else round(outcome.cpu_ms, 2),
                    init_cpu_ms=None if not cold or env.init_cpu_ms is None else round(env.init_cpu_ms, 2),
                    **outcome.error)

    # ---- reaping and shutdown -------------------------------------------------------------------
    def start_reaper(self) -> None:
        self._reaper = asyncio.get_running_loop().create_task(self._reap_forever())

    async def _reap_forever(self) -> None:
        period = min(1.0, self.config.idle_timeout / 4)
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for env in list(self.envs.values()):
                if env.state == "idle" and not env.reserved and not env.alive:
                    await self.stop_environment(env, "exited while idle")
                elif (env.state == "idle" and not env.reserved and env.kind != "provisioned-concurrency"
                      and now - env.last_used >= self.config.idle_timeout):
                    await self.stop_environment(env, "idle timeout")

    async def shutdown(self) -> None:
        """Stop every environment and the launcher."""
        self.closing = True
        if self._reaper is not None:
            self._reaper.cancel()
        await asyncio.gather(*(self.stop_environment(e, "lab stopped") for e in list(self.envs.values())))
        await self.launcher.close()

    def describe(self) -> dict:
        """Environments by state, memory totals and one row per environment."""
        states = {"init": 0, "idle": 0, "busy": 0}
        rss_kb = pss_kb = 0
        rows = []
        for env in list(self.envs.values()):
            states[env.state] = states.get(env.state, 0) + 1
            if env.pid:
                rss_kb += read_proc_kb(env.pid, ("VmRSS",)).get("VmRSS", 0)
                pss_kb += read_proc_kb(env.pid, ("Pss",), "smaps_rollup").get("Pss", 0)
            rows.append(env.describe())
        return {"environments": {**states, "total": len(self.envs)}, "rss_mb_total": round(rss_kb / 1024, 1),
                "pss_mb_total": round(pss_kb / 1024, 1), "envs": rows}
