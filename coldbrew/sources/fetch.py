"""Turn a ModelConfig into a local file: DISK is used in place, S3 is downloaded to a cache."""

from __future__ import annotations

import os
import stat
import time

from coldbrew.errors import SourceError
from coldbrew.sources.config import FetchedModel, ModelConfig

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up (type checkers read it as true)

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["FetchedModel", "default_cache_dir", "fetch"]


def default_cache_dir() -> Path:
    """`$TMPDIR/coldbrew-models` (on Lambda, /tmp is the only writable place)."""
    import tempfile  # only S3 needs it (and pathlib): the DISK path's imports stay minimal
    from pathlib import Path

    return Path(tempfile.gettempdir()) / "coldbrew-models"


def fetch(config: ModelConfig, *, cache_dir=None) -> FetchedModel:
    """Make the model bytes available as a local file; SourceError if they can't be."""
    t0 = time.perf_counter()
    if config.source == "S3":
        from pathlib import Path

        from coldbrew.sources.s3 import fetch_s3

        return fetch_s3(
            config.bucket, config.key, Path(cache_dir) if cache_dir is not None else default_cache_dir(), t0=t0
        )
    uri = config.uri
    # os.path rather than pathlib: the DISK path is the cold start, and pathlib costs milliseconds of imports.
    path = os.path.expanduser(uri[len("file://") :] if uri.startswith("file://") else uri)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise SourceError(f"model file not found: {path} (MODEL_URI={uri})") from None
    except OSError as e:
        raise SourceError(f"cannot read model file {path}: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise SourceError(f"model path is not a file: {path} (MODEL_URI={uri})")
    if not os.access(path, os.R_OK):
        raise SourceError(f"model file is not readable: {path}")
    return FetchedModel(
        path=os.path.abspath(path), size_bytes=st.st_size, source="DISK", fetch_ms=(time.perf_counter() - t0) * 1000
    )
