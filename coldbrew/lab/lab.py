"""``Lab``: the front door, the scheduler and the environments, run on a background thread.

from coldbrew.lab import Lab, LabConfig

with Lab(LabConfig(model_uri="model.brew", max_concurrency=10)) as lab:
    requests.post(lab.url + "/predict", json={...})
    print(lab.stats()["cold_starts"])
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import threading
import uuid
from pathlib import Path
from typing import BinaryIO

from coldbrew.errors import ColdbrewError
from coldbrew.lab import proctree
from coldbrew.lab.cgroups import LabCgroup
from coldbrew.lab.config import LabConfig
from coldbrew.lab.front_door import build_front_door
from coldbrew.lab.httpserver import FRONT_DOOR_LIMITS, server_port, start_server
from coldbrew.lab.launchers import ProcessLauncher, SnapshotLauncher
from coldbrew.lab.routes import WARM_SECRET_ENV, route
from coldbrew.lab.scheduler import Scheduler
from coldbrew.lab.staging import StagedModel, stage_model
from coldbrew.lab.stats import Stats

FRONT_DOOR_MAX_BODY = 10 * 1024 * 1024 + 1  # API Gateway's payload quota; the front doors' own limits are lower
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "VIRTUAL_ENV", "SSL_CERT_FILE", "COLDBREW_CACHE")


class Lab:
    """A running lab. ``start()`` returns once the front door listens (and provisioned
    environments are ready); ``stop()`` kills every child process. A context manager.

    Args:
        config: every knob (``LabConfig``); or pass its fields as keyword ``options`` instead.

    Raises:
        ConfigError: an invalid option (from ``LabConfig``), at construction.
    """

    def __init__(self, config: LabConfig | None = None, **options):
        self.config = config or LabConfig(**options)
        self.port: int | None = None
        self.template_init_ms: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._scheduler: Scheduler | None = None
        self._server: asyncio.Server | None = None
        self._staged: StagedModel | None = None
        self._output: BinaryIO | None = None
        self._workdir: Path | None = None
        self.stats_log: Stats | None = None
        self.lab_id = uuid.uuid4().hex  # marks every process this lab starts (coldbrew.lab.proctree)
        self.cgroup: LabCgroup | None = None  # where the machine allows it (coldbrew.lab.cgroups)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` of the front door."""
        if self.port is None:
            raise ColdbrewError("the lab is not running")
        return f"http://127.0.0.1:{self.port}"

    # ---- start / stop ---------------------------------------------------------------------------
    def start(self) -> Lab:
        """Stage the model, start the front door and any provisioned environments (once); returns ``self``.

        Raises:
            ConfigError: the model file is missing or its source does not fit (``--source``).
            ColdbrewError: a provisioned or snapshot environment failed its init (everything started is stopped).
        """
        if self._loop is not None:
            return self
        self._workdir = Path(tempfile.mkdtemp(prefix="coldbrew-lab-"))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="coldbrew-lab", daemon=True)
        self._thread.start()
        try:
            self._staged = stage_model(
                self.config.model_uri, self.config.source, self._workdir, self.config.bucket, self._network()
            )
            self._call(self._astart())
        except BaseException:
            self.stop()
            raise
        return self

    def _network(self):
        """The S3 network profile (None: loopback as it is), for ``source="s3"`` only."""
        from coldbrew.lab.s3shaper import network_profile

        c = self.config
        if c.source != "s3":
            return None
        return network_profile(
            c.s3_network, bandwidth=c.s3_bandwidth, first_byte=c.s3_first_byte, aggregate=c.s3_aggregate
        )

    def _base_env(self) -> dict[str, str]:
        c = self.config
        env = {k: os.environ[k] for k in INHERITED if k in os.environ}
        path = [str(c.task_root)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        env.update(
            {
                "PYTHONPATH": os.pathsep.join(path),
                "PYTHONUNBUFFERED": "1",
                "TZ": ":UTC",
                "_HANDLER": c.handler,
                "LAMBDA_TASK_ROOT": str(c.task_root),
                "LAMBDA_RUNTIME_DIR": str(Path(sys.executable).resolve().parent),
                "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}",
                "AWS_LAMBDA_FUNCTION_NAME": c.function_name,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(c.memory_mb),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{c.function_name}",
                "AWS_REGION": c.region,
                "AWS_DEFAULT_REGION": c.region,
                proctree.LAB_ID_VAR: self.lab_id,
            }
        )
        if c.wsgi:
            env["COLDBREW_LAB_WSGI"] = c.wsgi
        if c.asgi:
            env["COLDBREW_LAB_ASGI"] = c.asgi
        env.update(self._staged.env if self._staged else {})
        env.update({str(k): str(v) for k, v in c.env.items()})
        if c.warm_secret:
            env[WARM_SECRET_ENV] = c.warm_secret
        return env

    async def _astart(self) -> None:
        c = self.config
        self.stats_log = Stats(c.log, sys.stderr if c.report else None)
        if c.function_output:
            self._output = open(c.function_output, "ab")
        assert self._workdir is not None
        # Without --function-output the functions write to the lab's stderr (fd 2), never its stdout: stdout carries
        # the lab's own lines, its URL first, which callers read (docs/lab.md).
        output = self._output if self._output is not None else 2
        snapshot = SnapshotLauncher(c.handler, str(c.cwd), output, c.freeze) if c.snapshot else None
        launcher = snapshot or ProcessLauncher(c.handler, str(c.cwd), output, c.python)
        base_env = self._base_env()
        self.cgroup = LabCgroup.create(self.lab_id) if c.cgroups else None
        self._scheduler = Scheduler(
            c,
            launcher,
            base_env,
            self.stats_log,
            self._workdir,
            self._staged.evict if self._staged else [],
            self.cgroup,
        )
        if snapshot is not None:
            template_env = {**base_env, "TMPDIR": str(self._workdir), "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"}
            error = await snapshot.open(template_env, self._scheduler.init_limit("provisioned-concurrency"))
            self.template_init_ms = snapshot.init_ms
            self.stats_log.event("snapshot", init_ms=round(snapshot.init_ms or 0.0, 2), **(error or {}))
            if error:
                raise ColdbrewError(f"snapshot init failed: {error['errorType']}: {error['errorMessage']}")
        gateway_timeout = None if c.gateway_timeout is None else float(c.gateway_timeout)
        front_door = build_front_door(self._scheduler, c.api, gateway_timeout, self._describe)
        server = await start_server(
            route(front_door, warm_route=bool(c.warm_secret)),
            c.port,
            max_body=FRONT_DOOR_MAX_BODY,
            limits=FRONT_DOOR_LIMITS,
        )
        self._server = server
        self.port = server_port(server)
        self._scheduler.start_reaper()
        if c.provisioned:
            try:
                await self._scheduler.provision(c.provisioned)
            except Exception as exc:
                raise ColdbrewError(f"provisioned environments failed to initialise: {exc}") from exc
        self.stats_log.event(
            "lab_start",
            url=self.url,
            handler=c.handler,
            snapshot=c.snapshot,
            provisioned=c.provisioned,
            max_concurrency=c.max_concurrency,
            memory_mb=c.memory_mb,
        )

    def stop(self) -> None:
        """Stop every environment, the template, the front door and S3; idempotent."""
        try:
            if self._loop is not None and self._loop.is_running():
                try:
                    self._call(self._astop(), timeout=20)
                except TimeoutError:  # a stuck loop must not leave anything behind: kill from this thread
                    self._kill_now()
                finally:
                    self._loop.call_soon_threadsafe(self._loop.stop)
                    if self._thread is not None:
                        self._thread.join(10)
                    if not self._loop.is_running():
                        self._loop.close()
        finally:
            self._cleanup()

    def _kill_now(self) -> None:
        """Kill every process this lab started, without its loop: its cgroup, or a sweep by its id."""
        if self.cgroup is not None:
            self.cgroup.close()
        else:
            proctree.kill_lab([], {proctree.LAB_ID_VAR: self.lab_id})

    def _cleanup(self) -> None:
        self._loop = None
        self.port = None
        if self._staged is not None:
            self._staged.close()
            self._staged = None
        if self._output is not None:
            self._output.close()
            self._output = None
        if self.stats_log is not None:
            self.stats_log.close()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    async def _astop(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._scheduler is not None:
            await self._scheduler.shutdown()
        if self.cgroup is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.cgroup.close)
        if self.stats_log is not None:
            self.stats_log.event("lab_stop")
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # no worker thread may call back into the loop once it is closed ("Event loop is closed")
        await asyncio.get_running_loop().shutdown_default_executor()

    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- observing ------------------------------------------------------------------------------
    def _call(self, coro, timeout: float | None = None):
        if self._loop is None:
            raise ColdbrewError("the lab is not running")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def _describe(self) -> dict:
        assert self.stats_log is not None and self._scheduler is not None  # only called while running
        summary = self.stats_log.summary()
        summary.update(self._scheduler.describe())
        summary["config"] = {
            "handler": self.config.handler,
            "api": self.config.api,
            "memory_mb": self.config.memory_mb,
            "max_concurrency": self.config.max_concurrency,
            "provisioned": self.config.provisioned,
            "snapshot": self.config.snapshot,
            "source": self.config.source,
        }
        if self._staged is not None and self._staged.shaper is not None:
            shaper = self._staged.shaper
            summary["config"]["s3_network"] = shaper.profile.describe()
            summary["s3_network"] = {"requests": shaper.requests, "bytes": shaper.bytes_down}
        if self.template_init_ms is not None:
            summary["snapshot_init_ms"] = round(self.template_init_ms, 2)
        return summary

    def stats(self) -> dict:
        """The same JSON as ``GET /_lab/stats``."""

        async def snapshot():
            return self._describe()

        return self._call(snapshot(), timeout=10)

    @property
    def model_env(self) -> dict[str, str]:
        """The variables the function gets for its model (``MODEL_URI``, and for ``s3`` the endpoint and
        credentials — the shaper's endpoint with ``s3_network``), so a tool can read the model as the function does."""
        return dict(self._staged.env) if self._staged is not None else {}

    @property
    def s3_evict(self) -> list[Path]:
        """The files whose page cache is dropped before each cold start (the model, SeaweedFS's data)."""
        return list(self._staged.evict) if self._staged is not None else []

    def pids(self) -> list[int]:
        """Process ids of every environment (and the snapshot template)."""
        pids = [e.pid for e in self._scheduler.envs.values() if e.pid] if self._scheduler else []
        template = getattr(self._scheduler.launcher, "template", None) if self._scheduler else None
        return pids + ([template.pid] if template is not None else [])
