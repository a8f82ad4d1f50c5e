"""LabConfig: every knob of the lab, with Lambda's and the study's defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from coldbrew.durations import parse_duration
from coldbrew.errors import ConfigError

DEFAULT_HANDLER = "coldbrew.aws.handler"


@dataclass
class LabConfig:
    """What the lab hosts and how it scales. Durations are seconds (or strings like ``"500ms"``).

    ``model_uri``/``source`` are optional conveniences: the lab passes ``MODEL_URI`` and
    ``MODEL_SOURCE`` to the function (uploading to a local SeaweedFS first for ``source="s3"``)
    and never reads the model itself.

    ``warm_secret`` opens the ``POST /_warm`` route as ``coldbrew package --warm-route`` does: the function
    gets it as ``COLDBREW_WARM_SECRET`` and answers only requests that present it. Unset, ``/_warm`` is a
    route the HTTP API does not have (404), as deployed by default (coldbrew/lab/routes.py).

    ``python`` replaces the interpreter that runs the function: each environment is then exactly
    ``PYTHON... -m awslambdaric HANDLER`` with no lab code in the child, so e.g. ``[sys.executable, "-S"]`` with
    ``env={"PYTHONPATH": "TASK_ROOT:RUNTIME_DIR"}`` gives the function only that path plus the standard library,
    as Lambda's managed runtime does (``coldbrew package``'s zip smoke test). Not with ``snapshot``.
    """

    handler: str = DEFAULT_HANDLER
    task_root: str | Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    model_uri: str | Path | None = None
    source: str = "disk"
    evict_page_cache: bool = False
    function_name: str = "coldbrew-lab"
    memory_mb: int = 4500
    timeout: float | str = 30.0
    gateway_timeout: float | str = 29.0
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

    def __post_init__(self) -> None:
        for name in ("timeout", "gateway_timeout", "init_timeout", "idle_timeout"):
            value = parse_duration(getattr(self, name))
            if value <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive")
            setattr(self, name, value)
        if self.source not in ("disk", "s3"):
            raise ConfigError(f"--source must be disk or s3, not {self.source!r}")
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
