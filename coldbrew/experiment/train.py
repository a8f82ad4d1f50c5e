"""`coldbrew train`: the study's GradientBoostingClassifier, at the study's sizes.

The recipe is the study's: six numeric Adult features, target ``income == ">50K"``,
``train_test_split(test_size=0.33, random_state=42)``, and
``GradientBoostingClassifier(learning_rate=1.0, random_state=0, n_estimators=N, max_depth=D)``.
The target is spelled as the API's labels (``"<=$50K"`` / ``">$50K"``, ``dataset.CLASS_LABELS``) instead of
False/True: same order, so the same trees and probabilities, and the model file itself says what to answer.
Presets pick N and D so the pickle lands near the study's file sizes (docs/presets.md).
"""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass
from pathlib import Path

from coldbrew.atomicfile import atomic_write


@dataclass(frozen=True)
class Recipe:
    """Hyper-parameters of one training run (the rest is fixed by the study)."""

    n_estimators: int
    max_depth: int | None

    @property
    def key(self) -> str:
        """A short, stable name for caches: ``n{N}-d{D}``."""
        return f"n{self.n_estimators}-d{self.max_depth if self.max_depth is not None else 'none'}"


# Calibrated with scikit-learn 1.9.1 by bench/calibrate_presets.py (docs/presets.md, bench/results/presets.md).
PRESETS: dict[str, Recipe] = {
    "tiny": Recipe(n_estimators=20, max_depth=3),
    "140mb": Recipe(n_estimators=1261, max_depth=None),
    "420mb": Recipe(n_estimators=4245, max_depth=None),
    "1090mb": Recipe(n_estimators=11385, max_depth=None),
}

FORMATS = ("pickle", "joblib")

# Display names of the study model's classes_ [False, True] (target ``income == ">50K"``). They travel in the
# .brew header (``class_labels``), so the serving app needs no census constant.
STUDY_CLASS_LABELS = ["<=$50K", ">$50K"]


def compile_study_model(pickle_path: Path, brew_path: Path, progress: bool = True) -> dict:
    """Compile the study's pickled model to .brew with its display labels (``coldbrew compile --class-labels``)."""
    from coldbrew.convert.sklearn import compile_model

    return compile_model(pickle_path, brew_path, progress=progress, class_labels=STUDY_CLASS_LABELS)


def pickle_is_labelled(pickle_path: Path) -> bool:
    """True if a cached study pickle was trained on the display labels, so it answers ``">$50K"``; caches from
    before were trained on False/True and would answer ``"True"``. The labels are a numpy unicode array in the
    pickle, stored as UTF-32 bytes: found without unpickling (which takes seconds for the large presets)."""
    try:
        return STUDY_CLASS_LABELS[1].encode("utf-32-le") in pickle_path.read_bytes()
    except OSError:
        return False


def brew_is_labelled(brew_path: Path) -> bool:
    """True if a cached .brew already carries the study's class labels (older caches were compiled without)."""
    from coldbrew.errors import ColdbrewError
    from coldbrew.format import BrewFile

    try:
        return BrewFile(brew_path).header.get("class_labels") == STUDY_CLASS_LABELS
    except (ColdbrewError, OSError):
        return False


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced."""

    path: Path
    recipe: Recipe
    accuracy: float
    size_bytes: int
    nodes: int
    seconds: float


def count_nodes(model) -> int:
    """Total decision-tree nodes in a fitted GBM (what drives pickle size)."""
    return int(sum(est.tree_.node_count for est in model.estimators_.ravel()))


def train(recipe: Recipe, out: Path, fmt: str = "pickle", progress: bool = True) -> TrainResult:
    """Train the study's model with ``recipe`` and save it to ``out`` (pickle or joblib)."""
    import numpy as np
    from sklearn.ensemble import GradientBoostingClassifier
    from tqdm import tqdm

    from coldbrew.experiment.dataset import CLASS_LABELS, study_split

    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    X_train, X_test, y_train, y_test = study_split()
    negative, positive = CLASS_LABELS
    y_train, y_test = (np.where(y, positive, negative) for y in (y_train, y_test))
    model = GradientBoostingClassifier(
        learning_rate=1.0, random_state=0, n_estimators=recipe.n_estimators, max_depth=recipe.max_depth
    )
    started = time.perf_counter()
    with tqdm(total=recipe.n_estimators, unit="stage", desc="boosting", disable=not progress) as bar:

        def monitor(i, _est, _locals):
            bar.update(1)
            return False

        model.fit(X_train, y_train, monitor=monitor)
    seconds = time.perf_counter() - started
    accuracy = float(model.score(X_test, y_test))

    with atomic_write(out) as fh:
        if fmt == "joblib":
            import joblib

            joblib.dump(model, fh)
        else:
            pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return TrainResult(Path(out), recipe, accuracy, Path(out).stat().st_size, count_nodes(model), seconds)


def resolve_recipe(preset: str, n_estimators: int | None, max_depth: int | None) -> Recipe:
    """The preset's recipe with any explicit overrides applied."""
    base = PRESETS[preset]
    return Recipe(
        n_estimators=n_estimators if n_estimators is not None else base.n_estimators,
        max_depth=max_depth if max_depth is not None else base.max_depth,
    )
