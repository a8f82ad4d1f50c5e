"""Sizes with ``k``/``M``/``G`` units, the one parser every size option uses; and Lambda's limits, checked once.

``1M``, ``512k``, ``1.5G``, ``1536MiB`` and ``10240MB`` are accepted everywhere a size is (``serve
--max-body-bytes``, ``lab --memory-mb``, ``package --memory``, ``bench --memory-budget-gb``); a bare number is in
the option's own unit (bytes for ``--max-body-bytes``, MB for ``--memory-mb``). Units are binary, as Lambda's
"MB" of memory are: ``k`` = 1024 bytes, ``M`` = 1024 k, ``G`` = 1024 M (``KB``/``KiB`` and friends are the same).
Base layer: imports only the standard library and ``coldbrew.errors``.
"""

from __future__ import annotations

import math
import re

from coldbrew.errors import ConfigError

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
_UNITS = {"": None, "b": 1, "k": KIB, "m": MIB, "g": GIB}
_SIZE = re.compile(r"((?:\d+(?:\.\d*)?|\.\d+))\s*(?:([kmg])(?:i?b)?|(b))?", re.IGNORECASE)
EXAMPLES = "512k, 1M, 1.5G"

# AWS Lambda's limits (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
LAMBDA_MAX_TIMEOUT_S = 900.0
LAMBDA_MIN_MEMORY_MB = 128
LAMBDA_MAX_MEMORY_MB = 10_240


def parse_size(text: str | int | float, *, option: str | None = None, unit: int = 1) -> int:
    """Bytes in ``text``: ``"1M"`` -> 1048576, ``"512k"`` -> 524288, ``"300"`` -> ``300 * unit``.

    Args:
        text: a size (a number with an optional ``k``/``M``/``G`` unit, case-insensitive, optionally followed by
            ``B`` or ``iB``) or a number in ``unit``.
        option: the option's name (``"--max-body-bytes"``) to name in the error message.
        unit: bytes per unit of a bare number (1 for byte options, ``MIB`` for megabyte options).

    Returns:
        The size in bytes, rounded down to a whole byte, >= 0.

    Raises:
        ConfigError: ``text`` is not a size (negative, empty, unknown unit, not finite).
    """
    if isinstance(text, bool):
        raise ConfigError(_message(text, option))
    if isinstance(text, (int, float)):
        number, factor = float(text), unit
    elif isinstance(text, str) and (m := _SIZE.fullmatch(text.strip())):
        suffix = (m[2] or m[3] or "").lower()
        number, factor = float(m[1]), _UNITS[suffix] or unit
    else:
        raise ConfigError(_message(text, option))
    if not math.isfinite(number) or number < 0:
        raise ConfigError(_message(text, option))
    return int(number * factor)


def parse_megabytes(text: str | int | float, *, option: str | None = None) -> int:
    """Whole MB (MiB) in ``text``: ``"1G"`` -> 1024, ``"512"`` -> 512, ``"1536M"`` -> 1536."""
    size = parse_size(text, option=option, unit=MIB)
    if size % MIB:
        raise ConfigError(f"{option or 'size'} {text!r}: not a whole number of MB")
    return size // MIB


def check_lambda_memory(mb: int, *, option: str = "--memory") -> int:
    """``mb`` if Lambda accepts it (128-10,240 MB), else a one-line ``ConfigError`` naming the range."""
    if not LAMBDA_MIN_MEMORY_MB <= mb <= LAMBDA_MAX_MEMORY_MB:
        raise ConfigError(
            f"{option} {mb} MB: Lambda's memory is {LAMBDA_MIN_MEMORY_MB} to {LAMBDA_MAX_MEMORY_MB:,} MB; "
            f"choose a size in that range (e.g. 1024 or 1G)"
        )
    return mb


def check_lambda_timeout(seconds: float, *, option: str = "--timeout") -> float:
    """``seconds`` if Lambda accepts it (more than 0, at most 15 min), else a one-line ``ConfigError``."""
    if not 0 < seconds <= LAMBDA_MAX_TIMEOUT_S:
        raise ConfigError(
            f"{option} {seconds:g}s: Lambda's timeout is more than 0 and at most 15m (900s); choose one in that range"
        )
    return seconds


def _message(text: object, option: str | None) -> str:
    if option:
        return f"{option} {text!r}: not a size; use a number with a unit, e.g. {EXAMPLES}"
    return f"invalid size {text!r}: use a number with a unit, e.g. {EXAMPLES}"
