"""Where the model comes from: MODEL_SOURCE (DISK | S3) and MODEL_URI, validated up front; and what a fetch makes
of it (:class:`FetchedModel`, shared by fetch.py and s3.py: the sources' two records live in one module, one
import fewer at a cold start)."""

from __future__ import annotations

from coldbrew.errors import ConfigError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up (type checkers read it as true)

if TYPE_CHECKING:
    from collections.abc import Mapping
    from os import PathLike
    from typing import NamedTuple
else:
    from coldbrew.records import NamedTuple  # typing's class syntax, without importing typing

SOURCES = ("DISK", "S3")
# The characters S3 bucket names may hold (a set, not a regex: nothing compiled at start-up for DISK models).
_BUCKET_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


class _Location(NamedTuple):
    source: str
    uri: str


class ModelConfig(_Location):
    """A validated model location: `source` is "DISK" (a path) or "S3" (`s3://bucket/key`).

    An immutable NamedTuple validated on creation (not a dataclass: dataclasses costs ~4 ms of imports at start-up).
    """

    __slots__ = ()

    def __new__(cls, source: str, uri: str) -> ModelConfig:
        self = super().__new__(cls, source, uri)
        self._validate()
        return self

    def _validate(self) -> None:
        if self.source not in SOURCES:
            raise ConfigError(f"MODEL_SOURCE={self.source!r} is not allowed; use one of: DISK, S3")
        if not self.uri:
            raise ConfigError("MODEL_URI is empty; set it to a file path (DISK) or s3://bucket/key (S3)")
        is_s3 = self.uri.startswith("s3://")
        if self.source == "S3":
            parse_s3_uri(self.uri)
        elif is_s3:
            raise ConfigError(f"MODEL_URI={self.uri!r} is an s3:// URI but MODEL_SOURCE=DISK; set MODEL_SOURCE=S3")
        elif "://" in self.uri and not self.uri.startswith("file://"):
            raise ConfigError(
                f"MODEL_URI={self.uri!r}: unsupported scheme; use a file path (DISK) or s3://bucket/key (S3)"
            )

    @property
    def bucket(self) -> str:
        return parse_s3_uri(self.uri)[0]

    @property
    def key(self) -> str:
        return parse_s3_uri(self.uri)[1]


def parse_s3_uri(uri: str, *, setting: str = "MODEL_URI") -> tuple[str, str]:
    """`s3://bucket/key/with/slashes` -> (bucket, key): the one S3 URI parser (serving, lab and packaging).

    Raises:
        ConfigError: not `s3://`, an empty bucket or key, a key ending in `/`, or a bucket name with characters
            S3 never allows (only letters, digits, `.`, `-`, `_`); the message names ``setting``.
    """
    rest = uri[len("s3://") :] if isinstance(uri, str) and uri.startswith("s3://") else None
    bucket, _, key = (rest or "").partition("/")
    if not bucket or not key or key.endswith("/") or len(bucket) > 255 or not _BUCKET_CHARS.issuperset(bucket):
        raise ConfigError(f"{setting}={uri!r} must look like s3://bucket/key")
    return bucket, key


def config_from_uri(uri: str) -> ModelConfig:
    """Infer the source from the URI: `s3://` means S3, anything else is a DISK path."""
    return ModelConfig("S3" if uri.startswith("s3://") else "DISK", uri)


def config_from_env(environ: Mapping[str, str]) -> ModelConfig:
    """Read MODEL_SOURCE and MODEL_URI; an unset MODEL_SOURCE is inferred from MODEL_URI."""
    uri = (environ.get("MODEL_URI") or "").strip()
    if not uri:
        raise ConfigError(
            "MODEL_URI is not set; set it to a file path (MODEL_SOURCE=DISK) or s3://bucket/key (MODEL_SOURCE=S3)"
        )
    raw = environ.get("MODEL_SOURCE")
    if raw is None or not raw.strip():
        return config_from_uri(uri)
    source = raw.strip().upper()
    if source not in SOURCES:
        raise ConfigError(f"MODEL_SOURCE={raw!r} is not allowed; use one of: DISK, S3")
    return ModelConfig(source, uri)


#: read-only and empty; ``type(type.__dict__)`` is ``types.MappingProxyType``, without importing types at start-up
_NO_TIMINGS: Mapping[str, float] = type(type.__dict__)({})


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
