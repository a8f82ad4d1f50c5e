"""Attacks on the S3 source and its cache (real SeaweedFS; a loopback proxy rewrites ETags and flips bytes).

- Objects whose ETag is no MD5 (stripped, SSE-KMS) still download; a .brew object is then proved by its own
  SHA-256, so one byte corrupted in transit is refused whatever COLDBREW_S3_VERIFY says.
- The cache directory must be the user's own and writable by no one else; a cached copy is reused only while
  its recorded digest matches.
- `compile` and `train` write files with the mode the umask gives (issue #10, part 5).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from s3proxy import ForwardingHandler, ForwardingProxy, serving

from coldbrew.errors import SourceError
from coldbrew.sources import config_from_uri, fetch

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
OTHER_UID = 54321  # a user that is not us (the tests may run as root, which can chown to it)


class RewritingProxy(ForwardingProxy):
    """Forwards HEAD/GET to the S3 server; can strip the ETag, mark the object SSE-KMS, flip one byte of it.

    (A fake ETag value cannot be shown: coldbrew sends it back in a signed If-Match header, which the proxy
    could not rewrite without breaking the request's signature. SSE-KMS alone makes coldbrew distrust the ETag.)
    """

    def __init__(self, upstream: str):
        super().__init__(upstream, _Handler)
        self.etag = "keep"  # "keep" | "strip" | "kms" (adds the SSE-KMS header: the ETag is then no MD5)
        self.corrupt_at: int | None = None  # object offset whose byte is flipped in every GET


class _Handler(ForwardingHandler):
    def forward(self):
        px = self.server
        assert isinstance(px, RewritingProxy)
        resp, body = self.upstream()
        if self.command == "GET" and px.corrupt_at is not None and resp.status < 300:
            m = re.match(r"bytes=(\d+)-", self.headers.get("Range", "bytes=0-"))
            offset = px.corrupt_at - int(m.group(1))
            if 0 <= offset < len(body):
                body = body[:offset] + bytes([body[offset] ^ 0x01]) + body[offset + 1 :]
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() in ("transfer-encoding", "connection"):
                continue
            if k.lower() == "etag" and px.etag == "strip":
                continue
            self.send_header(k, v)
        if px.etag == "kms":
            self.send_header("x-amz-server-side-encryption", "aws:kms")
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(body)


@pytest.fixture
def proxy(s3_server, s3_env):
    with serving(RewritingProxy(s3_server.endpoint_url), s3_env) as px:
        yield px


@pytest.fixture
def brew_object(s3_server, bucket, tiny_brew) -> str:
    s3_server.upload(tiny_brew, bucket, "models/tiny.brew")
    return f"s3://{bucket}/models/tiny.brew"


def models_in(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if not p.name.startswith(".") and not p.name.endswith(".json"))


# ---------------------------------------------------------------------------------------------- ETags


@pytest.mark.parametrize("etag", ["strip", "kms"])
def test_a_brew_object_without_an_md5_etag_downloads_and_is_checked_by_its_own_sha256(
    proxy, brew_object, tiny_brew, tmp_path, etag
):
    proxy.etag = etag
    got = fetch(config_from_uri(brew_object), cache_dir=tmp_path / "cache")
    assert got.path.read_bytes() == tiny_brew.read_bytes()
    assert got.integrity == "brew-sha256"


@pytest.mark.parametrize("etag", ["strip", "kms"])
def test_any_object_without_an_md5_etag_downloads_with_default_settings(s3_server, proxy, bucket, tmp_path, etag):
    data = os.urandom(70_000)
    s3_server.client().put_object(Bucket=bucket, Key="model.pkl", Body=data)
    proxy.etag = etag
    got = fetch(config_from_uri(f"s3://{bucket}/model.pkl"), cache_dir=tmp_path / "cache")
    assert got.path.read_bytes() == data and got.integrity == "size"


@pytest.mark.parametrize("verify, etag", [("size", "keep"), ("etag", "strip"), ("etag", "kms"), ("size", "strip")])
def test_a_corrupted_brew_download_is_refused_whatever_the_setting(
    proxy, brew_object, tiny_brew, tmp_path, s3_env, verify, etag
):
    s3_env.setenv("COLDBREW_S3_VERIFY", verify)
    proxy.etag = etag
    proxy.corrupt_at = tiny_brew.stat().st_size - 100  # a byte of the trees, deep in the payload
    with pytest.raises(SourceError, match=r"own SHA-256"):
        fetch(config_from_uri(brew_object), cache_dir=tmp_path / "cache")
    assert models_in(tmp_path / "cache") == []


@pytest.mark.parametrize("offset", [0, 40])  # the magic; the stored digest itself
def test_a_corrupted_brew_preamble_is_refused(proxy, brew_object, tmp_path, s3_env, offset):
    s3_env.setenv("COLDBREW_S3_VERIFY", "size")
    proxy.corrupt_at = offset
    with pytest.raises(SourceError, match=r"corrupt"):
        fetch(config_from_uri(brew_object), cache_dir=tmp_path / "cache")
    assert models_in(tmp_path / "cache") == []


# ---------------------------------------------------------------------------------------------- the cache


def test_a_new_cache_dir_is_private_whatever_the_umask(proxy, brew_object, tmp_path):
    old = os.umask(0)
    try:
        fetch(config_from_uri(brew_object), cache_dir=tmp_path / "cache")
    finally:
        os.umask(old)
    assert (tmp_path / "cache").stat().st_mode & 0o777 == 0o700


def planted_cache(brew_object, tmp_path) -> tuple[Path, Path]:
    """A cache holding the real object's name with other bytes of the same length (what an attacker plants)."""
    cache = tmp_path / "cache"
    got = fetch(config_from_uri(brew_object), cache_dir=cache)
    data = bytearray(got.path.read_bytes())
    data[-100] ^= 0x01
    got.path.write_bytes(bytes(data))
    return cache, got.path


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory to another user")
def test_a_cache_dir_owned_by_someone_else_is_refused(proxy, brew_object, tmp_path):
    cache, _planted = planted_cache(brew_object, tmp_path)
    os.chown(cache, OTHER_UID, OTHER_UID)
    with pytest.raises(SourceError, match=r"cache dir .* is owned by uid 54321"):
        fetch(config_from_uri(brew_object), cache_dir=cache)


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702, 0o1777])
def test_a_cache_dir_others_can_write_is_refused(proxy, brew_object, tmp_path, mode):
    cache, _planted = planted_cache(brew_object, tmp_path)
    os.chmod(cache, mode)
    with pytest.raises(SourceError, match=r"writable by other users"):
        fetch(config_from_uri(brew_object), cache_dir=cache)


def test_a_cache_dir_inside_a_directory_others_can_write_is_refused(proxy, brew_object, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)  # not sticky: anyone could rename our directory and put theirs in its place
    with pytest.raises(SourceError, match=r"inside .*shared, which is writable by other users"):
        fetch(config_from_uri(brew_object), cache_dir=shared / "cache")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a symlink to another user")
def test_a_cache_dir_that_is_someone_elses_symlink_is_refused(proxy, brew_object, tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "cache"
    link.symlink_to(real)
    os.lchown(link, OTHER_UID, OTHER_UID)
    with pytest.raises(SourceError, match=r"symlink owned by uid 54321"):
        fetch(config_from_uri(brew_object), cache_dir=link)


def test_a_cached_copy_changed_on_disk_is_downloaded_again(proxy, brew_object, tiny_brew, tmp_path):
    cache, _planted = planted_cache(brew_object, tmp_path)
    again = fetch(config_from_uri(brew_object), cache_dir=cache)
    assert not again.cached
    assert again.path.read_bytes() == tiny_brew.read_bytes()
    third = fetch(config_from_uri(brew_object), cache_dir=cache)
    assert third.cached and third.path.read_bytes() == tiny_brew.read_bytes()


def test_a_cached_copy_without_a_record_is_not_trusted(proxy, brew_object, tiny_brew, tmp_path):
    cache = tmp_path / "cache"
    first = fetch(config_from_uri(brew_object), cache_dir=cache)
    for record in cache.glob("*.json"):
        record.unlink()
    first.path.write_bytes(b"\0" * first.size_bytes)
    again = fetch(config_from_uri(brew_object), cache_dir=cache)
    assert not again.cached and again.path.read_bytes() == tiny_brew.read_bytes()


def test_a_cached_copy_that_still_matches_is_reused(proxy, brew_object, tmp_path, s3_env):
    cache = tmp_path / "cache"
    first = fetch(config_from_uri(brew_object), cache_dir=cache)
    again = fetch(config_from_uri(brew_object), cache_dir=cache)
    assert again.cached and again.path == first.path and again.integrity == first.integrity == "md5"


# ---------------------------------------------------------------------------------------------- output modes


def run_with_umask(umask: int, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "coldbrew", *args],
        check=True,
        capture_output=True,
        timeout=300,
        preexec_fn=lambda: os.umask(umask),
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


@pytest.mark.parametrize("umask, mode", [(0o027, 0o640), (0o002, 0o664), (0o077, 0o600)])
def test_compile_output_honours_the_umask(tiny_model, tmp_path, umask, mode):
    out = tmp_path / "m.brew"
    run_with_umask(umask, "compile", str(tiny_model), "-o", str(out))
    assert out.stat().st_mode & 0o777 == mode


@pytest.mark.parametrize("umask, mode", [(0o027, 0o640), (0o002, 0o664)])
def test_train_output_honours_the_umask(tmp_path, umask, mode):
    out = tmp_path / "m.pkl"
    run_with_umask(umask, "train", "-o", str(out), "--preset", "tiny")
    assert out.stat().st_mode & 0o777 == mode


# ---------------------------------------------------------------------------------------------- structure


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_fetch_and_s3_do_not_import_each_other_in_a_cycle():
    sources = REPO / "coldbrew" / "sources"
    into_s3 = "coldbrew.sources.s3" in imported_modules(sources / "fetch.py")
    into_fetch = "coldbrew.sources.fetch" in imported_modules(sources / "s3.py")
    assert not (into_s3 and into_fetch)


def brew_shaped(size: int) -> bytes:
    """Random bytes with the .brew magic and a correct .brew checksum — all the S3 layer checks (not loadable)."""
    import hashlib

    from coldbrew.format import spec

    data = bytearray(os.urandom(size))
    data[: len(spec.MAGIC)] = spec.MAGIC
    lo, hi = spec.DIGEST_OFFSET, spec.DIGEST_OFFSET + spec.DIGEST_SIZE
    data[lo:hi] = hashlib.sha256(bytes(data[:lo]) + bytes(data[hi:])).digest()
    return bytes(data)


@pytest.mark.parametrize("key, integrity", [("mp.brew", "brew-sha256"), ("mp.pkl", "size")])
def test_a_multipart_object_whose_parts_cannot_be_recomputed_downloads(
    s3_server, proxy, bucket, tmp_path, key, integrity
):
    """A first part smaller than the last (not what the SDKs make): the multipart ETag cannot be recomputed."""
    MiB = 1 << 20
    data = brew_shaped(11 * MiB) if key.endswith(".brew") else os.urandom(11 * MiB)
    client = s3_server.client()
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)
    parts = []
    for number, (a, b) in enumerate([(0, 5 * MiB), (5 * MiB, len(data))], 1):
        r = client.upload_part(Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=number, Body=data[a:b])
        parts.append({"PartNumber": number, "ETag": r["ETag"]})
    client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )
    assert client.head_object(Bucket=bucket, Key=key)["ETag"].strip('"').endswith("-2")
    got = fetch(config_from_uri(f"s3://{bucket}/{key}"), cache_dir=tmp_path / "cache")
    assert got.path.read_bytes() == data and got.integrity == integrity
