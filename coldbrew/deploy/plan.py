"""The plan of one `coldbrew package` run: everything the generated files depend on, as values.

Its own module so that :mod:`coldbrew.deploy.render` (which turns a plan into files) and
:mod:`coldbrew.deploy.package` (which makes the plan) do not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from coldbrew.sources.config import parse_s3_uri


@dataclass
class Plan:
    """Everything the generated files depend on."""

    setup: str
    name: str
    model_arg: str
    model_path: Path | None  # the local model file, if there is one
    model_name: str
    model_format: str  # "brew" | "pickle"
    model_source: str  # what the function reads: "DISK" | "S3"
    model_uri: str  # MODEL_URI as the function sees it
    s3_uri: str | None
    memory: int
    timeout: int
    arch: str
    native_build: bool
    warm_route: bool = False  # route POST /_warm through the HTTP API (secret-protected)
    auth: str = "none"  # "none" | "iam": who may call the HTTP API
    cors: tuple[str, ...] = ()  # origins the HTTP API's CorsConfiguration allows (browsers' cross-origin calls)

    @property
    def model_in_artifact(self) -> bool:
        """True when the model is copied into the image or zip."""
        return self.model_source == "DISK"

    @property
    def s3_bucket(self) -> str:
        assert self.s3_uri is not None, "only S3-sourced plans have a bucket"
        return parse_s3_uri(self.s3_uri, setting="--s3-uri")[0]

    @property
    def s3_key(self) -> str:
        assert self.s3_uri is not None, "only S3-sourced plans have a key"
        return parse_s3_uri(self.s3_uri, setting="--s3-uri")[1]
