"""A small UBJSON reader, enough for XGBoost's ``.ubj`` model files (no xgboost needed).

XGBoost writes Universal Binary JSON (ubjson.org, draft 12) big-endian: objects ``{`` key value ... ``}`` with
keys as ``L``-length strings, typed arrays ``[$<type>#L<count>`` followed by the raw big-endian values, plain
arrays, and the scalar markers ``Z T F i U I l L d D S C``. Typed arrays become numpy arrays (native byte
order); everything else becomes the matching Python value. Malformed input raises ``ModelFormatError``.
"""

from __future__ import annotations

import struct

import numpy as np

from coldbrew.errors import ModelFormatError

_SCALARS = {b"i": ">b", b"U": ">B", b"I": ">h", b"l": ">i", b"L": ">q", b"d": ">f", b"D": ">d", b"C": ">b"}
_TYPED = {b"i": ">i1", b"U": "u1", b"I": ">i2", b"l": ">i4", b"L": ">i8", b"d": ">f4", b"D": ">f8"}
_MAX_DEPTH = 64


class _Reader:
    def __init__(self, data: bytes):
        self.data = memoryview(data)
        self.pos = 0

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise ModelFormatError(f"UBJSON: truncated at byte {self.pos} (wanted {n} more)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def marker(self) -> bytes:
        return bytes(self.take(1))

    def peek(self) -> bytes:
        if self.pos >= len(self.data):
            raise ModelFormatError("UBJSON: truncated (unexpected end of data)")
        return bytes(self.data[self.pos : self.pos + 1])

    def number(self, m: bytes):
        fmt = _SCALARS[m]
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def count(self) -> int:
        m = self.marker()
        if m not in (b"i", b"U", b"I", b"l", b"L"):
            raise ModelFormatError(f"UBJSON: a length must be an integer, got marker {m!r} at byte {self.pos - 1}")
        n = self.number(m)
        if n < 0 or n > len(self.data):
            raise ModelFormatError(f"UBJSON: impossible length {n} at byte {self.pos}")
        return n

    def string(self) -> str:
        n = self.count()
        try:
            return bytes(self.take(n)).decode("utf-8")
        except UnicodeDecodeError:
            raise ModelFormatError(f"UBJSON: a string is not UTF-8 (byte {self.pos - n})") from None

    def value(self, depth: int = 0):
        if depth > _MAX_DEPTH:
            raise ModelFormatError("UBJSON: nested too deeply")
        m = self.marker()
        if m == b"{":
            out = {}
            while self.peek() != b"}":
                key = self.string()
                out[key] = self.value(depth + 1)
            self.take(1)
            return out
        if m == b"[":
            return self.array(depth)
        if m in _SCALARS:
            return self.number(m)
        if m == b"S":
            return self.string()
        if m == b"Z":
            return None
        if m == b"T":
            return True
        if m == b"F":
            return False
        raise ModelFormatError(f"UBJSON: unknown marker {m!r} at byte {self.pos - 1}")

    def array(self, depth: int):
        if self.peek() == b"$":
            self.take(1)
            t = self.marker()
            if t not in _TYPED:
                raise ModelFormatError(f"UBJSON: typed array of {t!r} is not supported")
            if self.marker() != b"#":
                raise ModelFormatError("UBJSON: a typed array needs a count")
            n = self.count()
            dtype = np.dtype(_TYPED[t])
            raw = self.take(n * dtype.itemsize)
            return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="))
        if self.peek() == b"#":
            self.take(1)
            return [self.value(depth + 1) for _ in range(self.count())]
        out = []
        while self.peek() != b"]":
            out.append(self.value(depth + 1))
        self.take(1)
        return out


def loads(data: bytes):
    """Parse one UBJSON value from ``data`` (trailing bytes are an error)."""
    reader = _Reader(data)
    value = reader.value()
    if reader.pos != len(data):
        raise ModelFormatError(f"UBJSON: {len(data) - reader.pos} unexpected bytes after the value")
    return value
