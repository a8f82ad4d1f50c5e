"""Open a .brew file: mmap + preamble + JSON header + zero-copy array views. No per-tree work.

Standard library only (mmap, json, memoryview; struct only off the serving path): serving a .brew file needs no
numpy. A file of at most ``SMALL_FILE`` bytes (64 KiB) is read into memory instead of mapped: its few pages cost
less to copy than mmap costs to import and map. ``BrewFile.buffers`` are memoryviews into the map (or the bytes); ``BrewFile.arrays`` builds numpy views of the same bytes, importing numpy on first
use (tools, the numpy kernel, tests).
"""

from __future__ import annotations

import math
import os
import stat
import sys

from coldbrew import jsonlite  # json.loads/dumps without importing json (re, enum, ...)
from coldbrew.errors import ModelFormatError
from coldbrew.format import spec

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up (type checkers read it as true)

if TYPE_CHECKING:
    import mmap
    from typing import Any, Protocol

    import numpy as np

    # Only for type checkers: a Protocol needs typing, which the serving path does not import.
    class Checks(Protocol):
        """The checks that read every element of an array: the C kernel (``coldbrew.engine._kernel``) implements
        them in compiled code; :class:`StdlibChecks` is the default."""

        def rising(self, offsets: memoryview, /) -> bool:
            """True if the int64 values strictly increase."""
            ...

        def first_bad_node(self, nodes: memoryview, /) -> int:
            """Index of the first node record whose value no file may hold (NaN threshold, non-finite leaf), or -1."""
            ...

        def first_nonfinite(self, values: memoryview, /) -> int:
            """Index of the first NaN or infinity in float64 values, or -1."""
            ...


_HASH_CHUNK = 16 << 20


class StdlibChecks:
    """:class:`Checks` without compiled code: numpy when it is importable (the tools' environments), else loops."""

    @staticmethod
    def rising(offsets: memoryview) -> bool:
        import operator  # only without the C kernel

        return not any(map(operator.ge, offsets[:-1], offsets[1:]))

    @staticmethod
    def first_bad_node(nodes: memoryview) -> int:
        np = _numpy()
        if np is not None:
            from coldbrew.format import spec

            bad = spec.invalid_values(np.frombuffer(nodes, dtype=spec.NODE_DTYPE))
            return int(bad.argmax()) if bad.any() else -1
        import struct

        for i, (value, feature, _) in enumerate(struct.iter_unpack("<dii", nodes)):
            if math.isnan(value) if feature >= 0 else not math.isfinite(value):
                return i
        return -1

    @staticmethod
    def first_nonfinite(values: memoryview) -> int:
        np = _numpy() if len(values) > 1 << 16 else None  # small arrays (base_score at load): no numpy
        if np is not None:
            bad = ~np.isfinite(np.frombuffer(values, dtype="<f8"))
            return int(bad.argmax()) if bad.any() else -1
        import struct

        return next((i for i, (v,) in enumerate(struct.iter_unpack("<d", values)) if not math.isfinite(v)), -1)


def _numpy() -> Any:
    try:
        import numpy
    except ImportError:
        return None
    return numpy


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
        return jsonlite.loads(raw, parse_constant=no_constants, object_pairs_hook=no_duplicates)
    except RecursionError:
        raise ModelFormatError(f"{path}: corrupt header (JSON nested too deeply)") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelFormatError(f"{path}: corrupt header (not JSON: {str(exc)[:120]})") from None


def read_head(path: str | os.PathLike, n: int, label: str | None = None) -> bytes:
    """The first ``n`` bytes of ``path`` (fewer if it is shorter), to tell what the file holds.

    Raises ``ModelFormatError`` naming ``label`` (default: the path) if the file cannot be opened.
    """
    try:
        return _read_start(path, n)
    except OSError as exc:
        raise ModelFormatError(f"{path if label is None else label}: cannot open: {exc.strerror or exc}") from exc


def _read_start(path: str | os.PathLike | int, n: int) -> bytes:
    """Up to ``n`` bytes from the start of ``path`` (or of the open descriptor ``path``) through a bare file
    descriptor: ``open()`` builds a buffered file object (and asks the file whether it is a terminal) for a read of
    a few bytes, tens of microseconds of the cold start each time."""
    if isinstance(path, int):
        return _read_fd(path, n)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        return _read_fd(fd, n)
    finally:
        os.close(fd)


def _read_fd(fd: int, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, n - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def is_brew(path: str | os.PathLike) -> bool:
    """True if the file starts with the .brew magic bytes (the extension is irrelevant)."""
    return _read_start(path, len(spec.MAGIC)) == spec.MAGIC


# Files up to this size are read into memory instead of mapped: a copy of a few pages costs less than importing
# mmap (a shared library) and mapping, and every check and view works the same on the bytes.
SMALL_FILE = 64 * 1024
# Bytes per MADV_WILLNEED call of an eager open: the smallest common read-ahead window, page aligned.
EAGER_WINDOW = 128 * 1024


class BrewFile:
    """A memory-mapped .brew file (read into memory up to ``SMALL_FILE`` bytes): ``header`` (dict), ``buffers`` (memoryviews into the map) and ``arrays``
    (read-only numpy views of the same bytes, built on first use).

    Opening runs the cheap checks of docs/format.md section 5; ``verify=True`` also checks the SHA-256
    (reads every byte); ``eager=True`` asks the kernel to read the whole file ahead (MADV_WILLNEED). ``checks``
    runs the element-wise checks (the C kernel passes itself; default :class:`StdlibChecks`).
    """

    def __init__(
        self, path: str | os.PathLike, *, verify: bool = False, eager: bool = False, checks: Checks | None = None
    ):
        self.path = os.fspath(path)  # a str (or bytes) path: no pathlib on the serving path
        self._checks: Checks = checks if checks is not None else StdlibChecks()
        try:
            # a bare descriptor, not open()'s buffered file object: it only serves fstat and mmap
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            try:
                info = os.fstat(fd)
                if stat.S_ISDIR(info.st_mode):
                    raise ModelFormatError(f"{self.path}: cannot open: Is a directory")
                self.size_bytes = info.st_size
                if self.size_bytes < spec.PREAMBLE_SIZE:
                    raise ModelFormatError(f"{self.path}: {self.size_bytes} bytes is too short for a .brew file")
                if self.size_bytes <= SMALL_FILE:
                    self._map: bytes | mmap.mmap = _read_start(fd, self.size_bytes)
                    self.size_bytes = len(self._map)  # what was read is what every check below sees
                else:
                    import mmap

                    self._map = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
            finally:
                os.close(fd)
        except OSError as exc:
            raise ModelFormatError(f"{self.path}: cannot open: {exc.strerror or exc}") from exc
        if eager and hasattr(self._map, "madvise"):  # a read small file is already all in memory
            import mmap

            # Linux reads at most the device's read-ahead window per MADV_WILLNEED call (from the start of the
            # range; often 128 KiB): advised in windows of that size, the whole file is read ahead.
            for start in range(0, self.size_bytes, EAGER_WINDOW):
                self._map.madvise(mmap.MADV_WILLNEED, start, min(EAGER_WINDOW, self.size_bytes - start))
        self.header = self._read_header()
        self.buffers = self._view_buffers()
        self._arrays: dict[str, np.ndarray] | None = None
        self._check_tree_offsets()
        self.check_finite(when=("load",))
        self.checksum_verified = False
        if verify:
            self.verify()

    def _read_header(self) -> dict:
        # spec.PREAMBLE (<8sIIQQ) read with int.from_bytes: no struct module on the serving path
        pre = self._map[:32]
        magic, version, h_len = pre[:8], int.from_bytes(pre[8:12], "little"), int.from_bytes(pre[12:16], "little")
        p_off, p_len = int.from_bytes(pre[16:24], "little"), int.from_bytes(pre[24:32], "little")
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
        try:
            spec.check_header_size(h_len, p_len)
            raw = self._map[spec.PREAMBLE_SIZE : p_off]
            spec.check_header_containers(raw)
        except ModelFormatError as exc:
            raise ModelFormatError(f"{self.path}: {exc}") from None
        header = parse_header(raw, self.path)
        try:
            return spec.validate_header(header, p_len, version)
        except ModelFormatError as exc:
            raise ModelFormatError(f"{self.path}: {exc}") from None

    def _view_buffers(self) -> dict[str, memoryview]:
        """Each array as a flat memoryview of its bytes in the map: typed (``q``, ``d``, ...) for plain dtypes
        on a little-endian host, raw bytes (``B``) for node records and on big-endian hosts."""
        whole = memoryview(self._map)
        typed = sys.byteorder == "little"
        views = {}
        for name, (dtype_name, _shape) in spec.expected_arrays(self.header).items():
            entry = self.header["arrays"][name]
            start = self._payload_offset + entry["offset"]
            view = whole[start : start + entry["nbytes"]]
            fmt = spec.MEMORYVIEW_FORMATS.get(dtype_name)
            views[name] = view.cast(fmt) if typed and fmt else view  # type: ignore[call-overload]
        return views

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """Read-only numpy views into the map, shaped as the array table says (imports numpy on first use)."""
        if self._arrays is None:
            import numpy as np

            views = {}
            for name, (dtype_name, shape) in spec.expected_arrays(self.header).items():
                entry = self.header["arrays"][name]
                dtype = spec.array_dtype(dtype_name)
                count = entry["nbytes"] // dtype.itemsize
                arr = np.frombuffer(self._map, dtype=dtype, count=count, offset=self._payload_offset + entry["offset"])
                views[name] = arr.reshape(shape)
            self._arrays = views
        return self._arrays

    def _values(self, name: str) -> tuple:
        """A small array's values as Python numbers (little-endian whatever the host)."""
        raw = self.buffers[name].cast("B")
        code = {"<i8": "q", "<f8": "d", "|u1": "B", "<i4": "i", "<u4": "I"}[spec.ARRAYS[name].dtype]
        import struct  # big-endian hosts only

        return struct.unpack(f"<{len(raw) // struct.calcsize(code)}{code}", raw)

    def _check_tree_offsets(self) -> None:
        raw = self.buffers["tree_offsets"]
        raw = raw.cast("B") if raw.format != "B" else raw
        first = int.from_bytes(raw[:8], "little", signed=True)
        last = int.from_bytes(raw[len(raw) - 8 :], "little", signed=True)
        if first != 0 or last != self.header["n_nodes"]:
            raise ModelFormatError(f"{self.path}: corrupt tree_offsets (must rise from 0 to n_nodes)")
        if sys.byteorder == "little":
            rising = self._checks.rising(self.buffers["tree_offsets"])
        else:
            rising = StdlibChecks.rising(memoryview(self._values("tree_offsets")))  # type: ignore[arg-type]
        if not rising:
            raise ModelFormatError(f"{self.path}: corrupt tree_offsets (must rise from 0 to n_nodes)")

    def check_finite(self, when: tuple[str, ...] = ("load", "visit")) -> None:
        """Refuse NaN or infinity in the arrays whose values must be finite (``spec.ArrayRule.finite``).

        At open only the small ``"load"`` arrays are checked; ``verify`` checks all of them (it reads every byte
        anyway), and the kernels check every ``"visit"`` value a prediction uses.
        """
        for name, buf in self.buffers.items():
            rule = spec.ARRAYS[name]
            if rule.finite not in when:
                continue
            checks = self._checks if sys.byteorder == "little" else StdlibChecks()
            raw = buf.cast("B") if buf.format != "B" else buf
            first = checks.first_bad_node(raw) if rule.dtype == spec.NODE_DTYPE_NAME else checks.first_nonfinite(raw)
            if first >= 0:
                shape = spec.ARRAYS[name].shape(self.header)
                at = first if len(shape) == 1 else tuple(divmod(first, shape[1]))
                raise ModelFormatError(
                    f"{self.path}: array {name} holds a non-finite value at {at} "
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
