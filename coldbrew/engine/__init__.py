"""Predictors: the .brew fast path and the pickle baseline behind one interface.

``load_predictor(path)`` looks at the file's first bytes: the .brew magic selects BrewPredictor (numpy only,
memory-mapped); anything else is unpickled by PicklePredictor (imports scikit-learn).
"""

from __future__ import annotations

import os

from coldbrew.engine.inputs import InvalidInputError
from coldbrew.errors import ModelFormatError

__all__ = ["InvalidInputError", "load_predictor"]


def load_predictor(path: str | os.PathLike, *, verify: bool = False, eager: bool = False):
    """Open a model file: .brew (detected by magic bytes) or pickle/joblib.

    ``verify`` checks a .brew file's SHA-256 (reads the whole file); ``eager`` asks the OS to read a .brew
    file ahead. Both are ignored for pickles, which are read in full anyway.
    """
    from coldbrew.format import is_brew

    try:
        brew = is_brew(path)
    except OSError as exc:
        raise ModelFormatError(f"{path}: cannot open: {exc.strerror or exc}") from exc
    if brew:
        from coldbrew.engine.brew import BrewPredictor

        return BrewPredictor(path, verify=verify, eager=eager)
    from coldbrew.engine.pickled import PicklePredictor

    return PicklePredictor(path)
