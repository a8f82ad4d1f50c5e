"""Where the function's model comes from (disk or a local S3), and page-cache eviction.

The lab never opens the model as a model: it only passes ``MODEL_URI``/``MODEL_SOURCE`` to the
function, uploads the file for ``s3``, and drops cached pages to model a cold host.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from coldbrew.errors import ConfigError

if TYPE_CHECKING:
    from coldbrew.lab.s3server import SeaweedS3
    from coldbrew.lab.s3shaper import NetworkProfile, S3Shaper

BUCKET = "coldbrew-lab"


@dataclass
class StagedModel:
    """Variables for the function and files whose page cache is dropped before cold starts."""

    env: dict[str, str] = field(default_factory=dict)
    evict: list[Path] = field(default_factory=list)
    server: SeaweedS3 | None = None
    shaper: S3Shaper | None = None  # between the function and the server (--s3-network)

    def close(self) -> None:
        if self.shaper is not None:
            self.shaper.stop()
            self.shaper = None
        if self.server is not None:
            self.server.stop()
            self.server = None


def stage_model(
    uri: str | Path | None,
    source: str,
    workdir: Path,
    bucket: str | None = None,
    network: NetworkProfile | None = None,
) -> StagedModel:
    """Prepare the model for ``source`` ("disk" or "s3"); ``uri`` is a local file (or s3:// for s3).
    For s3 the file is uploaded to ``bucket`` (default ``coldbrew-lab``) under its file name, and with a
    ``network`` profile the function reaches the server through a shaper (coldbrew/lab/s3shaper.py)."""
    bucket = bucket or BUCKET
    if uri is None:
        return StagedModel()
    text = str(uri)
    if text.startswith("s3://"):
        if source != "s3":
            raise ConfigError("an s3:// MODEL_URI needs --source s3")
        return StagedModel({"MODEL_URI": text, "MODEL_SOURCE": "S3"})
    path = Path(text).expanduser().resolve()
    if not path.is_file():
        raise ConfigError(f"model file not found: {path}")
    if source == "disk":
        return StagedModel({"MODEL_URI": str(path), "MODEL_SOURCE": "DISK"}, [path])
    from coldbrew.lab.s3server import SeaweedS3

    data_dir = workdir / "seaweedfs"
    data_dir.mkdir(parents=True, exist_ok=True)
    server = SeaweedS3(data_dir)
    server.start()
    shaper = None
    try:
        server.create_bucket(bucket)
        server.upload(path, bucket, path.name)  # straight to the server: only the function's reads are shaped
        if network is not None:
            from coldbrew.lab.s3shaper import S3Shaper

            shaper = S3Shaper(("127.0.0.1", server.ports["s3"]), network).start()
    except BaseException:
        server.stop()
        raise
    env = {**server.env(), "MODEL_URI": f"s3://{bucket}/{path.name}", "MODEL_SOURCE": "S3"}
    if shaper is None:
        return StagedModel(env, [path, data_dir], server)
    # Shaped, S3's storage is inside its published figures: SeaweedFS's pages stay cached, or the local disk would
    # be paid on top of them (the model file itself is still evicted).
    env["AWS_ENDPOINT_URL"] = shaper.url
    return StagedModel(env, [path], server, shaper)


def evict_page_cache(paths: list[Path]) -> int:
    """Drop the page cache of each file (directories recursively); returns files evicted."""
    count = 0
    for root in paths:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else []
        for file in files:
            try:
                fd = os.open(file, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.fsync(fd)  # dirty pages cannot be dropped
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                count += 1
            except OSError:
                pass
            finally:
                os.close(fd)
    return count
