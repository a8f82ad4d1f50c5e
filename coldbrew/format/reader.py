"""Open a .brew file: mmap + preamble + JSON header + zero-copy array views. No per-tree work."""

from __future__ import annotations

import json
import mmap
import os
from pathlib import Path

import numpy as np

from coldbrew.errors import ModelFormatError
from coldbrew.format import spec

_HASH_CHUNK = 16 << 20


def parse_header(raw: bytes, path: object = "header") -> object:
    """The header's JSON, strictly: UTF-8, no NaN/Infinity, no duplicate keys, no nesting deep enough to
    exhaust the stack. Anything else is a one-line ``ModelFormatError``."""

    def no_constants(name: str):
        raise ValueError(f"{name} is not JSON")

    def no_duplicates(pairs: list) -> dict:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            raise ValueError("duplicate key in an object")
        return obj

    try:
        return json.loads(raw, parse_constant=no_constants, object_pairs_hook=no_duplicates)
    except RecursionError:
        raise ModelFormatError(f"{path}: corrupt header (JSON nested too deeply)") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelFormatError(f"{path}: corrupt header (not JSON: {str(exc)[:120]})") from None


def is_brew(path: str | os.PathLike) -> bool:
    """True if the file starts with the .brew magic bytes (the extension is irrelevant)."""
    with open(path, "rb") as fh:
        return fh.read(len(spec.MAGIC)) == spec.MAGIC


# Bytes per MADV_WILLNEED call of an eager open: the smallest common read-ahead window, page aligned.
EAGER_WINDOW = 128 * 1024


class BrewFile:
    """A memory-mapped .brew file: ``header`` (dict) and ``arrays`` (read-only numpy views into the map).

    Opening runs the cheap checks of docs/format.md section 5; ``verify=True`` also checks the SHA-256
    (reads every byte); ``eager=True`` asks the kernel to read the whole file ahead (MADV_WILLNEED).
    """

    def __init__(self, path: str | os.PathLike, *, verify: bool = False, eager: bool = False):
        self.path = Path(path)
        try:
            with open(self.path, "rb") as fh:
                self.size_bytes = os.fstat(fh.fileno()).st_size
                if self.size_bytes < spec.PREAMBLE_SIZE:
                    raise ModelFormatError(f"{self.path}: {self.size_bytes} bytes is too short for a .brew file")
                self._map = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise ModelFormatError(f"{self.path}: cannot open: {exc.strerror or exc}") from exc
        if eager and hasattr(self._map, "madvise"):
            # Linux reads at most the device's read-ahead window per MADV_WILLNEED call (from the start of the
            # range; often 128 KiB): advised in windows of that size, the whole file is read ahead.
            for start in range(0, self.size_bytes, EAGER_WINDOW):
                self._map.madvise(mmap.MADV_WILLNEED, start, min(EAGER_WINDOW, self.size_bytes - start))
        self.header = self._read_header()
        self.arrays = self._view_arrays()
        self._check_tree_offsets()
        self.check_finite(when=("load",))
        self.checksum_verified = False
        if verify:
            self.verify()

    def _read_header(self) -> dict:
        magic, version, h_len, p_off, p_len = spec.PREAMBLE.unpack_from(self._map, 0)
        if magic != spec.MAGIC:
            raise ModelFormatError(f"{self.path}: not a .brew file (bad magic bytes)")
        if version > spec.VERSION:
            raise ModelFormatError(
                f"{self.path}: written by a newer coldbrew (format version {version}); "
                f"this coldbrew reads up to version {spec.VERSION}: upgrade coldbrew"
            )
        if version < 1:
            raise ModelFormatError(f"{self.path}: invalid format version {version}")
        if h_len % spec.ALIGN or p_off != spec.PREAMBLE_SIZE + h_len:
            raise ModelFormatError(f"{self.path}: corrupt preamble (header length {h_len}, payload offset {p_off})")
        if p_off + p_len != self.size_bytes:
            what = "truncated" if p_off + p_len > self.size_bytes else "has trailing bytes"
            raise ModelFormatError(
                f"{self.path}: file {what}: {self.size_bytes} bytes on disk, the preamble says {p_off + p_len}"
            )
        self._payload_offset, self._payload_length = p_off, p_len
        header = parse_header(self._map[spec.PREAMBLE_SIZE : p_off], self.path)
        try:
            spec.validate_header(header, p_len, version)
        except ModelFormatError as exc:
            raise ModelFormatError(f"{self.path}: {exc}") from None
        return header

    def _view_arrays(self) -> dict[str, np.ndarray]:
        views = {}
        for name, (dtype_name, shape) in spec.expected_arrays(self.header).items():
            entry = self.header["arrays"][name]
            dtype = spec.array_dtype(dtype_name)
            count = entry["nbytes"] // dtype.itemsize
            arr = np.frombuffer(self._map, dtype=dtype, count=count, offset=self._payload_offset + entry["offset"])
            views[name] = arr.reshape(shape)
        return views

    def _check_tree_offsets(self) -> None:
        offsets = self.arrays["tree_offsets"]
        if offsets[0] != 0 or offsets[-1] != self.header["n_nodes"] or np.any(offsets[1:] <= offsets[:-1]):
            raise ModelFormatError(f"{self.path}: corrupt tree_offsets (must rise from 0 to n_nodes)")

    def check_finite(self, when: tuple[str, ...] = ("load", "visit")) -> None:
        """Refuse NaN or infinity in the arrays whose values must be finite (``spec.ArrayRule.finite``).

        At open only the small ``"load"`` arrays are checked; ``verify`` checks all of them (it reads every byte
        anyway), and the kernels check every ``"visit"`` value a prediction uses.
        """
        for name, arr in self.arrays.items():
            rule = spec.ARRAYS[name]
            if rule.finite not in when:
                continue
            invalid = spec.invalid_values(arr)
            if invalid.any():
                at = tuple(int(i) for i in np.argwhere(invalid)[0])
                raise ModelFormatError(
                    f"{self.path}: array {name} holds a non-finite value at {at[0] if len(at) == 1 else at} "
                    "(NaN, or an infinite leaf value; coldbrew compile never writes one): the file is corrupt"
                )

    def verify(self) -> None:
        """Check the SHA-256 over the whole file and that every value is finite; ModelFormatError if not."""
        import hashlib

        digest = hashlib.sha256(self._map[: spec.DIGEST_OFFSET])
        view = memoryview(self._map)
        try:
            for start in range(spec.PREAMBLE_SIZE, self.size_bytes, _HASH_CHUNK):
                digest.update(view[start : start + _HASH_CHUNK])
        finally:
            view.release()
        stored = self._map[spec.DIGEST_OFFSET : spec.DIGEST_OFFSET + spec.DIGEST_SIZE]
        if digest.digest() != stored:
            raise ModelFormatError(f"{self.path}: checksum mismatch: the file is corrupt")
        self.check_finite()  # a re-signed file passes the checksum; its values are still checked
        self.checksum_verified = True

    @property
    def digest_hex(self) -> str:
        """The SHA-256 stored in the preamble, hex."""
        return self._map[spec.DIGEST_OFFSET : spec.DIGEST_OFFSET + spec.DIGEST_SIZE].hex()
