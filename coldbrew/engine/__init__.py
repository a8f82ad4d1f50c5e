"""Predictors: the .brew fast path and the pickle baseline behind one interface.

``load_predictor(path)`` looks at the file's first bytes: the .brew magic selects BrewPredictor (memory-mapped; with
the C kernel it imports no numpy). Anything else is a pickle/joblib file, which can run arbitrary code when loaded, so it is
unpickled by PicklePredictor (imports scikit-learn) only when the caller opted in with ``allow_pickle=True`` —
as ``np.load(allow_pickle=False)`` and ``torch.load(weights_only=True)`` refuse pickles by default.
Both satisfy the ``Predictor`` protocol (``coldbrew.engine.protocol``), the only thing the layers above rely on.

Layer 2: imports ``coldbrew.format`` and ``coldbrew.errors``, nothing later.
"""

from __future__ import annotations

import os

from coldbrew.engine.inputs import InvalidInputError
from coldbrew.errors import ModelFormatError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up (type checkers read it as true)

if TYPE_CHECKING:
    from coldbrew.engine.protocol import Predictor

__all__ = [
    "ALLOW_PICKLE_HINT",
    "InvalidInputError",
    "PickleRefusedError",
    "Predictor",
    "load_predictor",
    "model_format",
]

#: How to opt in to pickles, named in every refusal.
ALLOW_PICKLE_HINT = (
    "if you trust it, opt in with --allow-pickle (serve, lab), COLDBREW_ALLOW_PICKLE=1 (Lambda, environment) "
    "or allow_pickle=True (Python)"
)

# First bytes of the files a pickle/joblib model can be: a pickle stream of protocol 2-5 (plain pickle and
# uncompressed joblib) and the compressions joblib writes (zlib, gzip, bz2, xz, lzma, lz4).
_PICKLE_SIGNATURES = (
    (b"\x80\x02", "a pickle"),
    (b"\x80\x03", "a pickle"),
    (b"\x80\x04", "a pickle"),
    (b"\x80\x05", "a pickle"),
    (b"\x78\x01", "a zlib-compressed joblib/pickle"),
    (b"\x78\x5e", "a zlib-compressed joblib/pickle"),
    (b"\x78\x9c", "a zlib-compressed joblib/pickle"),
    (b"\x78\xda", "a zlib-compressed joblib/pickle"),
    (b"\x1f\x8b", "a gzip-compressed joblib/pickle"),
    (b"BZh", "a bz2-compressed joblib/pickle"),
    (b"\xfd7zXZ\x00", "an xz-compressed joblib/pickle"),
    (b"\x5d\x00\x00", "an lzma-compressed joblib/pickle"),
    (b"\x04\x22\x4d\x18", "an lz4-compressed joblib/pickle"),
)


class PickleRefusedError(ModelFormatError):
    """A model file is not a .brew file, and pickles were not allowed (it was not unpickled)."""


def describe(head: bytes) -> str | None:
    """What kind of pickle a file whose first bytes are ``head`` looks like ("a pickle", ...), else None."""
    for signature, what in _PICKLE_SIGNATURES:
        if head.startswith(signature):
            return what
    return None


def model_format(path: str | os.PathLike, *, allow_pickle: bool = False, name: str | None = None) -> str:
    """``"brew"`` or ``"pickle"``: how :func:`load_predictor` would load ``path``, reading only its first bytes.

    Raises ``PickleRefusedError`` where :func:`load_predictor` would refuse the file (a pickle without
    ``allow_pickle``, or a non-.brew file named ``*.brew``), ``ModelFormatError`` if it cannot be opened.
    """
    from coldbrew.format.reader import read_head
    from coldbrew.format.spec import MAGIC

    label = str(path) if name is None else name
    head = read_head(path, 16, label)
    if head.startswith(MAGIC):
        return "brew"
    what = describe(head)
    if any(str(n).lower().endswith(".brew") for n in (path, label)):
        found = f"it is {what} file" if what else "no .brew magic bytes"
        raise PickleRefusedError(f"{label}: named .brew but not a .brew file ({found}); refused, nothing was loaded")
    if not allow_pickle:
        found = f"{what} file, not a .brew file" if what else "not a .brew file (no .brew magic bytes)"
        raise PickleRefusedError(
            f"{label}: {found}; unpickling can run arbitrary code, so coldbrew loads pickles "
            f"only when asked: {ALLOW_PICKLE_HINT}"
        )
    return "pickle"


def __getattr__(name: str):  # ``from coldbrew.engine import Predictor`` without importing typing machinery eagerly
    if name == "Predictor":
        from coldbrew.engine.protocol import Predictor

        return Predictor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_predictor(
    path: str | os.PathLike,
    *,
    verify: bool = False,
    eager: bool = False,
    allow_pickle: bool = False,
    name: str | None = None,
    threads: int | None = None,
) -> Predictor:
    """Open a model file: .brew (detected by its magic bytes), or a pickle/joblib file when ``allow_pickle``.

    Args:
        path: the model file on local disk.
        verify: check a .brew file's SHA-256 first (reads the whole file; ignored for pickles).
        eager: ask the OS to read a .brew file ahead instead of faulting pages in on first use (ignored for
            pickles, which are read in full anyway).
        allow_pickle: unpickle a non-.brew file (unpickling can run arbitrary code: only for files you trust).
        name: what the user called the model (e.g. its ``s3://`` URI; default: ``path``); a name ending in
            ``.brew`` must hold a .brew file, pickles allowed or not.
        threads: threads a large .brew batch runs on (the C kernel; the bits do not depend on it); default
            ``$COLDBREW_THREADS``, else the CPUs available, capped (``coldbrew.engine.brew.default_threads``).

    Returns:
        A ``Predictor``: ``BrewPredictor`` for .brew files, ``PicklePredictor`` for an allowed pickle.

    Raises:
        PickleRefusedError: (a ``ModelFormatError``) the file is not a .brew file and pickles were not allowed,
            or it is named ``*.brew`` without being one; nothing in the file was executed.
        ModelFormatError: the file cannot be opened, is a corrupt/truncated/future .brew file, fails its
            checksum, or is not a loadable pickle of a fitted estimator.
        ColdbrewError: a .brew file asks for a kernel not available here.
    """
    if model_format(path, allow_pickle=allow_pickle, name=name) == "brew":
        from coldbrew.engine.brew import BrewPredictor

        return BrewPredictor(path, verify=verify, eager=eager, threads=threads)
    from coldbrew.engine.pickled import PicklePredictor

    return PicklePredictor(path)
