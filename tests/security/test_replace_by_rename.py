"""Replacing a mapped .brew by rename is safe; docs/format.md section 6 and docs/serving.md say why in-place is not.

A server maps its model file. Truncating or rewriting that file in place while it is mapped makes the next read of
a vanished page SIGBUS (true of every mmap reader, not a coldbrew bug). Writing the new file beside it and renaming
it into place — what ``coldbrew compile`` and the S3 cache do — leaves the old mapping on the old inode.
"""

from __future__ import annotations

import numpy as np

from coldbrew.engine import load_predictor

ROWS = np.array([[34, 261799, 11, 0, 0, 56], [50, 100000, 13, 15024, 0, 40]], dtype=np.float64)


def test_compile_replaces_a_mapped_model_by_rename(tiny_model, tiny_brew, tmp_path):
    from coldbrew.convert.sklearn import compile_model
    from coldbrew.experiment.train import Recipe, train

    served = tmp_path / "model.brew"
    served.write_bytes(tiny_brew.read_bytes())
    running = load_predictor(served)
    before = running.predict_proba(ROWS)

    other = tmp_path / "other.pkl"
    train(Recipe(n_estimators=3, max_depth=2), other, progress=False)
    compile_model(other, served, progress=False)  # the new model lands on the same path while it is mapped

    assert np.array_equal(running.predict_proba(ROWS), before), "the running server keeps its own model"
    reloaded = load_predictor(served)
    assert reloaded.info()["n_trees"] == 3 and running.info()["n_trees"] == 20
