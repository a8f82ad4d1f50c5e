"""Durations with Go-style unit suffixes, the one parser every command uses.

``500ms``, ``90s``, ``1.5s``, ``10m``, ``1h30m`` and ``1m30.5s`` are accepted everywhere a duration is (loadtest and
bench ``--run-time``, the lab's timeouts, ``warm --every/--hold``); a bare number means seconds. Units: ``ms``,
``s``, ``m``, ``h``. Base layer: imports only the standard library and ``coldbrew.errors``.
"""

from __future__ import annotations

import math
import re

from coldbrew.errors import ConfigError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_TERM = re.compile(rf"({_NUMBER})(ms|s|m|h)")
_WHOLE = re.compile(rf"(?:{_NUMBER}(?:ms|s|m|h))+")
_BARE = re.compile(_NUMBER)
EXAMPLES = "500ms, 90s, 1.5s, 10m, 1h30m"


def parse_duration(text: str | float | int, *, option: str | None = None) -> float:
    """Seconds in ``text``: ``"500ms"`` -> 0.5, ``"1h30m"`` -> 5400.0, ``"90"`` -> 90.0, ``2.5`` -> 2.5.

    Args:
        text: a duration string (Go-style terms, optionally a bare number of seconds) or a number of seconds.
        option: the option's name (``"--run-time"``) to name in the error message.

    Returns:
        The duration in seconds, a finite float >= 0 (callers decide whether 0 is allowed).

    Raises:
        ConfigError: ``text`` is not a duration (negative, empty, unknown unit, not finite).
    """
    if isinstance(text, bool):
        raise ConfigError(_message(text, option))
    if isinstance(text, (int, float)):
        seconds = float(text)
    elif isinstance(text, str):
        compact = text.strip()
        if _BARE.fullmatch(compact):
            seconds = float(compact)
        elif _WHOLE.fullmatch(compact):
            seconds = sum(float(number) * _UNITS[unit] for number, unit in _TERM.findall(compact))
        else:
            raise ConfigError(_message(text, option))
    else:
        raise ConfigError(_message(text, option))
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(_message(text, option))
    return seconds


def _message(text: object, option: str | None) -> str:
    if option:
        return f"{option} {text!r}: not a duration; use a number with a unit, e.g. {EXAMPLES}"
    return f"invalid duration {text!r}: use a number with a unit, e.g. {EXAMPLES}"


def format_duration(seconds: float) -> str:
    """A short human form: ``0.5`` -> ``500ms``, ``90`` -> ``90s``, ``600`` -> ``10m``, ``5400`` -> ``1h30m``."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    if seconds < 60 or seconds % 60:
        return f"{seconds:g}s"
    if seconds < 3600:
        return f"{seconds / 60:g}m"
    hours, rest = divmod(seconds, 3600)
    return f"{hours:g}h" + (f"{rest / 60:g}m" if rest else "")
