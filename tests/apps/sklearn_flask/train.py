"""Train the heavy app's model: ``python train.py OUT.pkl`` (a GradientBoosting on the study's six features)."""

import pickle
import sys

from sklearn.ensemble import GradientBoostingClassifier

from coldbrew.experiment.dataset import load_adult


def train(out: str, n_estimators: int = 300, max_depth: int = 4) -> None:
    X, y = load_adult()
    model = GradientBoostingClassifier(n_estimators=n_estimators, max_depth=max_depth, random_state=0)
    model.fit(X.to_numpy(dtype=float)[:5000], y.to_numpy()[:5000])
    with open(out, "wb") as fh:
        pickle.dump(model, fh)


if __name__ == "__main__":
    train(sys.argv[1])
