"""Fixtures for the attack tests: files an attacker could hand coldbrew.

The tests in this directory attack the real components (load_predictor, `coldbrew serve`, the Lambda handler's
init, `coldbrew lab`, the .brew reader and both kernels); docs/security.md points at each of them. The shared
fixtures of tests/conftest.py (``tiny_model``, ``tiny_brew``, ``s3_server``) are available here too.
"""

from __future__ import annotations

import builtins
import pickle
from pathlib import Path

import pytest


class CreatesMarker:
    """Unpickling this object calls ``open(marker, "w")``: the file appearing proves code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.open, (self.marker, "w")


@pytest.fixture
def evil_pickle(tmp_path) -> tuple[Path, Path]:
    """``(pickle file, marker path)``: loading the pickle creates the marker file."""
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(CreatesMarker(marker), protocol=pickle.HIGHEST_PROTOCOL))
    return path, marker
