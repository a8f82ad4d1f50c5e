"""LabConfig: every knob of the lab, with Lambda's and the study's defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from coldbrew.durations import parse_duration
from coldbrew.errors import ConfigError

DEFAULT_HANDLER = "coldbrew.aws.handler"
HOSTING_HANDLER = "coldbrew.lab.hosting.handler"
APIS = ("http", "rest", "url", "alb")
# Integration timeouts of each front door (https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html);
# a function URL or an ALB target waits for the function timeout.
GATEWAY_TIMEOUTS = {"http": 30.0, "rest": 29.0, "url": None, "alb": None}


@dataclass
class LabConfig:
    """What the lab hosts and how it scales. Durations are seconds (or strings like ``"500ms"``).

    ``model_uri``/``source`` are optional conveniences: the lab passes ``MODEL_URI`` and
    ``MODEL_SOURCE`` to the function (uploading to a local SeaweedFS first for ``source="s3"``, into
    ``bucket``) and never reads the model itself. ``wsgi``/``asgi`` (``module:app``) host a plain web
    app through a maintained adapter instead of a handler. ``task_root`` is the code directory (on
    ``sys.path``, ``LAMBDA_TASK_ROOT``); ``cwd`` the function's working directory (default: task_root,
    as on Lambda). ``api`` picks the front door; ``gateway_timeout`` defaults to that front door's
    integration timeout (none for ``url`` and ``alb``).

    ``warm_secret`` opens the ``POST /_warm`` route as ``coldbrew package --warm-route`` does: the function
    gets it as ``COLDBREW_WARM_SECRET`` and answers only requests that present it. Unset, ``/_warm`` is a
    route the HTTP API does not have (404), as deployed by default (coldbrew/lab/routes.py).

    ``python`` replaces the interpreter that runs the function: each environment is then exactly
    ``PYTHON... -m awslambdaric HANDLER`` with no lab code in the child, so e.g. ``[sys.executable, "-S"]`` with
    ``env={"PYTHONPATH": "TASK_ROOT:RUNTIME_DIR"}`` gives the function only that path plus the standard library,
    as Lambda's managed runtime does (``coldbrew package``'s zip smoke test). Not with ``snapshot``.

    ``cpus`` is how many cores the CPU gate lets starting environments use at once (default: the cores this
    process may run on; docs/lab.md, "The CPU model"). ``cgroups`` False keeps environments out of cgroups
    even where the machine allows them (the process-tree fallback, as on a machine that does not).
    """

    handler: str = DEFAULT_HANDLER
    task_root: str | Path | None = None
    cwd: str | Path | None = None
    wsgi: str | None = None
    asgi: str | None = None
    api: str = "http"
    bucket: str | None = None
    freeze: bool = True
    env: dict[str, str] = field(default_factory=dict)
    model_uri: str | Path | None = None
    source: str = "disk"
    evict_page_cache: bool = False
    function_name: str = "coldbrew-lab"
    memory_mb: int = 4500
    timeout: float | str = 30.0
    gateway_timeout: float | str | None = None
    init_timeout: float | str = 10.0
    idle_timeout: float | str = 600.0
    max_concurrency: int = 100
    provisioned: int = 0
    snapshot: bool = False
    port: int = 0
    log: str | Path | None = None
    report: bool = True
    function_output: str | Path | None = None
    region: str = "us-east-1"
    warm_secret: str | None = None
    python: list[str] | None = None
    cpus: int | None = None
    cgroups: bool = True
    # S3 over a shaped network (coldbrew/lab/s3shaper.py, docs/lab.md): "aws" (S3's first-byte latency and
    # per-connection bandwidth, the function's network share) or "none" (loopback as it is); explicit figures
    # override the preset's. Only with source="s3".
    s3_network: str = "none"
    s3_bandwidth: str | float | None = None
    s3_first_byte: str | float | None = None
    s3_aggregate: str | float | None = None

    def __post_init__(self) -> None:
        if self.api not in APIS:
            raise ConfigError(f"--api must be one of {', '.join(APIS)}, not {self.api!r}")
        if self.gateway_timeout is None:
            self.gateway_timeout = GATEWAY_TIMEOUTS[self.api]
        if self.wsgi and self.asgi:
            raise ConfigError("give --wsgi or --asgi, not both")
        for name, spec in (("wsgi", self.wsgi), ("asgi", self.asgi)):
            if spec is not None:
                module, _, attr = spec.partition(":")
                parts = module.split(".") + (attr.split(".") if attr else [])
                if not all(p.isidentifier() for p in parts) or (":" in spec and not attr):
                    raise ConfigError(f"--{name} must look like module:app, not {spec!r}")
                if self.handler not in (DEFAULT_HANDLER, HOSTING_HANDLER):
                    raise ConfigError(f"give --handler or --{name}, not both")
                self.handler = HOSTING_HANDLER
        if self.bucket is not None:
            if self.source != "s3":
                raise ConfigError("--bucket needs --source s3")
            if not (3 <= len(self.bucket) <= 63) or not all(
                c.islower() or c.isdigit() or c in ".-" for c in self.bucket
            ):
                raise ConfigError(f"--bucket {self.bucket!r} is not a valid S3 bucket name")
        for name in ("timeout", "gateway_timeout", "init_timeout", "idle_timeout"):
            if getattr(self, name) is None:
                continue
            value = parse_duration(getattr(self, name))
            if value <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive")
            setattr(self, name, value)
        if self.source not in ("disk", "s3"):
            raise ConfigError(f"--source must be disk or s3, not {self.source!r}")
        if self.cpus is not None and self.cpus < 1:
            raise ConfigError("--cpus must be at least 1")
        from coldbrew.lab.s3shaper import network_profile

        given = [n for n in ("s3_bandwidth", "s3_first_byte", "s3_aggregate") if getattr(self, n) is not None]
        if given and self.source != "s3":
            raise ConfigError(f"--{given[0].replace('_', '-')} needs --source s3")

        network_profile(  # checked here, built when the model is staged
            self.s3_network, bandwidth=self.s3_bandwidth, first_byte=self.s3_first_byte, aggregate=self.s3_aggregate
        )
        if self.max_concurrency < 1:
            raise ConfigError("--max-concurrency must be at least 1")
        if not 0 <= self.provisioned <= self.max_concurrency:
            raise ConfigError("--provisioned must be between 0 and --max-concurrency")
        if self.memory_mb < 16:
            raise ConfigError("--memory-mb must be at least 16")
        if "." not in self.handler:
            raise ConfigError(f"--handler must look like module.function, not {self.handler!r}")
        if self.python is not None and (not self.python or self.snapshot):
            raise ConfigError("python must be a non-empty interpreter command, and cannot be combined with snapshot")
        self.task_root = Path(self.task_root or Path.cwd()).resolve()
        self.cwd = Path(self.cwd).resolve() if self.cwd else self.task_root
        for name in ("task_root", "cwd"):
            if not getattr(self, name).is_dir():
                raise ConfigError(f"--{name.replace('_', '-')} {getattr(self, name)} is not a directory")
