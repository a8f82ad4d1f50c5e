"""The .brew container: layout, alignment, and refusal of corrupt, truncated and future-version files."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from coldbrew.errors import ModelFormatError
from coldbrew.format import MAGIC, NODE_DTYPE, BrewFile, is_brew, spec, write_brew


def _header(n_trees=2, n_nodes=4):
    return {
        "kind": "gbm_regressor",
        "n_features": 2,
        "feature_names": ["a", "b"],
        "classes": None,
        "classes_dtype": None,
        "n_outputs": 1,
        "n_trees": n_trees,
        "n_nodes": n_nodes,
        "n_leaves": 3,
        "max_depth": 1,
        "leaf": "scalar",
        "combine": "sum",
        "output": "identity",
        "learning_rate": 0.1,
        "leaf_values_scaled": True,
    }


def _arrays():
    nodes = np.zeros(4, dtype=NODE_DTYPE)
    nodes[0] = (0.5, 1, 2)  # split on b <= 0.5, left = 1, right = 2
    nodes[1] = (1.25, -1, 0)
    nodes[2] = (-2.0, -1, 0)
    nodes[3] = (3.0, -1, 0)  # the second tree is a single leaf
    return {
        "nodes": nodes,
        "tree_offsets": np.array([0, 3, 4], dtype=np.int64),
        "base_score": np.array([0.75]),
    }


@pytest.fixture
def brew_path(tmp_path):
    path = tmp_path / "m.brew"
    write_brew(path, _header(), _arrays())
    return path


def test_round_trip_and_alignment(brew_path):
    f = BrewFile(brew_path, verify=True)
    assert f.checksum_verified
    assert is_brew(brew_path)
    data = brew_path.read_bytes()
    assert data[:8] == MAGIC
    _, version, h_len, p_off, p_len = spec.PREAMBLE.unpack_from(data)
    assert version == 1 and p_off == 64 + h_len and p_off % 64 == 0 and len(data) == p_off + p_len
    header = json.loads(data[64:p_off])
    assert header["feature_names"] == ["a", "b"] and header["checksum"]["algorithm"] == "sha256"
    for name, entry in header["arrays"].items():
        assert (p_off + entry["offset"]) % 64 == 0
        assert np.array_equal(f.arrays[name], _arrays()[name])
    assert not f.arrays["nodes"].flags.writeable  # views into the read-only map, not copies


def test_eager_open(brew_path):
    assert BrewFile(brew_path, eager=True).header["n_trees"] == 2


def test_not_brew(tmp_path):
    path = tmp_path / "x.brew"
    path.write_bytes(b"\x80\x05 definitely a pickle" + bytes(100))
    assert not is_brew(path)
    with pytest.raises(ModelFormatError, match="bad magic"):
        BrewFile(path)


@pytest.mark.parametrize("size", [0, 10, 63])
def test_too_short(tmp_path, size):
    path = tmp_path / "short.brew"
    path.write_bytes(MAGIC[:size] if size <= 8 else MAGIC + bytes(size - 8))
    with pytest.raises(ModelFormatError, match="too short"):
        BrewFile(path)


def test_truncated(brew_path):
    data = brew_path.read_bytes()
    brew_path.write_bytes(data[:-1])
    with pytest.raises(ModelFormatError, match="truncated"):
        BrewFile(brew_path)


def test_trailing_bytes(brew_path):
    brew_path.write_bytes(brew_path.read_bytes() + b"\0")
    with pytest.raises(ModelFormatError, match="trailing"):
        BrewFile(brew_path)


def test_future_version(brew_path):
    data = bytearray(brew_path.read_bytes())
    struct.pack_into("<I", data, 8, spec.VERSION + 1)
    brew_path.write_bytes(bytes(data))
    with pytest.raises(ModelFormatError, match=f"newer coldbrew.*version {spec.VERSION + 1}"):
        BrewFile(brew_path)


def test_corrupt_header(brew_path):
    data = bytearray(brew_path.read_bytes())
    data[64] = ord("[")
    brew_path.write_bytes(bytes(data))
    with pytest.raises(ModelFormatError, match="header"):
        BrewFile(brew_path)


def test_flipped_payload_bit_needs_checksum(brew_path):
    """A bit flip in a leaf value passes the cheap checks; the checksum catches it."""
    data = bytearray(brew_path.read_bytes())
    data[-1] ^= 0x01
    brew_path.write_bytes(bytes(data))
    BrewFile(brew_path)  # cheap checks pass
    with pytest.raises(ModelFormatError, match="checksum mismatch"):
        BrewFile(brew_path, verify=True)


def _rewrite_header(path, mutate):
    data = path.read_bytes()
    _, version, h_len, p_off, p_len = spec.PREAMBLE.unpack_from(data)
    header = json.loads(data[64:p_off])
    mutate(header)
    text = json.dumps(header, separators=(",", ":")).encode()
    assert len(text) <= h_len
    path.write_bytes(data[:64] + text + b" " * (h_len - len(text)) + data[p_off:])


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda h: h.pop("kind"), "lacks the required field 'kind'"),
        (lambda h: h.update(kind="neural_net"), "kind 'neural_net' is not one of"),
        (lambda h: h["arrays"]["nodes"].update(offset=8), "64-aligned"),
        (lambda h: h["arrays"]["nodes"].update(shape=[5]), "shape"),
        (lambda h: h["arrays"]["base_score"].update(offset=h["arrays"]["nodes"]["offset"]), "overlap"),
        (lambda h: h["arrays"]["base_score"].update(offset=1 << 20), "past the end"),
        (lambda h: h.update(n_features=True), "wrong type"),
    ],
)
def test_bad_header_fields(brew_path, mutate, message):
    _rewrite_header(brew_path, mutate)
    with pytest.raises(ModelFormatError, match=message):
        BrewFile(brew_path)


def test_bad_tree_offsets(tmp_path):
    arrays = _arrays()
    arrays["tree_offsets"] = np.array([0, 4, 4], dtype=np.int64)
    path = tmp_path / "m.brew"
    write_brew(path, _header(), arrays)
    with pytest.raises(ModelFormatError, match="tree_offsets"):
        BrewFile(path)


def test_failed_write_leaves_nothing(tmp_path):
    arrays = _arrays()
    arrays["base_score"] = np.zeros(3)  # disagrees with n_outputs = 1
    with pytest.raises(ModelFormatError):
        write_brew(tmp_path / "m.brew", _header(), arrays)
    assert list(tmp_path.iterdir()) == []


def test_missing_file(tmp_path):
    with pytest.raises(ModelFormatError, match="cannot open"):
        BrewFile(tmp_path / "nope.brew")


def test_small_files_are_read_and_large_ones_mapped(tmp_path, brew_path):
    """Up to 64 KiB a file is read into memory (cheaper than importing mmap at a cold start); above, mapped. Both
    give the same header, buffers and checks."""
    import mmap

    small = BrewFile(brew_path, verify=True)
    from coldbrew.format import reader

    assert isinstance(small._map, bytes) and small.size_bytes <= reader.SMALL_FILE
    n = reader.SMALL_FILE // 16 + 1  # one tree with enough leaves-as-nodes to pass 64 KiB
    nodes = np.zeros(n, dtype=NODE_DTYPE)
    nodes["feature"] = -1
    nodes["value"] = 1.0
    header = _header(n_trees=n, n_nodes=n) | {"n_leaves": n, "max_depth": 0}
    arrays = {"nodes": nodes, "tree_offsets": np.arange(n + 1, dtype=np.int64), "base_score": np.array([0.0])}
    big_path = tmp_path / "big.brew"
    write_brew(big_path, header, arrays)
    big = BrewFile(big_path, verify=True, eager=True)
    assert isinstance(big._map, mmap.mmap) and big.size_bytes > reader.SMALL_FILE
    assert bytes(big.buffers["tree_offsets"].cast("B")) == arrays["tree_offsets"].tobytes()
    assert small.digest_hex == brew_path.read_bytes()[32:64].hex()
