"""The SeaweedFS launcher: loopback only, usable, and nothing left running after stop()."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time

import pytest
from machine import listening_tcp, process_group

from coldbrew.lab.s3server import GRPC_OFFSET, SeaweedS3

pytestmark = pytest.mark.integration  # every test here spawns a process or a server


def _group_pids(pgid: int) -> list[int]:
    return process_group(pgid)  # /proc, so the test does not depend on procps being installed


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_start_use_stop_leaves_nothing_behind(tmp_path):
    """Also: a parent killed without stop() takes the server with it (see the next test)."""
    server = SeaweedS3(tmp_path / "data").start()
    try:
        pgid = server.proc.pid
        assert _group_pids(pgid)
        assert server.endpoint_url.startswith("http://127.0.0.1:")
        env = server.env()
        assert env["AWS_ENDPOINT_URL"] == server.endpoint_url and env["AWS_REGION"] == env["AWS_DEFAULT_REGION"]
        server.create_bucket("launcher-test")
        server.create_bucket("launcher-test")  # idempotent
        (tmp_path / "f").write_bytes(b"hello")
        server.upload(tmp_path / "f", "launcher-test", "a/b")
        assert server.client().get_object(Bucket="launcher-test", Key="a/b")["Body"].read() == b"hello"
        # Every listening socket of the group is on loopback (read from /proc/net/tcp*, no `ss` needed).
        mine = listening_tcp(_group_pids(pgid))
        assert server.ports["s3"] in {port for _, port in mine}, (mine, server.ports)
        assert all(address == "127.0.0.1" for address, _ in mine), mine
    finally:
        server.stop()
    assert _group_pids(pgid) == []
    assert not any(_listening(p) or _listening(p + GRPC_OFFSET) for p in server.ports.values())
    assert not list((tmp_path / "data").glob("*.sock"))
    assert "S3" in (tmp_path / "data" / "weed.log").read_text()
    server.stop()  # idempotent


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs util-linux setpriv")
def test_server_dies_with_a_killed_parent(tmp_path):
    code = (
        "import sys, time; from coldbrew.lab.s3server import SeaweedS3; "
        "s = SeaweedS3(sys.argv[1]).start(); print(s.proc.pid, flush=True); time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "data")], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(parent.stdout.readline())
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 5
    while _group_pids(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _group_pids(pid) == []


def test_an_uploaded_model_is_stored_as_sent_not_gzipped(tmp_path):
    """SeaweedFS gzips an untyped part whose first 128 bytes compress, then gunzips it on every GET (CPU S3 does
    not spend); the lab's multipart upload types its parts, so the volume holds the bytes as sent."""
    data = (bytes(4093) + b"brew") * (10 * 1024)  # 40 MiB that compress to almost nothing; multipart (> 8 MiB)
    (tmp_path / "m.brew").write_bytes(data)
    server = SeaweedS3(tmp_path / "data").start()
    try:
        server.create_bucket("stored")
        server.upload(tmp_path / "m.brew", "stored", "m.brew")
        got = server.client().get_object(Bucket="stored", Key="m.brew")
        assert got["Body"].read() == data and "-" in got["ETag"]  # a multipart ETag, as an SDK upload gives
        stored = sum(p.stat().st_size for p in (tmp_path / "data").glob("stored_*.dat"))
        assert stored >= len(data), f"volume holds {stored} bytes for {len(data)}: the parts were compressed"
    finally:
        server.stop()
