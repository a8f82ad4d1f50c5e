"""The serving contract of one model: which fields a request carries and what a response looks like.

Everything comes from the model, nothing from this package: a predictor exposes ``feature_names``, ``classes``
and ``header`` (for a ``.brew`` file its JSON header; a pickled estimator derives the same keys). The header keys
read here, each optional (docs/serving.md, docs/format.md):

- ``feature_missing``: one bool per feature, true where the model handles a missing value (the request may send
  ``null``); absent or null means no feature accepts missing values;
- ``feature_categorical``: one bool per feature, true for categorical features (documented in the OpenAPI
  document; the value is still the numeric category code the model was trained on);
- ``task``: ``binary`` | ``multiclass`` | ``regression`` | ``anomaly``; absent means derived from ``classes``:
  none → regression, two → binary, otherwise multiclass (an anomaly detector, IsolationForest, says so: it answers
  its ``predict`` (1 inlier, -1 outlier) with its ``score_samples`` and ``decision_function``; a ranker answers
  its scores);
- ``class_labels``: one display string per class, aligned with ``classes``; absent means ``str()`` of each class;
- ``n_outputs``: for a regressor, the number of values per row (> 1: a multi-output model answers a vector).

A header that contradicts itself (labels of the wrong length, duplicate labels or feature names, a task that
disagrees with the classes) is refused with a one-line :class:`ModelFormatError` before anything is served.
"""

from __future__ import annotations

from coldbrew.errors import ModelFormatError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up (type checkers read it as true)

if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from coldbrew.records import NamedTuple  # typing's class syntax, without importing typing

TASKS = ("binary", "multiclass", "regression", "anomaly", "ranking")
#: Tasks without classes: the model answers values (regression), a sign with scores (anomaly) or scores (ranking).
CLASSLESS = ("regression", "anomaly", "ranking")


class Contract(NamedTuple):
    """What ``/predict`` takes and gives for one model (a NamedTuple: no dataclasses import at start-up)."""

    features: tuple[str, ...]
    nullable: tuple[bool, ...]
    categorical: tuple[bool, ...]
    task: str
    classes: tuple | None  # the model's own class values (Python scalars), in its order; None for regression
    labels: tuple[str, ...] | None  # display label per class, same order
    outputs: int = 1  # a regressor's values per row (header n_outputs; > 1: multi-output, a vector per row)
    probabilities: bool = True  # a classifier answers its probabilities (False: a hard-voting VotingClassifier)
    #: Per field, with an input stage (format version 3 ``inputs``): ``"number"``, ``"string"`` or ``"any"`` (a
    #: column the model does not read); empty: every field is a number.
    types: tuple[str, ...] = ()
    #: Per field: the category names the model knows (string columns), else None; empty when there is no stage.
    categories: tuple = ()
    #: Per field: True when only the known names are accepted (the model refuses an unseen one).
    closed: tuple[bool, ...] = ()

    @property
    def has_strings(self) -> bool:
        """True when some field is not a number (rows are then taken by name only)."""
        return any(t != "number" for t in self.types)

    @property
    def is_classifier(self) -> bool:
        """True for binary and multiclass models."""
        return self.task not in CLASSLESS

    def label_of(self) -> dict:
        """Class value (as the model's ``predict`` returns it, after ``tolist()``) → display label."""
        if self.classes is None or self.labels is None:  # a regressor: no classes, no labels
            return {}
        return dict(zip(self.classes, self.labels, strict=True))


def _flags(header: dict, key: str, n: int) -> tuple[bool, ...]:
    value = header.get(key)
    if value is None:
        return (False,) * n
    if not isinstance(value, list) or len(value) != n or not all(type(v) is bool for v in value):
        raise ModelFormatError(f"model header {key!r} must be a list of {n} booleans (one per feature) or null")
    return tuple(value)


def _task(header: dict, classes: tuple | None) -> str:
    task = header.get("task")
    if task is None:
        if classes is None:
            return "regression"
        return "binary" if len(classes) == 2 else "multiclass"
    if task not in TASKS:
        raise ModelFormatError(f"model header task {task!r} is not one of {', '.join(TASKS)}")
    if (task in CLASSLESS) != (classes is None):
        has = "no classes" if classes is None else f"{len(classes)} classes"
        raise ModelFormatError(f"model header task {task!r} disagrees with the model, which has {has}")
    if task == "binary" and classes is not None and len(classes) != 2:
        raise ModelFormatError(f"model header task 'binary' needs 2 classes, the model has {len(classes)}")
    return task


def _labels(header: dict, classes: tuple | None) -> tuple[str, ...] | None:
    if classes is None:
        return None
    given = header.get("class_labels")
    if given is None:
        labels = tuple(str(c) for c in classes)
    elif not isinstance(given, list) or len(given) != len(classes) or not all(isinstance(s, str) for s in given):
        raise ModelFormatError(f"model header class_labels must be a list of {len(classes)} strings (one per class)")
    else:
        labels = tuple(given)
    if len(set(labels)) != len(labels):
        raise ModelFormatError(f"model class labels must be distinct to tell the classes apart, got {list(labels)}")
    if len({*classes}) != len(classes):
        raise ModelFormatError("model classes must be distinct")
    return labels


def contract_of(predictor) -> Contract:
    """The contract of ``predictor`` (a BrewPredictor, a PicklePredictor or anything with the same attributes).

    Raises ModelFormatError for metadata that cannot be served as stated.
    """
    header = getattr(predictor, "header", None) or {}
    if not isinstance(header, dict):
        raise ModelFormatError("model header is not a JSON object")
    features = tuple(predictor.feature_names)
    if len(set(features)) != len(features):
        dup = next(name for i, name in enumerate(features) if name in features[:i])
        raise ModelFormatError(f"model feature names must be distinct to be JSON fields; {dup!r} repeats")
    raw_classes = getattr(predictor, "classes", None)
    classes = None if raw_classes is None else tuple(raw_classes)
    if classes is not None and not classes:
        raise ModelFormatError("model lists an empty set of classes")
    n = len(features)
    stage = getattr(predictor, "stage", None)
    if stage is not None:  # an input stage: the fields are its raw columns (docs/format.md section 12)
        return _staged(stage, features, header, classes)
    return Contract(
        features=features,
        nullable=_flags(header, "feature_missing", n),
        categorical=_flags(header, "feature_categorical", n),
        task=_task(header, classes),
        classes=classes,
        labels=_labels(header, classes),
        outputs=_outputs(header, classes),
        probabilities=bool(getattr(predictor, "has_proba", True)),
    )


def _staged(stage, features: tuple[str, ...], header: dict, classes: tuple | None) -> Contract:
    """The contract of a model with an input stage: one field per raw column, numbers or strings."""
    categories: list = [None] * len(features)
    closed = [False] * len(features)
    for f in stage.inputs["features"]:
        for op in f["ops"]:
            if op.get("kind") == "vocab" and stage.types[f["column"]] == "string":
                j = f["column"]
                known = list(categories[j] or ())
                categories[j] = tuple(dict.fromkeys([*known, *op["values"]]))
                closed[j] = closed[j] or op["unknown"] == "error"
            if op.get("kind") != "impute":  # past this op the value is no longer the raw string (catboost_hash)
                break
    return Contract(
        features=features,
        nullable=tuple(stage.nullable),
        categorical=tuple(t == "string" for t in stage.types),
        task=_task(header, classes),
        classes=classes,
        labels=_labels(header, classes),
        outputs=_outputs(header, classes),
        types=tuple(stage.types),
        categories=tuple(categories),
        closed=tuple(closed),
    )


def example_request(contract: Contract) -> dict:
    """A valid ``/predict`` body for ``contract``: one row, every feature present, in the model's order.

    Every number is ``0``, every string field its first known category (``null`` for a field the model does not
    read). Without an input stage every value is ``0``: a JSON number every feature accepts (within ±FLOAT32_MAX; for a categorical feature the
    code of its first category). Nullable features still get a number, so the example works whatever the model
    does with missing values. Used by `coldbrew inspect`, `coldbrew serve`'s start message and the "Try it"
    request of the README `coldbrew package` writes.
    """
    if not contract.types:
        return dict.fromkeys(contract.features, 0)
    example: dict = {}
    for name, kind, known in zip(contract.features, contract.types, contract.categories, strict=True):
        example[name] = (known[0] if known else "a") if kind == "string" else 0 if kind == "number" else None
    return example


def _outputs(header: dict, classes: tuple | None) -> int:
    """Values per row of a regressor's prediction: the header's ``n_outputs`` (1 when absent or a classifier)."""
    n = header.get("n_outputs", 1)
    if classes is not None or n == 1:
        return 1
    if type(n) is not int or n < 1:
        raise ModelFormatError(f"model header n_outputs must be a positive integer, got {str(n)[:40]}")
    return n
