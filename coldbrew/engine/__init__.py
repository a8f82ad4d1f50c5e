"""Predictors: the .brew fast path and the pickle baseline behind one interface.

``load_predictor(path)`` looks at the file's first bytes: the .brew magic selects BrewPredictor (numpy only,
memory-mapped); anything else is unpickled by PicklePredictor (imports scikit-learn). Both satisfy the
``Predictor`` protocol (``coldbrew.engine.protocol``), the only thing the layers above rely on.

Layer 2: imports ``coldbrew.format`` and ``coldbrew.errors``, nothing later.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from coldbrew.engine.inputs import InvalidInputError
from coldbrew.errors import ModelFormatError

if TYPE_CHECKING:
    from coldbrew.engine.protocol import Predictor

__all__ = ["InvalidInputError", "Predictor", "load_predictor"]


def __getattr__(name: str):  # ``from coldbrew.engine import Predictor`` without importing typing machinery eagerly
    if name == "Predictor":
        from coldbrew.engine.protocol import Predictor

        return Predictor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_predictor(path: str | os.PathLike[str], *, verify: bool = False, eager: bool = False) -> Predictor:
    """Open a model file: .brew (detected by its magic bytes) or a pickle/joblib of a fitted estimator.

    Args:
        path: the model file on local disk.
        verify: check a .brew file's SHA-256 first (reads the whole file; ignored for pickles).
        eager: ask the OS to read a .brew file ahead instead of faulting pages in on first use (ignored for
            pickles, which are read in full anyway).

    Returns:
        A ``Predictor``: ``BrewPredictor`` for .brew files, ``PicklePredictor`` otherwise.

    Raises:
        ModelFormatError: the file cannot be opened, is a corrupt/truncated/future .brew file, fails its
            checksum, or is not a loadable pickle of a fitted estimator.
        ColdbrewError: a .brew file asks for a kernel not available here.
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
