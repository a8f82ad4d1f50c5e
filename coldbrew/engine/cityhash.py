"""CityHash64 (CityHash version 1, as in CatBoost's ``util/digest/city.cpp``), in pure Python for serving.

CatBoost hashes a categorical value (the UTF-8 bytes of its string) with ``CalcCatFeatureHash``:
``CityHash64(bytes) & 0xffffffff``; one-hot splits compare those hashes. :func:`catboost_cat_hash` is that, so
the input stage (docs/format.md section 12, op ``catboost_hash``) turns a request's string into the number the
model's splits test, without numpy or catboost. Python's integers are exact: every 64-bit operation is masked.
"""

from __future__ import annotations

_M = (1 << 64) - 1
K0 = 0xC3A5C85C97CB3127
K1 = 0xB492B66FBE98F273
K2 = 0x9AE16A3B2F90404F
K3 = 0xC949D7C7509E6557
_KMUL = 0x9DDFEA08EB382D69


def _load64(s: bytes, i: int) -> int:
    return int.from_bytes(s[i : i + 8], "little")


def _load32(s: bytes, i: int) -> int:
    return int.from_bytes(s[i : i + 4], "little")


def _rotate(v: int, shift: int) -> int:
    return v if shift == 0 else ((v >> shift) | (v << (64 - shift))) & _M


def _shift_mix(v: int) -> int:
    return v ^ (v >> 47)


def _hash16(u: int, v: int) -> int:
    """Hash128to64 of the pair (low u, high v)."""
    a = ((u ^ v) * _KMUL) & _M
    a ^= a >> 47
    b = ((v ^ a) * _KMUL) & _M
    b ^= b >> 47
    return (b * _KMUL) & _M


def _len0to16(s: bytes, n: int) -> int:
    if n > 8:
        a, b = _load64(s, 0), _load64(s, n - 8)
        return _hash16(a, _rotate((b + n) & _M, n)) ^ b
    if n >= 4:
        a = _load32(s, 0)
        return _hash16((n + (a << 3)) & _M, _load32(s, n - 4))
    if n > 0:
        y = (s[0] + (s[n >> 1] << 8)) & 0xFFFFFFFF
        z = (n + (s[n - 1] << 2)) & 0xFFFFFFFF
        return (_shift_mix(((y * K2) & _M) ^ ((z * K3) & _M)) * K2) & _M
    return K2


def _len17to32(s: bytes, n: int) -> int:
    a = (_load64(s, 0) * K1) & _M
    b = _load64(s, 8)
    c = (_load64(s, n - 8) * K2) & _M
    d = (_load64(s, n - 16) * K0) & _M
    return _hash16(
        (_rotate((a - b) & _M, 43) + _rotate(c, 30) + d) & _M,
        (a + _rotate(b ^ K3, 20) - c + n) & _M,
    )


def _weak32(w: int, x: int, y: int, z: int, a: int, b: int) -> tuple[int, int]:
    a = (a + w) & _M
    b = _rotate((b + a + z) & _M, 21)
    c = a
    a = (a + x + y) & _M
    b = (b + _rotate(a, 44)) & _M
    return (a + z) & _M, (b + c) & _M


def _weak32s(s: bytes, i: int, a: int, b: int) -> tuple[int, int]:
    return _weak32(_load64(s, i), _load64(s, i + 8), _load64(s, i + 16), _load64(s, i + 24), a, b)


def _len33to64(s: bytes, n: int) -> int:
    z = _load64(s, 24)
    a = (_load64(s, 0) + ((n + _load64(s, n - 16)) * K0)) & _M
    b = _rotate((a + z) & _M, 52)
    c = _rotate(a, 37)
    a = (a + _load64(s, 8)) & _M
    c = (c + _rotate(a, 7)) & _M
    a = (a + _load64(s, 16)) & _M
    vf = (a + z) & _M
    vs = (b + _rotate(a, 31) + c) & _M
    a = (_load64(s, 16) + _load64(s, n - 32)) & _M
    z = _load64(s, n - 8)
    b = _rotate((a + z) & _M, 52)
    c = _rotate(a, 37)
    a = (a + _load64(s, n - 24)) & _M
    c = (c + _rotate(a, 7)) & _M
    a = (a + _load64(s, n - 16)) & _M
    wf = (a + z) & _M
    ws = (b + _rotate(a, 31) + c) & _M
    r = _shift_mix((((vf + ws) & _M) * K2 + ((wf + vs) & _M) * K0) & _M)
    return (_shift_mix((r * K0 + vs) & _M) * K2) & _M


def city_hash64(s: bytes) -> int:
    """CityHash64 (version 1) of ``s``, an unsigned 64-bit integer."""
    n = len(s)
    if n <= 16:
        return _len0to16(s, n)
    if n <= 32:
        return _len17to32(s, n)
    if n <= 64:
        return _len33to64(s, n)
    x = _load64(s, 0)
    y = _load64(s, n - 16) ^ K1
    z = _load64(s, n - 56) ^ K0
    v = _weak32s(s, n - 64, n, y)
    w = _weak32s(s, n - 32, (n * K1) & _M, K0)
    z = (z + _shift_mix(v[1]) * K1) & _M
    x = (_rotate((z + x) & _M, 39) * K1) & _M
    y = (_rotate(y, 33) * K1) & _M
    remaining = (n - 1) & ~63
    i = 0
    while True:
        x = (_rotate((x + y + v[0] + _load64(s, i + 16)) & _M, 37) * K1) & _M
        y = (_rotate((y + v[1] + _load64(s, i + 48)) & _M, 42) * K1) & _M
        x ^= w[1]
        y ^= v[0]
        z = _rotate(z ^ w[0], 33)
        v = _weak32s(s, i, (v[1] * K1) & _M, (x + w[0]) & _M)
        w = _weak32s(s, i + 32, (z + w[1]) & _M, y)
        z, x = x, z
        i += 64
        remaining -= 64
        if remaining == 0:
            break
    return _hash16(
        (_hash16(v[0], w[0]) + _shift_mix(y) * K1 + z) & _M,
        (_hash16(v[1], w[1]) + x) & _M,
    )


#: Hashes of short values already seen (a one-hot column tests each request's value once per category it splits
#: on): at most ``_CACHE_SIZE`` values of at most ``_CACHE_CHARS`` characters, so memory stays bounded.
_CACHE: dict[str, int] = {}
_CACHE_SIZE, _CACHE_CHARS = 1 << 16, 64


def catboost_cat_hash(value: str) -> int:
    """CatBoost's hash of a categorical value (``CalcCatFeatureHash``): the low 32 bits of CityHash64 of its UTF-8
    bytes, an unsigned 32-bit integer (CatBoost's JSON export prints it as the signed int32 with the same bits).
    A string with no UTF-8 form (a lone surrogate) raises ``UnicodeEncodeError``."""
    h = _CACHE.get(value)
    if h is None:
        h = city_hash64(value.encode("utf-8")) & 0xFFFFFFFF
        if len(value) <= _CACHE_CHARS:
            if len(_CACHE) >= _CACHE_SIZE:
                _CACHE.clear()
            _CACHE[value] = h
    return h
