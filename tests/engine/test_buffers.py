"""coldbrew.engine.buffers imports ``array`` without the ``collections`` package, and the array type is still a
registered ``collections.abc.MutableSequence`` afterwards (the registration is the real one)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CHILD = """
import sys
from coldbrew.engine.buffers import array
a = array("d", [1.0, 2.5, 4.0])
a[0::2] = array("d", [7.0, 8.0])
seen = sorted(m for m in ("collections", "collections.abc") if m in sys.modules)
import collections, collections.abc
print(a.tolist(), seen, isinstance(a, collections.abc.MutableSequence), hasattr(collections, "OrderedDict"),
      collections.abc.Mapping is __import__("_collections_abc").Mapping)
"""


def test_array_without_collections_and_registered_for_real():
    out = subprocess.run(
        [sys.executable, "-S", "-c", CHILD], capture_output=True, text=True, cwd=REPO, timeout=60, check=True
    )
    assert out.stdout.split() == "[7.0, 2.5, 8.0] [] True True True".split()


def test_when_collections_is_loaded_already_array_is_imported_as_usual():
    code = "import collections.abc, sys\n" + CHILD
    out = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60, check=True
    )
    assert out.stdout.split() == "[7.0, 2.5, 8.0] ['collections', 'collections.abc'] True True True".split()
