"""S3 download: parallel ranged GETs straight into a preallocated temp file, bytes checked, atomic rename.

The first ranged GETs go out before the object's size is known (the first answer's Content-Range gives it, and
its ETag names the cached copy), so no HEAD round trip precedes the download; every later GET carries
``If-Match`` with that ETag. Each part is written with ``pwrite`` at its offset; the bytes are proved by the ETag
where it is an MD5 (single-part or multipart), else — for a .brew object — by the file's own SHA-256, hashed in
order while later parts still arrive. A download whose digest does not match is fetched once more, then
refused; only a verified file is renamed into place, so the mmap reader never sees a partial or unproved file.
The digest is recorded beside the cached file and checked again before a cached copy is reused
(coldbrew/sources/cache.py).

The HTTP client is coldbrew.sources.s3http (standard library, SigV4); this module is imported only when the
source is S3. Tuning: COLDBREW_S3_CHUNK_SIZE (default 8M), COLDBREW_S3_CONCURRENCY (default 10),
COLDBREW_S3_VERIFY (etag | size), AWS_MAX_ATTEMPTS (default 5).
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import random
import re
import secrets
import shutil
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from coldbrew.atomicfile import remove_stale_parts
from coldbrew.errors import ConfigError, SourceError
from coldbrew.sources.cache import ensure_private_dir, read_record, record_path, write_record
from coldbrew.sources.config import FetchedModel

MiB = 1 << 20
BLOCK = 1 * MiB  # read/write/hash granularity
_MD5 = re.compile(r'^"?([0-9a-fA-F]{32})"?$')
_MULTIPART = re.compile(r'^"?([0-9a-fA-F]{32})-(\d+)"?$')
_SIZE = re.compile(r"^\s*(\d+)\s*([KMG]?)(?:i?B)?\s*$", re.IGNORECASE)


class Settings:
    """Download tuning; `from_env` reads the COLDBREW_S3_* and AWS_MAX_ATTEMPTS variables.

    A plain class, not a dataclass: ``dataclasses`` (and the ``inspect`` it imports) cost milliseconds of a cold
    start."""

    __slots__ = ("attempts", "chunk_size", "concurrency", "verify")
    chunk_size: int
    concurrency: int
    attempts: int  # per request: botocore's retries, and ours for a broken body stream
    verify: str  # "etag": MD5 where the ETag is one; "size": never the MD5 (a .brew's SHA-256 still)

    def __init__(self, chunk_size: int = 8 * MiB, concurrency: int = 10, attempts: int = 5, verify: str = "etag"):
        self.chunk_size, self.concurrency, self.attempts, self.verify = chunk_size, concurrency, attempts, verify

    def __repr__(self) -> str:
        return (
            f"Settings(chunk_size={self.chunk_size}, concurrency={self.concurrency}, attempts={self.attempts}, "
            f"verify={self.verify!r})"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Settings) and repr(self) == repr(other)

    __hash__ = None  # type: ignore[assignment]

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

        defaults = cls()
        verify = (environ.get("COLDBREW_S3_VERIFY") or "etag").strip().lower()
        if verify not in ("etag", "size"):
            raise ConfigError(f"COLDBREW_S3_VERIFY={verify!r} is not allowed; use one of: etag, size")
        return cls(
            chunk_size=num("COLDBREW_S3_CHUNK_SIZE", defaults.chunk_size, 1, sized=True),
            concurrency=num("COLDBREW_S3_CONCURRENCY", defaults.concurrency, 1),
            attempts=num("AWS_MAX_ATTEMPTS", defaults.attempts, 1),
            verify=verify,
        )


FIRST_WAVE = 4  # ranged GETs sent before the object's size is known (those past its end answer 416 and are dropped)
DIGEST_TRIES = 2  # a download whose digest does not match is fetched once more; a second mismatch is an error


def fetch_s3(
    bucket: str, key: str, cache_dir: Path, *, settings: Settings | None = None, t0: float | None = None
) -> FetchedModel:
    """Download s3://bucket/key into cache_dir (or reuse a copy with the same size+ETag)."""
    from coldbrew.sources.s3http import NoCredentials, S3Error, S3Reader

    t0 = time.perf_counter() if t0 is None else t0
    settings = settings or Settings.from_env(os.environ)
    uri = f"s3://{bucket}/{key}"
    try:
        reader = S3Reader(bucket, os.environ)
    except ModuleNotFoundError as e:
        raise SourceError(f"{uri}: reading models from S3 needs {e.name}: pip install 'coldbrew[s3]'") from None
    except NoCredentials:
        raise SourceError(
            f"{uri}: no AWS credentials found (set AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or use an IAM role)"
        ) from None
    except Exception as e:  # noqa: BLE001 - bad endpoint URL, profile...
        raise SourceError(f"{uri}: cannot create an S3 client: {e}") from None
    job = _Download(reader, bucket, key, Path(cache_dir), settings, t0)
    job.timings["client"] = (time.perf_counter() - t0) * 1000
    for attempt in range(1, DIGEST_TRIES + 1):
        try:
            return job.run()
        except _DigestMismatch as e:
            if attempt == DIGEST_TRIES:
                raise SourceError(str(e)) from None
        except S3Error as e:
            raise _describe(e, reader, bucket, key, settings) from None
        except SourceError:
            raise
        except Exception as e:  # noqa: BLE001 - mapped to a one-line SourceError
            raise _describe(e, reader, bucket, key, settings) from None
    raise AssertionError("unreachable")


class _DigestMismatch(SourceError):
    """The downloaded bytes do not match what proves them (message: the one-line reason)."""


class _Plan:
    """What the first answer told: size, ETag, the temp file to write, or that nothing is to be downloaded."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.abort = False
        self.whole = False  # the server sent the whole object on the first connection (it ignores Range)
        self.size = 0
        self.etag = ""
        self.fd = -1
        self.landed: _Landed | None = None


class _Landed:
    """Which bytes of the temp file have landed, for the hasher to follow as they come.

    Each part streams in order, so part ``i`` holds ``[starts[i], starts[i] + got[i])``; the file's landed prefix
    ends in the first part not yet complete (``frontier``). The hasher (the main thread) hashes that prefix while
    the parts still arrive, so the digest is done a few blocks after the last byte, not a whole file later.
    """

    def __init__(self, ranges: list[tuple[int, int]], size: int):
        self.starts = [a for a, _ in ranges]
        self.lengths = [b + 1 - a for a, b in ranges]
        self.got = [0] * len(ranges)
        self.checked = [False] * len(ranges)  # the part's answer ended where it should (nothing after the range)
        self.size = size
        self.frontier = 0
        self.error: BaseException | None = None
        self.cond = threading.Condition()

    def add(self, i: int, n: int) -> None:
        """``n`` more bytes of part ``i`` are in the file (written before this is called)."""
        with self.cond:
            self.got[i] += n
            if i == self.frontier:
                self.cond.notify_all()

    def complete(self, i: int) -> None:
        with self.cond:
            self.checked[i] = True
            self.cond.notify_all()

    def fail(self, e: BaseException) -> None:
        with self.cond:
            if self.error is None:
                self.error = e
            self.cond.notify_all()

    def wait_past(self, pos: int) -> int:
        """The end of the landed prefix, once it is past ``pos``; a part's error is raised here."""
        with self.cond:
            while True:
                if self.error is not None:
                    raise self.error
                n = len(self.got)
                while self.frontier < n and self.got[self.frontier] == self.lengths[self.frontier]:
                    self.frontier += 1
                end = self.starts[self.frontier] + self.got[self.frontier] if self.frontier < n else self.size
                if end > pos:
                    return end
                self.cond.wait()

    def wait_checked(self) -> None:
        """Until every part's answer is known to have ended at its range (or a part's error, raised)."""
        with self.cond:
            while not all(self.checked):
                if self.error is not None:
                    raise self.error
                self.cond.wait()
            if self.error is not None:
                raise self.error


class _Workers:
    """``count`` threads running tasks in the order given (a ThreadPoolExecutor without the imports of
    ``concurrent.futures``, which bring ``logging``: milliseconds of a cold start). A task handles its own errors."""

    def __init__(self, count: int):
        import queue

        self.tasks: queue.SimpleQueue = queue.SimpleQueue()
        self.threads = [threading.Thread(target=self._run, name=f"coldbrew-s3-{n}", daemon=True) for n in range(count)]
        for t in self.threads:
            t.start()

    def _run(self) -> None:
        while (task := self.tasks.get()) is not None:
            task()

    def submit(self, fn, *args, **kwargs) -> None:
        self.tasks.put(lambda: fn(*args, **kwargs))

    def close(self) -> None:
        """Let the queued tasks run out (after an abort they return at once), then end the threads."""
        for _ in self.threads:
            self.tasks.put(None)
        for t in self.threads:
            t.join()


class _Download:
    """One fetch: the first wave of ranged GETs, the cache check, the rest of the parts, the digest, the rename."""

    def __init__(self, reader, bucket: str, key: str, cache_dir: Path, settings: Settings, t0: float):
        self.reader, self.bucket, self.key, self.cache_dir = reader, bucket, key, cache_dir
        self.settings, self.t0 = settings, t0
        self.uri = f"s3://{bucket}/{key}"
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------ the whole fetch
    def run(self) -> FetchedModel:
        chunk, concurrency = self.settings.chunk_size, self.settings.concurrency
        wave = [(i * chunk, (i + 1) * chunk - 1) for i in range(min(concurrency, FIRST_WAVE))]
        plan = _Plan()
        # concurrency - 1 connections on the workers; this thread's carries the first answer (part 0), which a
        # thread of its own streams while this one hashes what has landed.
        pool = _Workers(max(1, concurrency - 1))
        first_part: threading.Thread | None = None
        try:
            # Parts 1.. of the first wave go out at once, before the size is known; part 0 is asked for here.
            for a, b in wave[1:]:
                pool.submit(self._part, plan, a, b, speculative=True)
            t1 = time.perf_counter()
            first = self._open_first(wave[0][1])
            size, etag = _total_size(first), first.getheader("ETag", "") or ""
            self.timings["head"] = (time.perf_counter() - t1) * 1000
            final = self._final_path(size, etag)
            ensure_private_dir(self.cache_dir, self.uri)  # before anything in it is trusted
            reused = _reuse(final, size)
            if reused is not None:
                plan.abort = True
                return self._done(final, size, True, reused)
            self._check_space(size)
            remove_stale_parts(self.cache_dir, final.name.split("-")[0] + "-")
            tmp = self.cache_dir / f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.part"
            plan.fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                _preallocate(plan.fd, size)
                plan.size, plan.etag = size, etag
                whole = plan.whole = first.status == 200  # a server ignoring Range sends everything on one connection
                ranges = [(0, size - 1)] if whole else [(o, min(o + chunk, size) - 1) for o in range(0, size, chunk)]
                landed = plan.landed = _Landed(ranges, size)
                if not whole:
                    for a, b in ranges[len(wave) :]:
                        pool.submit(self._part, plan, a, b)
                plan.ready.set()
                first_part = threading.Thread(
                    target=self._task, args=(plan, 0, *ranges[0], first), name="coldbrew-s3-first", daemon=True
                )
                first_part.start()
                # The part size of a multipart ETag is asked for on this thread's connection, once the first
                # answer's body has been read off it.
                integrity, part_size = self._integrity_plan(first, size, etag, before_head=first_part.join)
                hasher = _Hasher(size, integrity, part_size)
                while hasher.pos < size:
                    hasher.feed(plan.fd, hasher.pos, landed.wait_past(hasher.pos))
                landed.wait_checked()
                self._verify(hasher, integrity, size, etag)
                self._record(final, hasher, integrity, size, etag, part_size)
                os.replace(tmp, final)
            except BaseException:
                plan.abort = True
                tmp.unlink(missing_ok=True)
                record_path(final).unlink(missing_ok=True)
                raise
        finally:
            plan.abort = plan.abort or not plan.ready.is_set()
            plan.ready.set()
            pool.close()
            if first_part is not None:
                first_part.join()
            if plan.fd >= 0:
                os.close(plan.fd)
        for old in self.cache_dir.glob(f"{final.name.split('-')[0]}-*"):  # earlier versions and their records
            if old not in (final, record_path(final)):
                old.unlink(missing_ok=True)
        self.timings["download"] = (time.perf_counter() - self.t0) * 1000 - self.timings["client"]
        return self._done(final, size, False, integrity if not hasher.is_brew else "brew-sha256")

    def _done(self, final: Path, size: int, cached: bool, integrity: str) -> FetchedModel:
        return FetchedModel(
            path=final,
            size_bytes=size,
            source="S3",
            cached=cached,
            integrity=integrity,
            timings=self.timings,
            fetch_ms=(time.perf_counter() - self.t0) * 1000,
        )

    def _final_path(self, size: int, etag: str) -> Path:
        tag = hashlib.sha256(f"{self.bucket}/{self.key}".encode()).hexdigest()[:12]
        version = hashlib.sha256(f"{etag}\0{size}".encode()).hexdigest()[:10]
        base = re.sub(r"[^A-Za-z0-9._-]", "_", self.key.rsplit("/", 1)[-1])[-80:] or "model"
        return self.cache_dir / f"{tag}-{version}-{base}"

    def _check_space(self, size: int) -> None:
        try:
            free = shutil.disk_usage(self.cache_dir).free
        except OSError as e:
            raise SourceError(f"{self.uri}: cache dir {self.cache_dir} is not usable: {e.strerror}") from None
        if free < size:
            raise SourceError(
                f"{self.uri}: needs {size / MiB:.1f} MB but {self.cache_dir} has {free / MiB:.1f} MB "
                "free (on Lambda, raise EphemeralStorage)"
            )

    # ------------------------------------------------------------------ requests
    def _retrying(self, what):
        """``what()`` with up to ``attempts`` tries on throttling, 5xx, broken connections and short bodies."""
        from coldbrew.sources.s3http import S3Error

        attempts = self.settings.attempts
        for attempt in range(1, attempts + 1):
            try:
                return what()
            except S3Error as e:
                if not (e.status >= 500 or e.status == 429) or attempt == attempts:
                    e.attempts = attempt
                    raise
            except (OSError, http.client.HTTPException):
                self.reader.drop_connection()
                if attempt == attempts:
                    raise
            time.sleep(min(2.0, 0.05 * 2 ** (attempt - 1)) * (0.5 + random.random()))
        raise AssertionError("unreachable")

    def _open_first(self, end: int):
        """The answer to ``Range: bytes=0-END`` (206, or 200 from a server that ignores ranges); an empty object
        answers 416 to any range, so it is asked for whole."""
        from coldbrew.sources.s3http import S3Error

        try:
            return self._retrying(lambda: self.reader.request("GET", self.key, headers={"Range": f"bytes=0-{end}"}))
        except S3Error as e:
            if e.status != 416:
                raise
        return self._retrying(lambda: self.reader.request("GET", self.key))

    def _part(self, plan: _Plan, start: int, end: int, *, speculative: bool = False) -> None:
        """Fetch bytes start..end into the temp file (runs on a worker thread)."""
        from coldbrew.sources.s3http import S3Error

        response, refused = None, None
        try:
            if speculative:  # sent before the size and ETag are known: no If-Match yet, checked against them below
                try:
                    response = self._retrying(
                        lambda: self.reader.request("GET", self.key, headers={"Range": f"bytes={start}-{end}"})
                    )
                except S3Error as e:
                    refused = e
                except (OSError, http.client.HTTPException):
                    pass  # asked again below, once the plan is known
            plan.ready.wait()
            if plan.abort or plan.whole or start >= plan.size:
                if response is not None:
                    self.reader.drop_connection()  # its body is not wanted: do not read it
                return
            if refused is not None and refused.status not in (416,) and refused.status < 500:
                raise refused
            if response is not None and (response.getheader("ETag", "") or "") != plan.etag:
                self.reader.drop_connection()
                raise SourceError(f"{self.uri}: the object changed during the download; retry")
        except BaseException as e:  # noqa: BLE001 - handed to the hasher, which raises it on the main thread
            if plan.landed is not None:
                plan.landed.fail(e)
            return
        self._task(plan, start // self.settings.chunk_size, start, min(end, plan.size - 1), response)

    def _task(self, plan: _Plan, i: int, start: int, end: int, response) -> None:
        """Part ``i`` (bytes start..end) into the temp file; an error is handed to the hasher."""
        assert plan.landed is not None
        try:
            self._fill(plan, i, start, end, response)
            plan.landed.complete(i)
        except BaseException as e:  # noqa: BLE001 - raised on the main thread by the hasher
            plan.landed.fail(e)

    def _fill(self, plan: _Plan, i: int, start: int, end: int, response) -> None:
        """Stream ``response`` (None: ask for it) into bytes start..end; a broken body is asked for again from the
        first byte that has not landed (the landed ones may already be hashed)."""
        assert plan.landed is not None
        for attempt in range(1, self.settings.attempts + 1):
            if plan.abort:
                raise OSError("download abandoned")
            at = start + plan.landed.got[i]  # only this thread adds to part i
            if response is None:
                response = self._retrying(lambda at=at: self._get(plan, at, end))
            try:
                self._stream(response, plan, i, at, end)
                return
            except (OSError, http.client.HTTPException):
                self.reader.drop_connection()
                response = None
                if attempt == self.settings.attempts or plan.abort:
                    raise
                time.sleep(min(2.0, 0.05 * 2 ** (attempt - 1)) * (0.5 + random.random()))

    def _get(self, plan: _Plan, start: int, end: int):
        headers = {"Range": f"bytes={start}-{end}"}
        if plan.etag:
            headers["If-Match"] = plan.etag  # an object replaced mid-download answers 412, never mixed bytes
        return self.reader.request("GET", self.key, headers=headers)

    def _stream(self, response, plan: _Plan, i: int, start: int, end: int) -> None:
        """Write the body of ``response`` (bytes start..end) at its offset, telling the hasher as each block lands;
        a short or overlong body is an error."""
        assert plan.landed is not None
        if response.status != 206 and (start, end) != (0, plan.size - 1):
            raise http.client.HTTPException(f"asked for bytes {start}-{end}, got HTTP {response.status}")
        if response.status == 206:
            got = _content_range(response)
            if got is None or got[0] != start or got[1] != end:
                raise http.client.HTTPException(f"asked for bytes {start}-{end}, got {got}")
        buf = bytearray(min(BLOCK, end + 1 - start) or 1)
        view = memoryview(buf)
        pos = start
        while pos <= end:
            if plan.abort:
                raise OSError("download abandoned")
            n = response.readinto(view[: min(len(buf), end + 1 - pos)])
            if not n:
                raise http.client.IncompleteRead(bytes(0), end + 1 - pos)
            os.pwrite(plan.fd, view[:n], pos)
            pos += n
            plan.landed.add(i, n)
        if response.length:  # more bytes than asked for: not the range we wanted
            raise http.client.HTTPException(f"bytes {start}-{end}: {response.length} unexpected bytes after the range")

    # ------------------------------------------------------------------ integrity
    def _integrity_plan(self, first, size: int, etag: str, before_head=lambda: None) -> tuple[str, int | None]:
        """What the ETag can prove: ("md5", None), ("multipart-md5", part_size) or ("size", None) when it can't.

        A .brew object with a multipart ETag is proved by its own SHA-256 instead (no extra request). The part size
        is asked for with a HEAD on this thread's connection, after ``before_head()`` (which frees it).
        """
        from coldbrew.sources.s3http import S3Error

        # ETags of SSE-KMS / SSE-C objects are not MD5s of the plaintext.
        encrypted = first.getheader("x-amz-server-side-encryption") == "aws:kms" or first.getheader(
            "x-amz-server-side-encryption-customer-algorithm"
        )
        if self.settings.verify != "etag" or encrypted:
            return "size", None
        if _MD5.match(etag):
            return "md5", None
        m = _MULTIPART.match(etag)
        if not m or self.key.endswith(".brew"):
            return "size", None
        # Multipart ETag = md5(concat(md5(part) ...))-N: needs the part size; SDK uploads use
        # equal parts (the last one shorter), which the arithmetic below confirms.
        n = int(m.group(2))
        before_head()
        try:
            head = self._retrying(lambda: self.reader.request("HEAD", self.key, query={"partNumber": "1"}))
            head.read()
            part = int(head.getheader("Content-Length", "0"))
        except (S3Error, OSError, http.client.HTTPException, ValueError):  # no PartNumber support
            return "size", None
        if part <= 0 or not (0 < size - (n - 1) * part <= part):
            return "size", None
        return "multipart-md5", part

    def _verify(self, hasher: _Hasher, integrity: str, size: int, etag: str) -> None:
        if hasher.pos != size:
            raise SourceError(f"{self.uri}: got {hasher.pos} bytes, S3 said {size}")
        digest = hasher.result()
        if integrity in ("md5", "multipart-md5") and digest.lower() != etag.strip('"').lower():
            raise _DigestMismatch(
                f"{self.uri}: downloaded bytes do not match the ETag {etag} (computed {digest}); the object may be "
                "corrupt"
            )
        if integrity == "size" and self.key.endswith(".brew") and not hasher.is_brew:
            raise _DigestMismatch(
                f"{self.uri}: the downloaded bytes are not a .brew file (no .brew magic) and the ETag "
                "cannot prove them; the object or the download is corrupt"
            )
        if hasher.is_brew and digest != hasher.stored_digest:
            raise _DigestMismatch(
                f"{self.uri}: downloaded bytes do not match the .brew file's own SHA-256 "
                f"(computed {digest}, the file says {hasher.stored_digest}); the object or the "
                "download is corrupt"
            )

    def _record(
        self, final: Path, hasher: _Hasher, integrity: str, size: int, etag: str, part_size: int | None
    ) -> None:
        write_record(
            final,
            {
                "size": size,
                "etag": etag,
                "integrity": "brew-sha256" if hasher.is_brew else integrity,
                "algorithm": hasher.algorithm,
                "part_size": part_size,
                "digest": hasher.result(),
                "field_32_64": hasher.stored_digest,
            },
        )


def _span(rng: tuple[int, int]) -> tuple[int, int]:
    return rng[0], rng[1] + 1


def _content_range(response) -> tuple[int, int, int] | None:
    """(first, last, total) of a 206's ``Content-Range: bytes a-b/total``; None when it has none or another form."""
    m = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+)\s*", response.getheader("Content-Range", "") or "")
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def _total_size(response) -> int:
    """The object's size from the first answer: Content-Range's total (206) or Content-Length (200)."""
    if response.status == 206:
        got = _content_range(response)
        if got is None:
            raise http.client.HTTPException("a 206 answer without a usable Content-Range")
        return got[2]
    length = response.getheader("Content-Length")
    if length is None or not length.isdigit():
        raise http.client.HTTPException("an answer without a Content-Length")
    return int(length)


def _preallocate(fd: int, size: int) -> None:
    """Reserve the file's blocks up front (ENOSPC now, not half-way); falls back to setting the length."""
    if size <= 0:
        return
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
        os.ftruncate(fd, size)


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


_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO, errno.EFBIG)


def _describe(e: Exception, reader, bucket: str, key: str, settings: Settings) -> SourceError:
    """One line that names the bucket, the key and the cause."""
    from coldbrew.sources.s3http import S3Error

    uri = f"s3://{bucket}/{key}"
    if isinstance(e, S3Error):
        status, code = e.status, e.code
        if status == 404 or code in ("NoSuchKey", "NoSuchBucket", "NotFound"):
            if code == "NoSuchBucket":
                return SourceError(f"{uri}: bucket {bucket!r} does not exist (key {key!r})")
            return SourceError(f"{uri}: no object with key {key!r} in bucket {bucket!r}")
        if status == 403 or code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            detail = f" ({code})" if code else ""
            return SourceError(
                f"{uri}: access denied{detail} to key {key!r} in bucket {bucket!r}; "
                "check the AWS credentials and the bucket policy"
            )
        if status == 412 or code == "PreconditionFailed":
            return SourceError(f"{uri}: the object changed during the download; retry")
        return SourceError(f"{uri}: S3 error {code or status} after {e.attempts} attempt(s): {e.message or status}")
    if isinstance(e, OSError) and e.errno in _DISK_ERRNOS:
        return SourceError(f"{uri}: cannot write to the cache dir: {e.strerror}")
    detail = str(e) or type(e).__name__
    return SourceError(f"{uri}: {type(e).__name__}: {detail} (gave up after up to {settings.attempts} attempts)")
