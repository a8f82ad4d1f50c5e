"""Durations with unit suffixes: ``500ms``, ``5s``, ``10m``, ``1h`` (a bare number means seconds)."""

from __future__ import annotations

import re

from coldbrew.errors import ConfigError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


def parse_duration(text: str | float | int) -> float:
    """Seconds in ``text`` (``"500ms"`` -> 0.5); raises ConfigError for anything else."""
    if isinstance(text, (int, float)):
        return float(text)
    match = _PATTERN.match(text)
    if not match:
        raise ConfigError(f"invalid duration {text!r}: use a number with a unit, e.g. 500ms, 5s, 10m")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def format_duration(seconds: float) -> str:
    """A short human form: ``0.5`` -> ``500ms``, ``600`` -> ``10m``."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    if seconds < 60 or seconds % 60:
        return f"{seconds:g}s"
    if seconds < 3600 or seconds % 3600:
        return f"{seconds / 60:g}m"
    return f"{seconds / 3600:g}h"
