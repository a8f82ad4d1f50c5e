"""The .brew file format: a data-only, memory-mapped tree-ensemble model (spec: docs/format.md).

Layer 1: depends on numpy only.
"""

from coldbrew.format.reader import BrewFile, is_brew
from coldbrew.format.spec import MAGIC, NODE_DTYPE, VERSION
from coldbrew.format.writer import write_brew

__all__ = ["MAGIC", "NODE_DTYPE", "VERSION", "BrewFile", "is_brew", "write_brew"]
