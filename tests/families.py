"""Small models of every task, fitted on data that ships with scikit-learn, as pickle and .brew.

Imported as ``from families import ...`` (pytest puts tests/ on sys.path); the session fixture ``families`` in
conftest.py builds them once. Expected answers come from the fitted scikit-learn estimator, never from coldbrew.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Served from .brew and pickle alike; "nullable" (HistGradientBoosting with NaN) only from its pickle so far.
SERVED = [
    "binary",
    "binary-unlabelled",
    "multiclass",
    "multiclass-unlabelled",
    "regression",
    "anomaly",
    "ranking",
    "hard-vote",
]


@dataclass
class Family:
    """One fitted estimator, its held-out rows, and its files (pickle, .brew)."""

    name: str
    est: object
    X: np.ndarray  # float64 held-out rows
    features: tuple[str, ...]
    labels: tuple[str, ...] | None  # display labels the test expects, aligned with est.classes_
    pickle: Path
    brew: Path | None

    def row(self, i: int) -> dict:
        return {f: None if np.isnan(v) else float(v) for f, v in zip(self.features, self.X[i], strict=True)}

    def expected(self, X: np.ndarray, fmt: str = "brew") -> list[dict]:
        """What the API must answer for ``X``, from scikit-learn's own predict / predict_proba.

        A pickle carries no display labels: its classes, as strings, are its labels.
        """
        import warnings

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
            predicted = self.est.predict(X)
            if type(self.est).__name__ == "XGBRanker":  # a ranker: its scores
                return [{"score": float(v)} for v in predicted]
            if hasattr(self.est, "offset_"):  # an outlier detector: its sign and both scores
                scores, decisions = self.est.score_samples(X), self.est.decision_function(X)
                return [
                    {"prediction": int(p), "score": float(s), "decision": float(d)}
                    for p, s, d in zip(predicted, scores, decisions, strict=True)
                ]
            if self.labels is None:
                return [{"prediction": float(v)} for v in predicted]
            if not hasattr(self.est, "predict_proba"):  # hard voting: the label alone
                classes = self.est.classes_.tolist()
                labels = self.labels if fmt == "brew" else tuple(str(c) for c in classes)
                label = dict(zip(classes, labels, strict=True))
                return [{"prediction": label[c]} for c in predicted.tolist()]
            proba = self.est.predict_proba(X)
        classes = self.est.classes_.tolist()
        labels = self.labels if fmt == "brew" else tuple(str(c) for c in classes)
        label = dict(zip(classes, labels, strict=True))
        names = [label[c] for c in predicted.tolist()]
        if len(labels) == 2:
            return [{"prediction": n, "probability": float(p[1])} for n, p in zip(names, proba, strict=True)]
        return [
            {"prediction": n, "probabilities": {lab: float(q) for lab, q in zip(labels, p, strict=True)}}
            for n, p in zip(names, proba, strict=True)
        ]


def _dataset(loader):
    data = loader()
    X = np.asarray(data.data, dtype=np.float64)
    names = tuple(re.sub(r"\W+", "_", str(n)).strip("_") for n in data.feature_names)
    return X, data.target, names, tuple(str(t) for t in getattr(data, "target_names", ()))


def build(tmp: Path, name: str, est, loader, *, labels: str = "given", brew: bool = True, nan: bool = False):
    """Fit ``est`` on the first 80% of ``loader``'s data; pickle it; compile it (optionally with class labels)."""
    import pandas as pd

    from coldbrew.convert import compile_file

    X, y, names, target_names = _dataset(loader)
    if nan:
        X = X.copy()
        X[np.random.default_rng(0).random(X.shape) < 0.1] = np.nan
    order = np.random.default_rng(1).permutation(len(X))
    cut = int(len(X) * 0.8)
    train, test = order[:cut], order[cut:]
    # a ranker learns from queries of 20 rows (in training order); the others from the rows alone
    fit = {"qid": np.arange(len(train)) // 20} if type(est).__name__ == "XGBRanker" else {}
    est.fit(pd.DataFrame(X[train], columns=list(names)), y[train], **fit)
    path = tmp / f"{name}.pkl"
    path.write_bytes(pickle.dumps(est))
    is_clf = hasattr(est, "classes_")
    display = None
    if is_clf:
        display = target_names if labels == "given" else tuple(str(c) for c in est.classes_.tolist())
    out = None
    if brew:
        out = tmp / f"{name}.brew"
        compile_file(path, out, progress=False, class_labels=list(display) if labels == "given" and is_clf else None)
    return Family(name, est, X[test], names, display, path, out)


def _hard_vote():
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier, VotingClassifier

    members = [("rf", RandomForestClassifier(5, random_state=0)), ("et", ExtraTreesClassifier(4, random_state=0))]
    return VotingClassifier(members, voting="hard", weights=[2, 1])


def _ranker():
    import xgboost

    return xgboost.XGBRanker(n_estimators=10, max_depth=3, objective="rank:pairwise")


def build_all(tmp: Path) -> dict[str, Family]:
    """Every family, fitted in a second or two."""
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        GradientBoostingRegressor,
        HistGradientBoostingClassifier,
        IsolationForest,
        RandomForestClassifier,
    )

    return {
        f.name: f
        for f in (
            build(
                tmp,
                "binary",
                GradientBoostingClassifier(n_estimators=30, max_depth=2, random_state=0),
                load_breast_cancer,
            ),
            build(
                tmp,
                "binary-unlabelled",
                GradientBoostingClassifier(n_estimators=10, max_depth=2, random_state=0),
                load_breast_cancer,
                labels="str",
            ),
            build(tmp, "multiclass", RandomForestClassifier(n_estimators=15, max_depth=4, random_state=0), load_iris),
            build(
                tmp,
                "multiclass-unlabelled",
                GradientBoostingClassifier(n_estimators=10, random_state=0),
                load_iris,
                labels="str",
            ),
            build(tmp, "anomaly", IsolationForest(n_estimators=20, random_state=0), load_diabetes, nan=True),
            build(tmp, "ranking", _ranker(), load_diabetes, nan=True),
            build(tmp, "hard-vote", _hard_vote(), load_iris, nan=True),
            build(
                tmp,
                "regression",
                GradientBoostingRegressor(n_estimators=40, max_depth=3, random_state=0),
                load_diabetes,
            ),
            # Missing values: HistGradientBoosting routes NaN per node; served from its pickle until .brew has it.
            build(
                tmp,
                "nullable",
                HistGradientBoostingClassifier(max_iter=15, random_state=0),
                load_iris,
                brew=False,
                nan=True,
            ),
        )
    }
