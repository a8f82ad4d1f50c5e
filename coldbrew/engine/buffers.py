"""The kernel's buffers: the standard library's ``array`` type, imported without the ``collections`` package.

When the ``array`` module is first imported it registers its type as a ``collections.abc.MutableSequence``, and
importing ``collections.abc`` imports the whole ``collections`` package (itertools, keyword, operator, reprlib, ...):
about 4-5 ms of a 11 ms bare ``python3.12 -S -c pass`` (bench/results/floor.md), for one ``register`` call.

The abstract class itself lives in ``_collections_abc``, which every interpreter has loaded before it runs any code
(``os`` and ``io`` use it); ``collections.abc`` only re-exports it. So, when ``collections.abc`` is not imported
yet, :func:`_import_array` lets the ``array`` module find that same ``MutableSequence`` under the name it asks for,
for the length of its import (and a stand-in for the ``collections`` package, which the import system
would load first): the registration is the real one (``isinstance(a, collections.abc.MutableSequence)``
holds later, tests/engine/test_buffers.py), and nothing else sees the stand-in.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (type checkers read it as true)


def _import_array() -> type:
    """``array.array``, imported without importing ``collections``."""
    if "array" in sys.modules or "collections.abc" in sys.modules:
        from array import array as loaded

        return loaded
    import _collections_abc

    # The array module asks the import system for "collections.abc", which imports the "collections" package first
    # unless both names are there already: a stand-in for each, removed right after.
    stand_ins = {name: type(sys)(name) for name in ("collections", "collections.abc") if name not in sys.modules}
    stand_ins["collections.abc"].MutableSequence = _collections_abc.MutableSequence  # type: ignore[attr-defined]
    sys.modules.update(stand_ins)
    try:
        from array import array as loaded
    finally:
        for name, module in stand_ins.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
    return loaded


if TYPE_CHECKING:
    from array import array
else:
    array = _import_array()

__all__ = ["array"]
