"""CatBoost's exp, operation for operation, in pure Python (no numpy): the ``exp_cb`` and ``softmax_cb`` outputs.

CatBoost's ``Exponent`` predictions (``Poisson``, ``Tweedie``) and ``MultiClass`` probabilities go through
``NCB::FastExpWithInfInplace`` (``catboost/libs/helpers/math_utils.cpp``). On x86-64 that is herumi's
``fmath::expd_v`` (``contrib/libs/fmath/fmath.hpp``), compiled twice: with AVX2 (4 lanes) and with SSE2 (2 lanes),
chosen by the CPU; the last ``n % 4`` (``n % 2``) values of a call go through the scalar ``fmath::expd``. All three
are the same float64 operations, no fused multiply-add (checked: ``tests/engine/test_cbexp.py``)::

    d = x * a + b                       a = 2048 / log(2), b = 3 * 2**51: rounds x * a to an integer k
    t = (d - b) * ra - x                ra = 1 / a
    y = ((C3 - t) * (t * t)) * C2 - t + C1
    result = y * 2**(k >> 11) * T[k & 2047]   (the power of two and table mantissa assembled as bits)

with ``T[i]`` the mantissa of the correctly rounded ``2 ** (i / 2048)``. They differ only outside the
arithmetic: the vector paths clamp x to [-708.39641853226408, 709.78272569338397] (so -inf and anything at or
below -708.396... give 2.2250738585072014e-308, and NaN gives +inf), the scalar one answers 0.0 there and NaN
for NaN. Which path a value takes depends on its position in the call and on the CPU, so coldbrew compiles a
model only when its raw scores (MultiClass: raw minus the row's largest) stay above -708.39641853226408, where
every path gives the same bits (``coldbrew/convert/catboost.py``); these functions follow the vector paths.

On other architectures (aarch64) CatBoost calls libm's ``exp`` instead, so its own predictions differ from its
x86-64 ones; ``.brew`` answers the x86-64 values.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from decimal import Decimal, localcontext
from functools import cache

#: Table bits: 2048 entries of 2 ** (i / 2048).
SBIT = 11
A = 2048 / math.log(2.0)  # fmath's ExpdVar: a = s / log(2.0) (log(2.0) is correctly rounded in every libm)
RA = 1 / A
B = float(3 << 51)
ADJ = (1 << (SBIT + 10)) - (1 << SBIT)
C1, C2, C3 = 1.0, 0.16666666685227835064, 3.0000000027955394
#: The vector paths' clamps (the upper one is 709.78272569..., not the scalar path's 709.78271289...).
X_MAX = 709.78272569338397
X_MIN = -708.39641853226408
#: Raw scores above this give the same bits on every path of CatBoost's exp (below it, or NaN, they do not).
SAFE_LOW = X_MIN
_MASK52 = (1 << 52) - 1
_MASK64 = (1 << 64) - 1


@cache
def table() -> tuple[int, ...]:
    """The 52-bit mantissas of the correctly rounded ``2 ** (i / 2048)``, i = 0 .. 2047 (fmath's ``ExpdVar.tbl``,
    which catboost fills with libm's ``pow(2.0, i * (1.0 / 2048))``: correctly rounded there)."""
    out = []
    with localcontext() as ctx:
        ctx.prec = 60
        for i in range(1 << SBIT):
            scaled = Decimal(2) ** (Decimal(i) / 2048 + 52)  # in [2**52, 2**53): the double's integer significand
            m = int(scaled.to_integral_value(rounding="ROUND_HALF_EVEN"))
            if abs(scaled - int(scaled) - Decimal("0.5")) < Decimal("1e-40"):
                raise ArithmeticError(f"2**({i}/2048) is too close to a tie to round")
            out.append(m & _MASK52)
    return tuple(out)


def _bits(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def _double(u: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", u & _MASK64))[0]


def fast_exp(x: float) -> float:
    """``fmath::expd_v`` on one value, as its vector lanes compute it (``_mm_min_pd`` then ``_mm_max_pd``)."""
    x = x if x < X_MAX else X_MAX  # minpd(x, max): the second operand unless x < max (so NaN -> max)
    x = x if x > X_MIN else X_MIN
    d = x * A + B
    di = _bits(d)
    t = (d - B) * RA - x
    u = (((di + ADJ) & _MASK64) >> SBIT) << 52
    y = (C3 - t) * (t * t)
    y = y * C2
    y = (y - t) + C1
    return y * _double(u | table()[di & ((1 << SBIT) - 1)])


def exp_cb(values: Sequence[float]) -> list[float]:
    """CatBoost's ``Exponent`` prediction of each raw score."""
    return [fast_exp(v) for v in values]


def softmax_cb(row: Sequence[float]) -> list[float]:
    """CatBoost's ``CalcSoftmax`` of one row (``catboost/libs/model/eval_processing.h``): the first largest value,
    ``exp(v - max)`` through its fast exp, the sum from 0.0 left to right, then each divided by it."""
    wmax = row[0]
    for v in row[1:]:
        if wmax < v:  # MaxElement: the first of the largest (a later equal one does not replace it)
            wmax = v
    e = [fast_exp(v - wmax) for v in row]
    total = 0.0
    for v in e:
        total += v
    return [v / total for v in e]


def c_header() -> str:
    """The text of ``coldbrew/engine/_cbexp_table.h``, the C kernel's copy of :func:`table` (a test keeps the two
    equal; regenerate with ``python -c "from coldbrew.engine.cbexp import c_header; print(c_header(), end='')"``)."""
    rows = []
    t = table()
    for i in range(0, len(t), 4):
        rows.append("    " + " ".join(f"0x{v:013x}ULL," for v in t[i : i + 4]))
    return (
        "/* Generated by coldbrew/engine/cbexp.py (c_header): the 52-bit mantissas of the correctly rounded\n"
        " * 2 ** (i / 2048), i = 0 .. 2047, the table of CatBoost's fast exp (fmath::ExpdVar). Do not edit. */\n"
        "static const unsigned long long CB_EXP_TABLE[2048] = {\n" + "\n".join(rows) + "\n};\n"
    )
