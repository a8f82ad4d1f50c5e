"""S3 download: one HEAD, concurrent ranged GETs pinned to its ETag, bytes checked, atomic rename.

The bytes are proved by the ETag where it is an MD5 (single-part or multipart), else — for a .brew object — by
the file's own SHA-256; the digest is recorded beside the cached file and checked again before a cached copy is
reused (coldbrew/sources/cache.py).

boto3 is imported here, and this module is imported only when the source is S3. The client
honours the standard AWS configuration (credential chain, region, AWS_ENDPOINT_URL /
AWS_ENDPOINT_URL_S3, AWS_RETRY_MODE / AWS_MAX_ATTEMPTS). Tuning: COLDBREW_S3_CHUNK_SIZE
(default 8M), COLDBREW_S3_CONCURRENCY (default 10), COLDBREW_S3_VERIFY (etag | size).
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import secrets
import shutil
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from coldbrew.atomicfile import remove_stale_parts
from coldbrew.errors import ConfigError, SourceError
from coldbrew.sources.cache import ensure_private_dir, read_record, record_path, write_record
from coldbrew.sources.fetched import FetchedModel

MiB = 1 << 20
BLOCK = 1 * MiB  # read/write/hash granularity
_MD5 = re.compile(r'^"?([0-9a-fA-F]{32})"?$')
_MULTIPART = re.compile(r'^"?([0-9a-fA-F]{32})-(\d+)"?$')
_SIZE = re.compile(r"^\s*(\d+)\s*([KMG]?)(?:i?B)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Settings:
    """Download tuning; `from_env` reads the COLDBREW_S3_* and AWS_MAX_ATTEMPTS variables."""

    chunk_size: int = 8 * MiB
    concurrency: int = 10
    attempts: int = 5  # per request: botocore's retries, and ours for a broken body stream
    verify: str = "etag"  # "etag": MD5 where the ETag is one; "size": never the MD5 (a .brew's SHA-256 still)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        def num(name: str, default: int, lo: int, sized: bool = False) -> int:
            raw = environ.get(name)
            if not raw:
                return default
            m = _SIZE.match(raw) if sized else re.match(r"^\s*(\d+)\s*()$", raw)
            value = int(m.group(1)) * (1 << {"": 0, "K": 10, "M": 20, "G": 30}[m.group(2).upper()]) if m else -1
            if value < lo:
                raise ConfigError(
                    f"{name}={raw!r} is invalid; use an integer >= {lo}"
                    + (" (suffix K, M or G allowed)" if sized else "")
                )
            return value

        verify = (environ.get("COLDBREW_S3_VERIFY") or "etag").strip().lower()
        if verify not in ("etag", "size"):
            raise ConfigError(f"COLDBREW_S3_VERIFY={verify!r} is not allowed; use one of: etag, size")
        return cls(
            chunk_size=num("COLDBREW_S3_CHUNK_SIZE", cls.chunk_size, 1, sized=True),
            concurrency=num("COLDBREW_S3_CONCURRENCY", cls.concurrency, 1),
            attempts=num("AWS_MAX_ATTEMPTS", cls.attempts, 1),
            verify=verify,
        )


def make_client(settings: Settings):
    """A boto3 S3 client with bounded timeouts, standard retries and a pool sized for the GETs."""
    import boto3
    from botocore.config import Config

    kw: dict[str, object] = dict(connect_timeout=3, read_timeout=20, max_pool_connections=max(10, settings.concurrency))
    if not (os.environ.get("AWS_RETRY_MODE") or os.environ.get("AWS_MAX_ATTEMPTS")):
        kw["retries"] = {"mode": "standard", "total_max_attempts": settings.attempts}
    return boto3.session.Session().client("s3", config=Config(**kw))


def fetch_s3(
    bucket: str, key: str, cache_dir: Path, *, settings: Settings | None = None, t0: float | None = None
) -> FetchedModel:
    """Download s3://bucket/key into cache_dir (or reuse a copy with the same size+ETag)."""
    t0 = time.perf_counter() if t0 is None else t0
    settings = settings or Settings.from_env(os.environ)
    uri = f"s3://{bucket}/{key}"
    timings = {}
    try:
        client = make_client(settings)
    except ModuleNotFoundError as e:
        raise SourceError(f"{uri}: reading models from S3 needs {e.name}: pip install 'coldbrew[s3]'") from None
    except Exception as e:  # noqa: BLE001 - bad endpoint URL, region, profile...
        raise SourceError(f"{uri}: cannot create an S3 client: {e}") from None
    t1 = time.perf_counter()
    timings["client"] = (t1 - t0) * 1000
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except Exception as e:  # noqa: BLE001 - mapped to a one-line SourceError
        raise _describe(e, client, bucket, key, settings) from None
    size, etag = int(head["ContentLength"]), head.get("ETag", "")
    t2 = time.perf_counter()
    timings["head"] = (t2 - t1) * 1000

    tag = hashlib.sha256(f"{bucket}/{key}".encode()).hexdigest()[:12]
    version = hashlib.sha256(f"{etag}\0{size}".encode()).hexdigest()[:10]
    base = re.sub(r"[^A-Za-z0-9._-]", "_", key.rsplit("/", 1)[-1])[-80:] or "model"
    final = cache_dir / f"{tag}-{version}-{base}"

    def done(cached: bool, integrity: str) -> FetchedModel:
        return FetchedModel(
            path=final,
            size_bytes=size,
            source="S3",
            cached=cached,
            integrity=integrity,
            timings=timings,
            fetch_ms=(time.perf_counter() - t0) * 1000,
        )

    ensure_private_dir(cache_dir, uri)  # before anything in it is trusted
    reused = _reuse(final, size)
    if reused is not None:
        return done(True, reused)

    try:
        free = shutil.disk_usage(cache_dir).free
    except OSError as e:
        raise SourceError(f"{uri}: cache dir {cache_dir} is not usable: {e.strerror}") from None
    if free < size:
        raise SourceError(
            f"{uri}: needs {size / MiB:.1f} MB but {cache_dir} has {free / MiB:.1f} MB "
            "free (on Lambda, raise EphemeralStorage)"
        )
    remove_stale_parts(cache_dir, tag + "-")

    integrity, part_size = _integrity_plan(client, bucket, key, head, settings)
    tmp = cache_dir / f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.part"
    try:
        hasher = _download(client, bucket, key, etag, size, tmp, settings, _Hasher(size, integrity, part_size))
        if tmp.stat().st_size != size:
            raise SourceError(f"{uri}: got {tmp.stat().st_size} bytes, HEAD said {size}")
        digest = hasher.result()
        if integrity in ("md5", "multipart-md5") and digest.lower() != etag.strip('"').lower():
            raise SourceError(
                f"{uri}: downloaded bytes do not match the ETag {etag} (computed {digest}); the object may be corrupt"
            )
        if integrity == "size" and key.endswith(".brew") and not hasher.is_brew:
            raise SourceError(
                f"{uri}: the downloaded bytes are not a .brew file (no .brew magic) and the ETag "
                "cannot prove them; the object or the download is corrupt"
            )
        if hasher.is_brew:
            if digest != hasher.stored_digest:
                raise SourceError(
                    f"{uri}: downloaded bytes do not match the .brew file's own SHA-256 "
                    f"(computed {digest}, the file says {hasher.stored_digest}); the object or the "
                    "download is corrupt"
                )
            integrity = "brew-sha256"
        write_record(
            final,
            {
                "size": size,
                "etag": etag,
                "integrity": integrity,
                "algorithm": hasher.algorithm,
                "part_size": part_size,
                "digest": digest,
                "field_32_64": hasher.stored_digest,
            },
        )
        os.replace(tmp, final)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        record_path(final).unlink(missing_ok=True)
        if isinstance(e, Exception) and not isinstance(e, SourceError):
            raise _describe(e, client, bucket, key, settings) from None
        raise
    for old in cache_dir.glob(f"{tag}-*"):  # earlier versions of this object, and their records
        if old not in (final, record_path(final)):
            old.unlink(missing_ok=True)
    timings["download"] = (time.perf_counter() - t2) * 1000
    return done(False, integrity)


def _reuse(final: Path, size: int) -> str | None:
    """The integrity of a cached copy whose recorded digest still matches its bytes, or None (then it is removed).

    The name already pins bucket/key, ETag and size; the record pins the bytes, re-hashed here (one sequential
    read, usually from the page cache) so a copy changed on disk is downloaded again, never served.
    """
    record = read_record(final)
    try:
        fd = os.open(final, os.O_RDONLY)
    except OSError:
        return None
    try:
        if record is None or os.fstat(fd).st_size != size or record.get("size") != size:
            raise ValueError("no usable record")
        hasher = _Hasher(size, record.get("algorithm"), record.get("part_size"))
        hasher.feed(fd, 0, size)
        if hasher.result() != record["digest"] or hasher.stored_digest != record.get("field_32_64"):
            raise ValueError("digest changed")
        return str(record.get("integrity", "size"))
    except (ValueError, TypeError, OSError):
        final.unlink(missing_ok=True)
        record_path(final).unlink(missing_ok=True)
        return None
    finally:
        os.close(fd)


def _integrity_plan(client, bucket, key, head, settings) -> tuple[str, int | None]:
    """What the ETag can prove: ("md5", None), ("multipart-md5", part_size) or ("size", None) when it can't."""
    etag = head.get("ETag", "")
    # ETags of SSE-KMS / SSE-C objects are not MD5s of the plaintext.
    encrypted = head.get("ServerSideEncryption") == "aws:kms" or head.get("SSECustomerAlgorithm")
    if settings.verify != "etag" or encrypted:
        return "size", None
    if _MD5.match(etag):
        return "md5", None
    m = _MULTIPART.match(etag)
    if not m:
        return "size", None
    # Multipart ETag = md5(concat(md5(part) ...))-N: needs the part size; SDK uploads use
    # equal parts (the last one shorter), which the arithmetic below confirms.
    n, size = int(m.group(2)), int(head["ContentLength"])
    try:
        part = int(client.head_object(Bucket=bucket, Key=key, PartNumber=1)["ContentLength"])
    except Exception:  # noqa: BLE001 - server without PartNumber support
        return "size", None
    if part <= 0 or not (0 < size - (n - 1) * part <= part):
        return "size", None
    return "multipart-md5", part


def _download(client, bucket, key, etag, size, tmp: Path, settings: Settings, hasher: _Hasher) -> _Hasher:
    """Fetch all ranges concurrently into tmp; ``hasher`` hashes them in order while they land."""
    chunk = settings.chunk_size
    ranges = [(o, min(o + chunk, size) - 1) for o in range(0, size, chunk)]
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    pool = ThreadPoolExecutor(max_workers=min(settings.concurrency, max(1, len(ranges))))
    try:
        futures = [pool.submit(_get_range, client, bucket, key, etag, a, b, fd, settings.attempts) for a, b in ranges]
        for fut, (a, b) in zip(futures, ranges, strict=True):
            fut.result()
            hasher.feed(fd, a, b + 1)
        return hasher
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        os.close(fd)


def _get_range(client, bucket, key, etag, start, end, fd, attempts) -> None:
    """GET bytes start..end (If-Match the HEAD's ETag) and pwrite them; retry broken streams."""
    from botocore.exceptions import IncompleteReadError, ReadTimeoutError, ResponseStreamingError

    for attempt in range(attempts):
        try:
            kw = {"IfMatch": etag} if etag else {}
            body = client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end}", **kw)["Body"]
            pos = start
            for block in body.iter_chunks(BLOCK):
                os.pwrite(fd, block, pos)
                pos += len(block)
            if pos != end + 1:
                raise IncompleteReadError(actual_bytes=pos - start, expected_bytes=end + 1 - start)
            return
        except (IncompleteReadError, ReadTimeoutError, ResponseStreamingError):
            if attempt + 1 >= attempts:
                raise
            time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))


class _Hasher:
    """One digest of the bytes, fed in order.

    ``md5``: the whole object's MD5; ``multipart-md5``: per-part MD5s combined as S3 does for multipart ETags;
    anything else (``size``, ``sha256-brew``): SHA-256 over bytes [0, 32) and [64, end) — the .brew checksum's
    coverage (docs/format.md) — with bytes [32, 64) kept aside as ``stored_digest``. For a .brew file (``is_brew``,
    by its magic) the two must be equal; for any file the pair pins every byte.
    """

    def __init__(self, size: int, plan: str | None, part_size: int | None):
        from coldbrew.format import spec

        self.algorithm = plan if plan in ("md5", "multipart-md5") else "sha256-brew"
        self.part_size = (part_size or size or 1) if self.algorithm == "multipart-md5" else (size or 1)
        self.multipart = self.algorithm == "multipart-md5"
        self.digests: list[bytes] = []
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha = hashlib.sha256()
        self.head = bytearray()  # the first 64 bytes (sha256-brew)
        self.magic, self.lo, self.hi = spec.MAGIC, spec.DIGEST_OFFSET, spec.DIGEST_OFFSET + spec.DIGEST_SIZE
        self.pos = 0

    @property
    def is_brew(self) -> bool:
        return self.algorithm == "sha256-brew" and len(self.head) >= self.hi and self.head.startswith(self.magic)

    @property
    def stored_digest(self) -> str | None:
        """Bytes [32, 64) as hex (a .brew file's recorded SHA-256), for the sha256-brew algorithm."""
        return bytes(self.head[self.lo : self.hi]).hex() if self.algorithm == "sha256-brew" else None

    def feed(self, fd: int, start: int, stop: int) -> None:
        assert start == self.pos
        while self.pos < stop:
            part_end = (self.pos // self.part_size + 1) * self.part_size
            n = min(BLOCK, stop - self.pos, part_end - self.pos)
            data = os.pread(fd, n, self.pos)
            if len(data) != n:
                raise OSError(f"short read at byte {self.pos}")
            self._update(data)
            self.pos += n
            if self.multipart and self.pos == part_end:
                self._close_part()

    def _update(self, data: bytes) -> None:
        if self.algorithm != "sha256-brew":
            self.md5.update(data)
            return
        if len(self.head) < self.hi:  # still inside the first 64 bytes
            take = self.hi - len(self.head)
            self.head += data[:take]
            if len(self.head) == self.hi:
                self.sha.update(self.head[: self.lo])
            data = data[take:]
        if data:
            self.sha.update(data)

    def _close_part(self) -> None:
        self.digests.append(self.md5.digest())
        self.md5 = hashlib.md5(usedforsecurity=False)

    def result(self) -> str:
        if self.algorithm == "sha256-brew":
            if len(self.head) < self.hi:  # a file shorter than 64 bytes: hash it whole
                return hashlib.sha256(bytes(self.head)).hexdigest()
            return self.sha.hexdigest()
        if not self.multipart:
            return self.md5.hexdigest()
        if self.pos % self.part_size:
            self._close_part()
        combined = hashlib.md5(b"".join(self.digests), usedforsecurity=False).hexdigest()
        return f"{combined}-{len(self.digests)}"


def _describe(e: Exception, client, bucket: str, key: str, settings: Settings) -> SourceError:
    """One line that names the bucket, the key and the cause."""
    from botocore.exceptions import ClientError, NoCredentialsError

    uri = f"s3://{bucket}/{key}"
    if isinstance(e, NoCredentialsError):
        return SourceError(
            f"{uri}: no AWS credentials found (set AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or use an IAM role)"
        )
    if isinstance(e, ClientError):
        err, meta = e.response.get("Error", {}), e.response.get("ResponseMetadata", {})
        status, code = meta.get("HTTPStatusCode"), str(err.get("Code", ""))
        tries = meta.get("RetryAttempts", 0) + 1
        if status == 404 or code in ("NoSuchKey", "NoSuchBucket", "NotFound"):
            if code == "NoSuchBucket" or (code != "NoSuchKey" and not _bucket_exists(client, bucket)):
                return SourceError(f"{uri}: bucket {bucket!r} does not exist (key {key!r})")
            return SourceError(f"{uri}: no object with key {key!r} in bucket {bucket!r}")
        if status == 403 or code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            detail = "" if code in ("", "403") else f" ({code})"
            return SourceError(
                f"{uri}: access denied{detail} to key {key!r} in bucket {bucket!r}; "
                "check the AWS credentials and the bucket policy"
            )
        if status == 412 or code == "PreconditionFailed":
            return SourceError(f"{uri}: the object changed during the download; retry")
        return SourceError(f"{uri}: S3 error {code or status} after {tries} attempt(s): {err.get('Message') or e}")
    if isinstance(e, OSError) and e.strerror:  # local disk: ENOSPC, EACCES...
        return SourceError(f"{uri}: cannot write to the cache dir: {e.strerror}")
    return SourceError(f"{uri}: {type(e).__name__}: {e} (gave up after up to {settings.attempts} attempts)")


def _bucket_exists(client, bucket: str) -> bool:
    try:
        client.head_bucket(Bucket=bucket)
    except Exception as e:  # noqa: BLE001 - only a 404 proves the bucket missing (403, network: report the key)
        return getattr(e, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode") != 404
    return True
