"""The .brew file format: a data-only, memory-mapped tree-ensemble model (spec: docs/format.md).

Layer 1. May import: numpy and the base modules (errors, atomicfile), nothing else of coldbrew. The writer (and hashlib) load on first use, off the serving path.
"""

from coldbrew.format.reader import BrewFile, is_brew
from coldbrew.format.spec import MAGIC, NODE_DTYPE, VERSION

__all__ = ["MAGIC", "NODE_DTYPE", "VERSION", "BrewFile", "is_brew", "write_brew"]


def __getattr__(name: str):
    if name == "write_brew":
        from coldbrew.format.writer import write_brew

        return write_brew
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
