"""`FetchedModel`: what a fetch hands the engine — a local file and what it cost (shared by fetch.py and s3.py)."""

from __future__ import annotations

from types import MappingProxyType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up (type checkers read it as true)

if TYPE_CHECKING:
    from collections.abc import Mapping
    from os import PathLike
    from typing import NamedTuple
else:
    from coldbrew.records import NamedTuple  # typing's class syntax, without importing typing

_NO_TIMINGS: Mapping[str, float] = MappingProxyType({})


class FetchedModel(NamedTuple):
    """A model file ready to load, and what it cost to get it (a NamedTuple: no dataclasses import at start-up)."""

    path: str | PathLike[str]  # DISK: an absolute path as a str (no pathlib at start-up); S3: a Path
    size_bytes: int
    source: str  # "DISK" | "S3"
    fetch_ms: float
    cached: bool = False  # S3: an earlier download was reused (its recorded digest still matched)
    # What proved the bytes are the object's: "none" (DISK) | "md5" | "multipart-md5" (the ETag) |
    # "brew-sha256" (a .brew file's own SHA-256) | "size" (length only: a non-.brew object whose ETag is no MD5)
    integrity: str = "none"
    timings: Mapping[str, float] = _NO_TIMINGS  # S3 phases in ms: client, head, download (read-only when absent)
