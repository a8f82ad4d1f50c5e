"""``KEY=VALUE`` option values (``coldbrew lab --env``, ``coldbrew loadtest --label``): one parser.

Base layer: imports only the standard library and ``coldbrew.errors``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from coldbrew.errors import ConfigError

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_pairs(items: Iterable[str], *, option: str, reserved: Iterable[str] = ()) -> dict[str, str]:
    """``["setup=disk", "A=1=2"]`` -> ``{"setup": "disk", "A": "1=2"}`` (a later KEY wins).

    Args:
        items: the option's values, each ``KEY=VALUE``; the value may be empty or contain ``=``.
        option: the option's name (``"--env"``) for error messages.
        reserved: keys the caller uses itself and the user may not set.

    Returns:
        The pairs in order, keys stripped of surrounding blanks, values as given.

    Raises:
        ConfigError: an item has no ``=``, its KEY is not a plain name (letters, digits, ``_``), or it is reserved.
    """
    blocked = set(reserved)
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not _KEY.fullmatch(key):
            raise ConfigError(f"{option} {item!r}: use KEY=VALUE with KEY a plain name (letters, digits, _)")
        if key in blocked:
            raise ConfigError(f"{option} {key}: that name is used by coldbrew itself; pick another")
        pairs[key] = value
    return pairs
