"""The model cache: trained and compiled models keyed by recipe, reused across runs.

Lives in ``$COLDBREW_CACHE`` or ``$XDG_CACHE_HOME/coldbrew`` (default ``~/.cache/coldbrew``).
"""

from __future__ import annotations

import os
from pathlib import Path

from coldbrew.experiment.train import Recipe

SUFFIXES = {"pickle": ".pkl", "brew": ".brew"}


def cache_root() -> Path:
    """The cache directory (not created)."""
    if os.environ.get("COLDBREW_CACHE"):
        return Path(os.environ["COLDBREW_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "coldbrew"


def cache_path(recipe: Recipe, fmt: str) -> Path:
    """Where the model for ``recipe`` in format ``fmt`` ("pickle" or "brew") is cached."""
    return cache_root() / "models" / f"gbm-{recipe.key}{SUFFIXES[fmt]}"
