"""``Predictor``: what the serving layers may rely on in a loaded model, whatever its file format.

``load_predictor`` returns one; ``create_app``, ``Startup`` and the Lambda handler accept any object with these
members (``BrewPredictor`` and ``PicklePredictor`` today, a test double or a new engine tomorrow). A structural
``typing.Protocol``: implementations do not inherit from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike


@runtime_checkable
class Predictor(Protocol):
    """A loaded model that scores rows of float features."""

    @property
    def format(self) -> str:
        """The file format it was loaded from: ``"brew"`` or ``"pickle"``."""
        ...

    @property
    def kind(self) -> str:
        """The estimator kind, e.g. ``"GradientBoostingClassifier"``."""
        ...

    @property
    def n_features(self) -> int | None:
        """Features per row (None when the model does not record it)."""
        ...

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Column names in the order ``predict_proba`` expects them (the API's request fields)."""
        ...

    @property
    def classes(self) -> tuple[Any, ...] | None:
        """Class labels in ``predict_proba`` column order (None for regressors)."""
        ...

    def predict_proba(self, X: ArrayLike) -> np.ndarray | list:
        """Class probabilities, shape (n_rows, n_classes); raises ``InvalidInputError`` for unusable rows.

        A numpy array; ``BrewPredictor`` answers rows given as lists with lists (no numpy on that path)."""
        ...

    def predict(self, X: ArrayLike) -> np.ndarray | list:
        """Labels (classifiers) or values (regressors), as the training library's ``predict`` (lists for list
        rows from ``BrewPredictor``, as ``predict_proba``)."""
        ...

    def info(self) -> dict[str, Any]:
        """Facts about the model for logs and telemetry (format, kind, size, trees, nodes...)."""
        ...
