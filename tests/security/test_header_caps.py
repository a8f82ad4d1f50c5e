"""Every bound on a .brew header is proportional to what the format needs (docs/format.md section 1.2).

The audit's files: a 21 MB header of 7 million empty JSON objects took 568 MB and 2.4 s to refuse; 4 million
``[[]]`` took 730 MB and 4.6 s. Each is loaded here in a fresh process, with the payload padded to the header's
size (so the size cap alone does not decide) and without, and must be refused with one line, quickly, without
the process growing by more than a few tens of MB.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from brewcraft import build, split

from coldbrew.engine import load_predictor
from coldbrew.errors import ModelFormatError
from coldbrew.format import spec

PROBE = r"""
import resource, sys, time
from coldbrew.engine import load_predictor
from coldbrew.errors import ModelFormatError
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
try:
    load_predictor(sys.argv[1])
    print("loaded")
except ModelFormatError as exc:
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(f"{time.perf_counter() - t:.3f} {grown:.1f} {exc}")
"""


def _padded(tiny: bytes, filler: bytes, count: int, *, grow_payload: bool) -> bytes:
    text, payload = split(tiny)
    header = json.loads(text)
    raw = json.dumps(header, separators=(",", ":")).encode()[:-1] + b',"pad":[' + b",".join([filler] * count) + b"]}"
    if grow_payload:  # make the payload as large as the header, so the size cap alone does not refuse it
        payload += bytes(len(raw))
    return build(raw, payload)


@pytest.mark.parametrize("grow_payload", [False, True], ids=["small-payload", "payload-as-large"])
@pytest.mark.parametrize(("filler", "count"), [(b"{}", 7_000_000), (b"[[]]", 4_000_000)], ids=["objects", "lists"])
def test_padded_headers_are_refused_fast_and_small(tiny_brew, tmp_path, filler, count, grow_payload):
    path = tmp_path / "padded.brew"
    path.write_bytes(_padded(tiny_brew.read_bytes(), filler, count, grow_payload=grow_payload))
    out = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    seconds, grown_mb, message = out.stdout.strip().split(" ", 2)
    assert "\n" not in message
    assert "header" in message, message
    assert float(seconds) < 0.5, out.stdout
    assert float(grown_mb) < 64, out.stdout


def test_container_cap_is_exact(tiny_brew, tmp_path):
    """A header at the cap loads; one bracket more is refused."""
    text, payload = split(tiny_brew.read_bytes())
    header = json.loads(text)
    header["note"] = ""
    base = json.dumps(header, separators=(",", ":")).encode()
    brackets = base.count(b"{") + base.count(b"[")
    header["note"] = "{" * (spec.MAX_HEADER_CONTAINERS - brackets)
    path = tmp_path / "brackets.brew"
    path.write_bytes(build(header, payload))
    assert load_predictor(path).predict([[34, 261799, 11, 0, 0, 56]])
    header["note"] += "["
    path.write_bytes(build(header, payload))
    with pytest.raises(ModelFormatError, match="JSON objects and arrays"):
        load_predictor(path)


def test_payload_bytes_after_the_last_array_are_refused(tiny_brew, tmp_path):
    text, payload = split(tiny_brew.read_bytes())
    path = tmp_path / "trailing.brew"
    path.write_bytes(build(json.loads(text), payload + bytes(64)))
    with pytest.raises(ModelFormatError, match="past its last array"):
        load_predictor(path)


def test_header_larger_than_the_model_is_refused(tiny_brew, tmp_path):
    text, payload = split(tiny_brew.read_bytes())
    header = json.loads(text)
    header["note"] = "x" * spec.MIN_HEADER_BYTES
    path = tmp_path / "long.brew"
    path.write_bytes(build(header, payload))
    with pytest.raises(ModelFormatError, match="exceeds max"):
        load_predictor(path)


def test_header_depth_beyond_the_limit_is_refused(tiny_brew, tmp_path):
    text, payload = split(tiny_brew.read_bytes())
    header = json.loads(text)
    header["max_depth"] = spec.MAX_DEPTH + 1
    path = tmp_path / "deep.brew"
    path.write_bytes(build(header, payload))
    with pytest.raises(ModelFormatError, match="limit of 1024"):
        load_predictor(path)
