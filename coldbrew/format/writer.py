"""Write a .brew file: header + 64-byte aligned arrays + SHA-256, atomically (temp file, then rename)."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from coldbrew.atomicfile import atomic_write
from coldbrew.format import spec


def _layout(header: dict, arrays: dict[str, np.ndarray]) -> tuple[dict, int]:
    """Fill in the array table; returns (table, payload length)."""
    table: dict[str, dict] = {}
    offset = 0
    for name, arr in arrays.items():
        dtype_name = spec.NODE_DTYPE_NAME if arr.dtype == spec.NODE_DTYPE else arr.dtype.str
        table[name] = {"dtype": dtype_name, "shape": list(arr.shape), "offset": offset, "nbytes": arr.nbytes}
        offset = spec.align(offset + arr.nbytes)
    last = max(table.values(), key=lambda e: e["offset"])
    return table, last["offset"] + last["nbytes"]


def _little_endian(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == spec.NODE_DTYPE or arr.dtype.byteorder in ("<", "|"):
        return np.ascontiguousarray(arr)
    return np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("<")))


def write_brew(path: str | os.PathLike, header: dict, arrays: dict[str, np.ndarray]) -> int:
    """Write ``header`` (without format/version/arrays/checksum) and ``arrays`` to ``path``; returns bytes written.

    ``arrays`` must be exactly the arrays the header's shape calls for (see ``spec.expected_arrays``). The
    file is written as format version 2 when it carries ``node_flags`` (the version 2 kinds), else as version 1,
    so files of the version 1 kinds stay readable by older coldbrew releases; as version 3 when it uses a
    value of version 3: an input stage (``inputs``, section 12) or a value of section 13 (``spec.needs_v3``).
    """
    version = 3 if spec.needs_v3(header) else 2 if "node_flags" in arrays else 1
    arrays = {name: _little_endian(arr) for name, arr in arrays.items()}
    table, payload_length = _layout(header, arrays)
    full = {"format": spec.FORMAT_NAME, "version": version, **header, "checksum": spec.CHECKSUM, "arrays": table}
    spec.validate_header(full, payload_length, version)
    for name, arr in arrays.items():  # readers refuse NaN and infinity in these: never write one
        if spec.ARRAYS[name].finite and spec.invalid_values(arr).any():
            raise ValueError(f"array {name} holds NaN or an infinite leaf value: a .brew file cannot represent it")
    text = json.dumps(full, separators=(",", ":"), allow_nan=False).encode("utf-8")
    spec.check_header_size(spec.align(len(text)), payload_length)  # what a reader would refuse is never written
    spec.check_header_containers(text)
    header_bytes = text + b" " * (spec.align(len(text)) - len(text))
    payload_offset = spec.PREAMBLE_SIZE + len(header_bytes)
    prefix = spec.PREAMBLE.pack(spec.MAGIC, version, len(header_bytes), payload_offset, payload_length)

    digest = hashlib.sha256(prefix)
    with atomic_write(path, fsync=True) as fh:
        fh.write(prefix + bytes(spec.PREAMBLE_SIZE - len(prefix)))

        def put(data) -> None:
            digest.update(data)
            fh.write(data)

        put(header_bytes)
        position = 0
        for name, arr in arrays.items():
            gap = table[name]["offset"] - position
            if gap:
                put(bytes(gap))
            put(arr.reshape(-1).view(np.uint8))
            position = table[name]["offset"] + arr.nbytes
        fh.seek(spec.DIGEST_OFFSET)
        fh.write(digest.digest())
    return payload_offset + payload_length
