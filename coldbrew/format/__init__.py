"""The .brew file format: a data-only, memory-mapped tree-ensemble model (spec: docs/format.md).

Layer 1. May import: the base modules (errors, atomicfile), nothing else of coldbrew. The reader uses the standard
library only (mmap, json, struct, memoryview); numpy is imported by the writer and by ``BrewFile.arrays``, on first
use and off the serving path, as are the writer and hashlib themselves.
"""

from coldbrew.format.reader import BrewFile, is_brew, read_head
from coldbrew.format.spec import MAGIC, VERSION

__all__ = ["MAGIC", "NODE_DTYPE", "VERSION", "BrewFile", "is_brew", "read_head", "write_brew"]


def __getattr__(name: str):
    if name == "write_brew":
        from coldbrew.format.writer import write_brew

        return write_brew
    if name == "NODE_DTYPE":  # a numpy dtype: numpy loads only when a tool asks for it
        from coldbrew.format import spec

        return spec.NODE_DTYPE
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
