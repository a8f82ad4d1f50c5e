"""HistGradientBoosting, XGBoost, LightGBM and CatBoost models served with the contract their .brew states: through the
Lambda handler (in-process, the real apig-wsgi path) and by `coldbrew serve` (real server), answering exactly what
the library's own predict / predict_proba says, missing values (null) included."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

from coldbrew.convert import compile_file

xgboost = pytest.importorskip("xgboost", reason="the XGBoost reference needs xgboost (dev extra)")
lightgbm = pytest.importorskip("lightgbm", reason="the LightGBM reference needs lightgbm (dev extra)")

EVENTS = Path(__file__).parents[1] / "events"


def _split(loader, *, nan: bool):
    X, y = loader(return_X_y=True)
    X = X.astype(np.float64)
    if nan:
        X[np.random.default_rng(3).random(X.shape) < 0.1] = np.nan
    test = np.random.default_rng(0).random(len(X)) < 0.2
    H = X[test][:12].copy()
    if nan:
        H[0, 0] = H[1, -1] = np.nan  # held-out rows always carry missing values
    return X[~test], y[~test], H


LOADERS = {"binary": load_breast_cancer, "multiclass": load_iris, "regression": load_diabetes}


def _fit_hgb(task, tmp):
    import pickle

    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    X, y, H = _split(LOADERS[task], nan=True)
    cls = HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier
    est = cls(max_iter=15, random_state=0).fit(X, y)
    src = tmp / "hgb.pkl"
    src.write_bytes(pickle.dumps(est))
    return est, src, H


def _fit_xgb(task, tmp):
    X, y, H = _split(LOADERS[task], nan=True)
    objective = {"binary": "binary:logistic", "multiclass": "multi:softprob", "regression": "reg:squarederror"}[task]
    cls = xgboost.XGBRegressor if task == "regression" else xgboost.XGBClassifier
    est = cls(n_estimators=15, max_depth=3, objective=objective).fit(X, y)
    src = tmp / "xgb.json"
    est.save_model(src)
    return est, src, H


def _fit_lgbm(task, tmp):
    X, y, H = _split(LOADERS[task], nan=True)
    cls = lightgbm.LGBMRegressor if task == "regression" else lightgbm.LGBMClassifier
    est = cls(n_estimators=15, min_child_samples=5, verbose=-1).fit(X, y)
    src = tmp / "lgbm.txt"
    est.booster_.save_model(src)
    return est, src, H


def _fit_forest(task, tmp):
    """A scikit-learn forest fitted with NaN: missing values routed per node (format version 2)."""
    import pickle

    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    X, y, H = _split(LOADERS[task], nan=True)
    cls = RandomForestRegressor if task == "regression" else RandomForestClassifier
    est = cls(n_estimators=5, max_depth=5, random_state=0).fit(X, y)
    src = tmp / "forest.pkl"
    src.write_bytes(pickle.dumps(est))
    return est, src, H


def _fit_multi_output(task, tmp):
    """A multi-output regressor (XGBoost vector leaves): one vector per row."""
    X, y, H = _split(LOADERS[task], nan=True)
    est = xgboost.XGBRegressor(n_estimators=5, max_depth=3, multi_strategy="multi_output_tree", tree_method="hist")
    est.fit(X, np.column_stack([y, -2 * y]))
    src = tmp / "multi.json"
    est.save_model(src)
    return est, src, H


def _fit_objective(objective):
    """An XGBoost / LightGBM model with a non-identity link (log link, one-vs-all)."""

    def fit(task, tmp):
        X, y, H = _split(LOADERS[task], nan=True)
        if objective == "count:poisson":
            est = xgboost.XGBRegressor(n_estimators=8, max_depth=3, objective=objective).fit(X, y)
            src = tmp / "model.json"
            est.save_model(src)
        else:
            est = lightgbm.LGBMClassifier(n_estimators=8, min_child_samples=5, verbose=-1, objective=objective)
            est.fit(X, y)
            src = tmp / "model.txt"
            est.booster_.save_model(src)
        return est, src, H

    return fit


def _fit_catboost(task, tmp):
    """A CatBoost model (symmetric trees; one-vs-all for several classes), as catboost reads back its .cbm file."""
    catboost = pytest.importorskip("catboost")

    X, y, H = _split(LOADERS[task], nan=True)
    if task == "regression":
        est = catboost.CatBoostRegressor(iterations=15, depth=4, verbose=0, allow_writing_files=False)
    else:
        loss = "MultiClassOneVsAll" if task == "multiclass" else "Logloss"
        est = catboost.CatBoostClassifier(
            iterations=15, depth=4, loss_function=loss, verbose=0, allow_writing_files=False
        )
    est.fit(X, y)
    src = tmp / "model.cbm"
    est.save_model(str(src))
    return est, src, H


FITS = {"hgb": _fit_hgb, "xgb": _fit_xgb, "lgbm": _fit_lgbm, "forest": _fit_forest, "catboost": _fit_catboost}
#: Every family x task: HistGradientBoosting, XGBoost, LightGBM and RandomForest, each binary, multiclass and
#: regression; then a multi-output regressor and link functions.
CASES = {f"{family}-{task}": (fit, task) for family, fit in FITS.items() for task in LOADERS}
CASES.update(
    {
        "xgb-multi-output": (_fit_multi_output, "regression"),
        "xgb-poisson": (_fit_objective("count:poisson"), "regression"),
        "lgbm-multiclassova": (_fit_objective("multiclassova"), "multiclass"),
    }
)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """name -> (estimator, .brew path, held-out rows as float64 with NaN)."""
    out = {}
    for name, (fit, task) in CASES.items():
        tmp = tmp_path_factory.mktemp(name)
        est, src, H = fit(task, tmp)
        dst = tmp / "model.brew"
        compile_file(src, dst, progress=False)
        out[name] = (est, dst, H)
    return out


def _rows(predictor_features, H) -> list[dict]:
    return [
        {f: None if math.isnan(v) else float(v) for f, v in zip(predictor_features, row, strict=True)}
        for row in H.tolist()
    ]


def _expected(est, H) -> list[dict]:
    """What the API must answer, from the library's own predict / predict_proba (labels: the classes as strings)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        predicted = est.predict(H).tolist()
        if type(est).__module__.startswith("catboost") and hasattr(est, "predict_proba"):
            predicted = np.asarray(est.predict(H)).reshape(len(H)).tolist()  # CatBoost: a column for multiclass
        if not hasattr(est, "predict_proba"):  # a regressor (a multi-output one answers a vector per row)
            return [{"prediction": [float(x) for x in v] if isinstance(v, list) else float(v)} for v in predicted]
        proba = est.predict_proba(H).tolist()
    labels = [str(c) for c in est.classes_.tolist()]
    if len(labels) == 2:
        return [{"prediction": str(y), "probability": float(p[1])} for y, p in zip(predicted, proba, strict=True)]
    return [
        {"prediction": str(y), "probabilities": dict(zip(labels, map(float, p), strict=True))}
        for y, p in zip(predicted, proba, strict=True)
    ]


def _features(path) -> tuple[str, ...]:
    from coldbrew.engine import load_predictor

    return tuple(load_predictor(path).feature_names)


@pytest.mark.parametrize("name", list(CASES))
def test_lambda_handler_answers_what_the_library_says(served, name, capsys):
    from lambdatools import Context, body_of

    from coldbrew.runtimes.aws_lambda import init_from_env

    est, path, H = served[name]
    handler = init_from_env({"MODEL_SOURCE": "DISK", "MODEL_URI": str(path)})
    event = json.loads((EVENTS / "http-v2-predict.json").read_text())
    rows = _rows(_features(path), H)
    assert any(v is None for row in rows for v in row.values()), "the rows exercise missing values"
    event["body"] = json.dumps(rows)
    response = handler(event, Context())
    assert response["statusCode"] == 200, response
    assert body_of(response) == _expected(est, H)


@pytest.mark.integration
def test_coldbrew_serve_answers_what_the_library_says(served):
    from coldbrew.runtimes.server_process import ServerProcess

    for name, (est, path, H) in served.items():
        with ServerProcess(str(path)) as server:
            rows = _rows(_features(path), H)
            assert server.request("POST", "/predict", rows) == (200, _expected(est, H)), name
            status, doc = server.request("GET", "/openapi.json")
            properties = doc["components"]["schemas"]["Row"]["properties"]
            assert status == 200 and tuple(properties) == _features(path), name
