"""The S3 source against a real S3 server (SeaweedFS), with a loopback fault proxy in front
of it where a test needs broken connections, 503s or corrupted bytes."""

from __future__ import annotations

import itertools
import os
import threading
import time
from pathlib import Path

import pytest
from s3proxy import ForwardingHandler, ForwardingProxy, serving

from coldbrew.errors import SourceError
from coldbrew.sources import config_from_uri, fetch

pytestmark = pytest.mark.integration  # every test here spawns a process or a server

MiB = 1 << 20


class FaultProxy(ForwardingProxy):
    """Forwards GET/HEAD to the S3 server; can truncate, 503 or corrupt GET responses."""

    def __init__(self, upstream: str):
        super().__init__(upstream, _ProxyHandler)
        self.truncate = 0  # next N GETs: send half the body, then drop the connection
        self.unavailable = 0  # next N requests: 503 SlowDown
        self.corrupt = False  # flip one byte in every GET body
        self.corrupt_next = 0  # next N successful GETs: flip one byte of the body
        self.delay = 0.0
        self.log: list[tuple[str, str | None]] = []  # (method, Range)
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()

    def take(self, attr: str) -> bool:
        with self.lock:
            n = getattr(self, attr)
            if n:
                setattr(self, attr, n - 1 if n > 0 else n)
            return bool(n)


class _ProxyHandler(ForwardingHandler):
    def forward(self):
        px = self.server
        assert isinstance(px, FaultProxy)
        get = self.command == "GET"
        with px.lock:
            px.log.append((self.command, self.headers.get("Range")))
            px.in_flight += 1
            px.max_in_flight = max(px.max_in_flight, px.in_flight)
        try:
            if px.take("unavailable"):
                body = b"<Error><Code>SlowDown</Code><Message>Slow down</Message></Error>"
                self.send_response(503)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            time.sleep(px.delay if get else 0)
            resp, body = self.upstream()
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("transfer-encoding", "connection"):
                    self.send_header(k, v)
            self.end_headers()
            if not get:
                return
            if body and resp.status < 300 and px.take("corrupt_next"):
                body = bytes([body[-1] ^ 0x01]) + body[1:] if len(body) == 1 else body[:-1] + bytes([body[-1] ^ 0x01])
            if px.corrupt and body:
                body = bytes([body[0] ^ 0xFF]) + body[1:]
            if resp.status < 300 and px.take("truncate"):
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)
        finally:
            with px.lock:
                px.in_flight -= 1


@pytest.fixture
def proxy(s3_server, s3_env):
    with serving(FaultProxy(s3_server.endpoint_url), s3_env) as px:
        yield px


def _put(s3_server, bucket, key, data: bytes, *, part_size: int | None = None) -> None:
    c = s3_server.client()
    if part_size is None:
        c.put_object(Bucket=bucket, Key=key, Body=data)
        return
    mpu = c.create_multipart_upload(Bucket=bucket, Key=key)
    parts = []
    for n, off in enumerate(range(0, len(data), part_size), 1):
        r = c.upload_part(
            Bucket=bucket, Key=key, UploadId=mpu["UploadId"], PartNumber=n, Body=data[off : off + part_size]
        )
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    c.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=mpu["UploadId"], MultipartUpload={"Parts": parts})


def brew_shaped(size: int) -> bytes:
    """Random bytes with the .brew magic and a correct .brew checksum (all the S3 layer checks; not loadable)."""
    import hashlib

    from coldbrew.format import spec

    data = bytearray(os.urandom(size))
    data[: len(spec.MAGIC)] = spec.MAGIC
    lo, hi = spec.DIGEST_OFFSET, spec.DIGEST_OFFSET + spec.DIGEST_SIZE
    data[lo:hi] = hashlib.sha256(bytes(data[:lo]) + bytes(data[hi:])).digest()
    return bytes(data)


def _leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if p.name.endswith(".part")) if cache.exists() else []


def test_fetch_model_byte_for_byte_then_cached(s3_server, bucket, tiny_model, tmp_path):
    s3_server.upload(tiny_model, bucket, "models/tiny.pkl")
    cfg = config_from_uri(f"s3://{bucket}/models/tiny.pkl")
    first = fetch(cfg, cache_dir=tmp_path / "cache")
    assert first.path.read_bytes() == tiny_model.read_bytes()
    assert (first.source, first.size_bytes, first.cached) == ("S3", tiny_model.stat().st_size, False)
    assert first.integrity == "md5"
    again = fetch(cfg, cache_dir=tmp_path / "cache")
    assert (again.path, again.cached) == (first.path, True)
    assert "download" not in again.timings


def test_changed_object_is_downloaded_again_and_old_copy_removed(s3_server, bucket, tmp_path):
    cache = tmp_path / "cache"
    _put(s3_server, bucket, "m", b"version one")
    one = fetch(config_from_uri(f"s3://{bucket}/m"), cache_dir=cache)
    _put(s3_server, bucket, "m", b"version two!")
    two = fetch(config_from_uri(f"s3://{bucket}/m"), cache_dir=cache)
    assert not two.cached and two.path.read_bytes() == b"version two!"
    assert not one.path.exists()
    assert sorted(p.name for p in cache.iterdir()) == [two.path.name, two.path.name + ".digest.json"]


@pytest.mark.parametrize(
    "uri_fmt, words",
    [
        ("s3://{bucket}/no/such/key.pkl", ["{bucket}", "no/such/key.pkl", "no object"]),
        ("s3://nb-{bucket}/model.pkl", ["nb-{bucket}", "model.pkl", "does not exist"]),
    ],
)
def test_missing_bucket_or_key_is_one_line(bucket, tmp_path, uri_fmt, words):
    with pytest.raises(SourceError) as e:
        fetch(config_from_uri(uri_fmt.format(bucket=bucket)), cache_dir=tmp_path / "cache")
    msg = str(e.value)
    assert "\n" not in msg
    for w in words:
        assert w.format(bucket=bucket) in msg
    assert _leftovers(tmp_path / "cache") == []


def test_wrong_credentials_are_denied(s3_server, bucket, s3_env, tmp_path):
    _put(s3_server, bucket, "m", b"secret model")
    s3_env.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(SourceError, match=rf"access denied.*'m'.*'{bucket}'"):
        fetch(config_from_uri(f"s3://{bucket}/m"), cache_dir=tmp_path)
    s3_env.setenv("AWS_ACCESS_KEY_ID", "nobody")
    with pytest.raises(SourceError, match="access denied"):
        fetch(config_from_uri(f"s3://{bucket}/m"), cache_dir=tmp_path)


def test_no_credentials_is_one_line(bucket, s3_env, tmp_path):
    s3_env.delenv("AWS_ACCESS_KEY_ID")
    s3_env.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(SourceError, match="no AWS credentials"):
        fetch(config_from_uri(f"s3://{bucket}/m"), cache_dir=tmp_path)


def test_service_specific_endpoint_wins(s3_server, bucket, s3_env, tmp_path):
    _put(s3_server, bucket, "m", b"abc")
    s3_env.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard port: nothing there
    s3_env.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint_url)
    assert fetch(config_from_uri(f"s3://{bucket}/m"), cache_dir=tmp_path).path.read_bytes() == b"abc"


def test_concurrent_ranged_gets_single_part_md5(s3_server, bucket, proxy, s3_env, tmp_path):
    data = os.urandom(MiB + 12345)
    _put(s3_server, bucket, "big", data)
    s3_env.setenv("COLDBREW_S3_CHUNK_SIZE", "64K")
    s3_env.setenv("COLDBREW_S3_CONCURRENCY", "4")
    proxy.delay = 0.01
    got = fetch(config_from_uri(f"s3://{bucket}/big"), cache_dir=tmp_path)
    assert got.path.read_bytes() == data and got.integrity == "md5"
    ranges = [r for m, r in proxy.log if m == "GET"]
    assert len(ranges) == -(-len(data) // (64 << 10)) and all(r and r.startswith("bytes=") for r in ranges)
    assert 2 <= proxy.max_in_flight <= 4


def test_multipart_etag_is_verified(s3_server, bucket, s3_env, tmp_path):
    data = os.urandom(11 * MiB)
    _put(s3_server, bucket, "mp", data, part_size=5 * MiB)
    s3_env.setenv("COLDBREW_S3_CHUNK_SIZE", "3M")  # ranges that straddle part boundaries
    got = fetch(config_from_uri(f"s3://{bucket}/mp"), cache_dir=tmp_path)
    assert got.path.read_bytes() == data and got.integrity == "multipart-md5"


def test_transient_errors_are_retried(s3_server, bucket, proxy, s3_env, tmp_path):
    data = os.urandom(300_000)
    _put(s3_server, bucket, "flaky", data)
    s3_env.setenv("COLDBREW_S3_CHUNK_SIZE", "100K")
    proxy.unavailable, proxy.truncate = 2, 2
    got = fetch(config_from_uri(f"s3://{bucket}/flaky"), cache_dir=tmp_path)
    assert got.path.read_bytes() == data
    assert sum(m == "GET" for m, _ in proxy.log) >= 3 + 2


def test_persistent_failure_is_reported_and_leaves_no_temp_file(s3_server, bucket, proxy, s3_env, tmp_path):
    _put(s3_server, bucket, "dead", os.urandom(200_000))
    s3_env.setenv("AWS_MAX_ATTEMPTS", "3")
    proxy.truncate = -1  # every GET
    with pytest.raises(SourceError) as e:
        fetch(config_from_uri(f"s3://{bucket}/dead"), cache_dir=tmp_path / "cache")
    assert f"s3://{bucket}/dead" in str(e.value) and "\n" not in str(e.value)
    assert list((tmp_path / "cache").iterdir()) == []


def test_corrupted_bytes_are_rejected(s3_server, bucket, proxy, tmp_path):
    _put(s3_server, bucket, "m", os.urandom(50_000))
    proxy.corrupt = True
    with pytest.raises(SourceError, match="do not match the ETag"):
        fetch(config_from_uri(f"s3://{bucket}/m"), cache_dir=tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_stale_temp_file_of_a_dead_process_is_removed(s3_server, bucket, tmp_path):
    _put(s3_server, bucket, "m", b"model")
    cache = tmp_path / "cache"
    first = fetch(config_from_uri(f"s3://{bucket}/m"), cache_dir=cache)
    tag = first.path.name.split("-")[0]
    dead_pid = next(p for p in itertools.count(4_000_000) if not Path(f"/proc/{p}").exists())
    stale = cache / f".{tag}-x-m.{dead_pid}.abcd.part"
    stale.write_bytes(b"half")
    first.path.unlink()
    fetch(config_from_uri(f"s3://{bucket}/m"), cache_dir=cache)
    assert not stale.exists()


@pytest.mark.parametrize("key, verify, integrity", [("part.bin", "etag", "md5"), ("part.brew", "size", "brew-sha256")])
def test_a_part_that_fails_its_check_is_fetched_again_and_never_cached(
    s3_server, bucket, proxy, s3_env, tmp_path, key, verify, integrity
):
    """One ranged GET comes back with a flipped byte: the digest refuses the file, the download is done again,
    and only the verified bytes are ever in the cache (no temp file left, no corrupt copy renamed into place)."""
    data = brew_shaped(3 * MiB + 777) if key.endswith(".brew") else os.urandom(3 * MiB + 777)
    _put(s3_server, bucket, key, data)
    s3_env.setenv("COLDBREW_S3_CHUNK_SIZE", "1M")
    s3_env.setenv("COLDBREW_S3_VERIFY", verify)
    proxy.corrupt_next = 1
    got = fetch(config_from_uri(f"s3://{bucket}/{key}"), cache_dir=tmp_path / "cache")
    assert got.path.read_bytes() == data and got.integrity == integrity and not got.cached
    gets = sum(m == "GET" for m, _ in proxy.log)
    assert gets == 2 * 4  # every part twice: the first, corrupted download was thrown away whole
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [got.path.name, got.path.name + ".digest.json"]


def test_a_part_corrupted_every_time_is_refused_and_nothing_is_cached(s3_server, bucket, proxy, s3_env, tmp_path):
    _put(s3_server, bucket, "bad.bin", os.urandom(2 * MiB))
    s3_env.setenv("COLDBREW_S3_CHUNK_SIZE", "1M")
    proxy.corrupt_next = -1
    with pytest.raises(SourceError, match="do not match the ETag"):
        fetch(config_from_uri(f"s3://{bucket}/bad.bin"), cache_dir=tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []
