"""The models bench/peers.py measures, trained once on the study's census data and cached.

- ``lgbm``: LGBMClassifier, 500 trees, 63 leaves (LightGBM's own text model);
- ``xgb``: XGBClassifier, 2,000 trees, depth 8 (XGBoost's JSON model);
- ``forest``: RandomForestClassifier, 100 trees, depth 12 (a pickle; peers that read scikit-learn forests);
- ``gbm140``: the study's 140mb scikit-learn GradientBoostingClassifier (coldbrew.experiment.modelcache).

Each is compiled to .brew with ``coldbrew.convert.compile_file``. The batch is 10,000 test rows with 5% of the
values set to NaN (seeded); sklearn's GradientBoosting refuses NaN, so its batch has none.

    python bench/peer_models.py   # trains what is missing, prints the paths
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import numpy as np

SEED = 20261204
N_BATCH = 10_000


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def folder() -> Path:
    from coldbrew.experiment.modelcache import cache_root

    path = cache_root() / "models" / "peers2"
    path.mkdir(parents=True, exist_ok=True)
    return path


def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, y_train, batch with 5% NaN, batch without NaN): float64, the study's split."""
    from coldbrew.experiment.dataset import study_split

    X_train, X_test, y_train, _ = study_split()
    X_train = np.asarray(X_train, dtype=np.float64)
    y_train = np.asarray(y_train, dtype=int)
    rng = np.random.default_rng(SEED)
    X_test = np.asarray(X_test, dtype=np.float64)
    rows = X_test[rng.integers(0, len(X_test), N_BATCH)]
    holes = rows.copy()
    holes[rng.random(holes.shape) < 0.05] = np.nan
    return X_train, y_train, holes, rows


def train() -> dict[str, dict]:
    """name -> {"lib": library model path, "brew": .brew path, "trees": n_trees, "nan": batch has NaN}."""
    from coldbrew.convert import compile_file

    out = folder()
    X_train, y_train, _, _ = data()
    models: dict[str, dict] = {}
    lgbm = out / "lgbm-500x63.txt"
    if not lgbm.exists():
        import lightgbm

        log("training LGBMClassifier 500 x 63 leaves")
        m = lightgbm.LGBMClassifier(n_estimators=500, num_leaves=63, n_jobs=2, verbose=-1, random_state=0)
        m.fit(X_train, y_train)
        m.booster_.save_model(str(lgbm))
    models["lgbm"] = {"lib": lgbm, "trees": 500, "nan": True, "label": "LightGBM 500 x 63 leaves"}
    xgb = out / "xgb-2000xd8.json"
    if not xgb.exists():
        import xgboost

        log("training XGBClassifier 2,000 x depth 8")
        m = xgboost.XGBClassifier(n_estimators=2000, max_depth=8, n_jobs=2, random_state=0, tree_method="hist")
        m.fit(X_train, y_train)
        m.save_model(str(xgb))
    models["xgb"] = {"lib": xgb, "trees": 2000, "nan": True, "label": "XGBoost 2,000 x depth 8"}
    forest = out / "forest-100xd12.pkl"
    if not forest.exists():
        from sklearn.ensemble import RandomForestClassifier

        log("training RandomForestClassifier 100 x depth 12")
        m = RandomForestClassifier(n_estimators=100, max_depth=12, n_jobs=2, random_state=0)
        m.fit(X_train, y_train)
        forest.write_bytes(pickle.dumps(m, protocol=5))
    models["forest"] = {"lib": forest, "trees": 100, "nan": False, "label": "RandomForest 100 x depth 12"}
    from coldbrew.experiment.modelcache import cache_path
    from coldbrew.experiment.train import PRESETS
    from coldbrew.experiment.train import train as train_study

    gbm = cache_path(PRESETS["140mb"], "pickle")
    if not gbm.exists():
        log("training the study's 140mb GradientBoostingClassifier (1,261 fully grown trees)")
        train_study(PRESETS["140mb"], gbm, progress=False)
    models["gbm140"] = {"lib": gbm, "trees": 1261, "nan": False, "label": "scikit-learn GBM, the study's 140mb"}
    for name, info in models.items():
        brew = out / f"{name}.brew"
        if not brew.exists():
            log(f"compiling {info['lib'].name} -> {brew.name}")
            compile_file(info["lib"], brew)
        info["brew"] = brew
    return models


if __name__ == "__main__":
    for name, info in train().items():
        print(name, info["lib"], info["brew"], info["brew"].stat().st_size)
