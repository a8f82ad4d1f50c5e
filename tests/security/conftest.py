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


@pytest.fixture(scope="session")
def forest_brew(tmp_path_factory) -> Path:
    """A small RandomForestClassifier with three string classes, compiled: vector leaves and ``<U`` labels."""
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier

    from coldbrew.convert.sklearn import compile_model

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6)) * [10, 1e5, 3, 5000, 500, 10] + [40, 2e5, 10, 1000, 100, 40]
    y = np.array(["low", "mid", "high"])[(X[:, 0] > 40).astype(int) + (X[:, 5] > 45).astype(int)]
    forest = RandomForestClassifier(n_estimators=4, max_depth=4, random_state=0).fit(X, y)
    folder = tmp_path_factory.mktemp("forest")
    (folder / "forest.pkl").write_bytes(pickle.dumps(forest))
    compile_model(folder / "forest.pkl", folder / "forest.brew", progress=False)
    return folder / "forest.brew"
