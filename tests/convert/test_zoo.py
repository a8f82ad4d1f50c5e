"""The model zoo: one case per family x objective x save format, on data that ships with scikit-learn.

docs/models.md's "What compiles" table is the index: every row is a case here (and every case a row), and says
either "compiles" (the case must compile from each listed save format and answer bit-exact — values and dtype —
with the library's own predict / predict_proba on held-out rows with missing values and on rows at the model's
thresholds, on both kernels, numpy in and lists in) or "refused: <words>" (compile must refuse it with one line
holding those words and leave nothing at -o). Each compiling case is also served: a sample of the same rows, by
field name, through the Lambda handler and a real ``coldbrew serve`` answers the library's predictions in the API's
JSON shape for its task (docs/serving.md). Expected answers always come from the library, never coldbrew.
"""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris

from coldbrew.convert import compile_file
from coldbrew.convert.trees import UnsupportedModelError, probe_rows_from_arrays
from coldbrew.engine.brew import KERNELS, BrewPredictor

DOCS = Path(__file__).resolve().parents[2] / "docs" / "models.md"


def _split(loader, nan: float = 0.1, seed: int = 0):
    X, y = loader(return_X_y=True)
    X = X.astype(np.float64)
    rng = np.random.default_rng(seed)
    test = rng.random(len(X)) < 0.25
    Xn = X.copy()
    Xn[rng.random(X.shape) < nan] = np.nan
    return Xn[~test], y[~test], Xn[test]


def binary(nan=0.1):
    return _split(load_breast_cancer, nan)


def multiclass(nan=0.1):
    return _split(load_iris, nan)


def regression(nan=0.1):
    return _split(load_diabetes, nan)


def digits(nan=0.0):
    return _split(load_digits, nan)


def positive(nan=0.1):
    X, y, H = regression(nan)
    return X, (y + 1) / (y.max() + 2), H  # in (0, 1)


def grades(nan=0.1):
    X, y, H = regression(nan)
    return X, np.minimum(y // 60, 4).astype(int), H


# ---- the cases: key "library | variant" -> build() -> (fitted model, held-out rows) -----------------------------


def _sk(factory, data, nan_train=True):
    def build():
        X, y, H = data()
        if not nan_train:
            X = np.nan_to_num(X)
        return factory().fit(X, y), H

    return build


def _sk_nonan(factory, data):
    def build():
        X, y, H = data(nan=0.0)
        return factory().fit(X, y), H

    return build


def _xgb(objective, data, cls="XGBRegressor", **params):
    def build():
        import xgboost

        X, y, H = data()
        est = getattr(xgboost, cls)(n_estimators=6, max_depth=3, objective=objective, **params)
        fit = {"qid": np.arange(len(X)) // 20} if cls == "XGBRanker" else {}
        return est.fit(X, y, **fit), H

    return build


def _lgb(objective, data, cls="LGBMRegressor", **params):
    def build():
        import lightgbm

        X, y, H = data()
        est = getattr(lightgbm, cls)(n_estimators=6, num_leaves=7, verbose=-1, objective=objective, **params)
        fit = {"group": np.bincount(np.arange(len(X)) // 20)} if cls == "LGBMRanker" else {}
        return est.fit(X, y, **fit), H

    return build


def _e(name):
    """A scikit-learn estimator class by name."""
    import sklearn.ensemble
    import sklearn.tree

    return getattr(sklearn.ensemble, name, None) or getattr(sklearn.tree, name)


def _hgb(cls, data, **params):
    return _sk(lambda: _e(cls)(max_iter=8, random_state=0, **params), data)


def _rf(cls, data, nan_train=True, **params):
    return _sk(lambda: _e(cls)(random_state=0, **params), data, nan_train)


def _gb(cls, data, **params):
    return _sk_nonan(lambda: _e(cls)(n_estimators=8, max_depth=2, random_state=0, **params), data)


RF = {"n_estimators": 6, "max_depth": 5}
RIDGE_DATA = regression


def _meta(make, data):
    def build():
        X, y, H = data()
        return make().fit(X, y), H

    return build


def _pipeline():
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), HistGradientBoostingClassifier(max_iter=5))


def _voting(voting="soft", weights=None):
    def make():
        from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier, VotingClassifier
        from sklearn.tree import DecisionTreeClassifier

        members = [
            ("rf", RandomForestClassifier(3, random_state=0)),
            ("et", ExtraTreesClassifier(4, random_state=1)),
            ("dt", DecisionTreeClassifier(max_depth=3, random_state=0)),
        ]
        return VotingClassifier(members, voting=voting, weights=weights)

    return make


def _voting_regressor(weights=None):
    def make():
        from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor, VotingRegressor
        from sklearn.tree import DecisionTreeRegressor

        members = [
            ("rf", RandomForestRegressor(3, random_state=0)),
            ("et", ExtraTreesRegressor(4, random_state=1)),
            ("dt", DecisionTreeRegressor(max_depth=4, random_state=0)),
        ]
        return VotingRegressor(members, weights=weights)

    return make


def _bagging():
    from sklearn.ensemble import BaggingClassifier
    from sklearn.tree import DecisionTreeClassifier

    return BaggingClassifier(DecisionTreeClassifier(max_depth=3), n_estimators=3, random_state=0)


def _bagging_regressor():
    from sklearn.ensemble import BaggingRegressor
    from sklearn.tree import ExtraTreeRegressor

    return BaggingRegressor(ExtraTreeRegressor(max_depth=4), n_estimators=4, max_features=0.7, random_state=0)


def _stacking():
    from sklearn.ensemble import RandomForestClassifier, StackingClassifier

    return StackingClassifier([("rf", RandomForestClassifier(3, random_state=0))])


def _multi_output_classifier():
    def build():
        from sklearn.ensemble import RandomForestClassifier

        X, y, H = binary()
        return RandomForestClassifier(3, random_state=0).fit(X, np.column_stack([y, 1 - y])), H

    return build


def _calibrated_lgbm():
    import lightgbm

    return _calibrated(estimator=lightgbm.LGBMClassifier(n_estimators=6, verbose=-1), method="isotonic")()


def _calibrated(**params):
    def make():
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.ensemble import RandomForestClassifier

        given = {"estimator": RandomForestClassifier(3, random_state=0), "cv": 2} | params
        return CalibratedClassifierCV(**given)

    return make


def _iforest(nan=0.0, **params):
    def build():
        from sklearn.ensemble import IsolationForest

        X, _, H = regression(nan=nan)
        return IsolationForest(random_state=0, **({"n_estimators": 5} | params)).fit(X), H

    return build


def _multi_output_forest():
    def build():
        from sklearn.ensemble import RandomForestRegressor

        X, y, H = regression(nan=0.0)
        return RandomForestRegressor(3, random_state=0).fit(X, np.column_stack([y, -y])), H

    return build


def _xgb_multi_target(**params):
    def build():
        import xgboost

        X, y, H = regression()
        return xgboost.XGBRegressor(n_estimators=3, tree_method="hist", **params).fit(X, np.column_stack([y, -y])), H

    return build


def _catboost(cls="CatBoostClassifier", data=None, **params):
    """A CatBoost estimator (symmetric trees) on the case's data; rankers get groups of 20 rows."""

    def build():
        import catboost

        X, y, H = (data or binary)()
        est = getattr(catboost, cls)(iterations=8, depth=4, verbose=0, allow_writing_files=False, **params)
        fit = {"group_id": np.arange(len(X)) // 20} if cls == "CatBoostRanker" else {}
        return est.fit(X, y, **fit), H

    return build


def _catboost_categorical(one_hot_max_size):
    """A CatBoost classifier with a string column: one-hot splits or CTRs (target statistics) on it."""

    def build():
        import catboost
        import pandas as pd

        X, y, H = binary(nan=0.05)
        names = np.array(["Paris", "Lyon", "Nice", "Zürich", "東京", ""])

        def frame(A, seed):
            f = pd.DataFrame(A[:, :5], columns=list("abcde"))
            f["city"] = names[np.random.default_rng(seed).integers(0, len(names), len(A))]
            return f

        train = frame(X, 0)
        y = np.where(train["city"].isin(["Paris", "Nice"]), 1 - y, y)
        held = frame(H, 1)
        held.loc[::4, "city"] = "a city never seen"
        est = catboost.CatBoostClassifier(
            iterations=8, depth=4, verbose=0, allow_writing_files=False, one_hot_max_size=one_hot_max_size
        )
        return est.fit(train, y, cat_features=["city"]), held

    return build


COLOURS = np.array(["red", "green", "blue"])


def _categories(library):
    """A model fitted on a pandas ``category`` column (names, not codes); held-out rows send the names as strings,
    unseen and missing ones included (``H.attrs["categories"]``: the training categories, for the library)."""

    def build():
        import pandas as pd

        X, y, H = binary(nan=0.0)
        frame = pd.DataFrame(X[:, :4], columns=list("abcd"))
        frame["colour"] = pd.Categorical(COLOURS[np.arange(len(X)) % 3])
        if library == "lightgbm":
            import lightgbm

            est = lightgbm.LGBMClassifier(n_estimators=3, verbose=-1).fit(frame, y)
        elif library == "xgboost":
            import xgboost

            est = xgboost.XGBClassifier(n_estimators=3, enable_categorical=True, tree_method="hist").fit(frame, y)
        else:
            from sklearn.ensemble import HistGradientBoostingClassifier

            est = HistGradientBoostingClassifier(max_iter=3, categorical_features="from_dtype").fit(frame, y)
        held = pd.DataFrame(H[:, :4], columns=list("abcd"))
        names = np.array([*COLOURS, "purple", None], dtype=object)
        held["colour"] = pd.Series(names[np.arange(len(held)) % 5], dtype=object)
        held.attrs["categories"] = {"colour": list(frame["colour"].cat.categories)}
        if library == "xgboost":  # XGBoost 3.2 is inconsistent on unseen names; coldbrew refuses them
            held.attrs["unseen"] = "refused"
        return est, held

    return build


def _strings(seed: int = 0):
    """Breast-cancer numbers (some missing) plus two string columns derived from them, a rare value included;
    held-out rows add unseen and missing strings."""
    import pandas as pd

    X, y, H = binary(nan=0.05)

    def frame(A, unseen):
        df = pd.DataFrame(A[:, :4], columns=["radius", "texture", "perimeter", "area"])
        size = np.array(["s", "m", "l", "xl"], dtype=object)[np.digitize(np.nan_to_num(A[:, 4]), [0.09, 0.1, 0.11])]
        tone = np.array(["pale", "dark", "rare"], dtype=object)[(np.nan_to_num(A[:, 5]) * 100).astype(int) % 7 // 3]
        if unseen:
            size[::7], tone[::5], size[3::11] = "xxl", "neon", np.nan
        df["size"], df["tone"] = size, tone
        return df

    return frame(X, False), y, frame(H, True)


def _pipe(prep, model=None):
    def build():
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.pipeline import Pipeline

        X, y, H = _strings()
        final = model() if model else HistGradientBoostingClassifier(max_iter=5, random_state=0)
        return Pipeline([("prep", prep()), ("model", final)]).fit(X, y), H

    return build


def _ct(*transformers, **kw):
    from sklearn.compose import ColumnTransformer

    return lambda: ColumnTransformer(list(transformers), **kw)


def _prep_onehot_standard():
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    return _ct(
        ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["size", "tone"]),
        ("num", StandardScaler(), ["radius", "texture", "perimeter", "area"]),
    )()


def _prep_onehot_infrequent_minmax():
    from sklearn.preprocessing import MinMaxScaler, OneHotEncoder

    enc = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=30, drop="first", sparse_output=False)
    return _ct(("cat", enc, ["size", "tone"]), remainder=MinMaxScaler())()


def _prep_ordinal_imputer_robust():
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder, RobustScaler

    return _ct(
        ("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), ["size", "tone"]),
        ("num", make_pipeline(SimpleImputer(strategy="median"), RobustScaler()), ["radius", "area"]),
        remainder="drop",
    )()


def _prep_target_maxabs():
    from sklearn.preprocessing import MaxAbsScaler, TargetEncoder

    return _ct(("cat", TargetEncoder(), ["size", "tone"]), remainder=MaxAbsScaler())()


def _prep_string_imputer_passthrough():
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    return _ct(
        (
            "cat",
            make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
            ["size"],
        ),
        ("num", "passthrough", ["radius", "texture"]),
        ("gone", "drop", ["tone"]),
        remainder=SimpleImputer(strategy="mean"),
    )()


def _prep_polynomial():
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, PolynomialFeatures

    poly = make_pipeline(SimpleImputer(), PolynomialFeatures())
    return _ct(("cat", OneHotEncoder(handle_unknown="ignore"), ["size"]), ("poly", poly, ["area"]))()


def _pipeline_gbm():
    from sklearn.ensemble import GradientBoostingClassifier

    return GradientBoostingClassifier(n_estimators=3)


def _pipeline_xgboost():
    import xgboost

    return xgboost.XGBClassifier(n_estimators=5, max_depth=3)


def _pipeline_lightgbm():
    import lightgbm

    return lightgbm.LGBMClassifier(n_estimators=5, verbose=-1)


def _pipeline_forest():
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=5, max_depth=5, random_state=0)


CASES = {
    # scikit-learn forests and trees (NaN routed per node, trained with or without NaN)
    "scikit-learn | RandomForestClassifier, NaN in training": _rf("RandomForestClassifier", multiclass, **RF),
    "scikit-learn | RandomForestClassifier, no NaN in training": _rf(
        "RandomForestClassifier", binary, nan_train=False, **RF
    ),
    "scikit-learn | RandomForestRegressor": _rf("RandomForestRegressor", regression, **RF),
    "scikit-learn | ExtraTreesClassifier": _rf("ExtraTreesClassifier", multiclass, **RF),
    "scikit-learn | ExtraTreesRegressor": _rf("ExtraTreesRegressor", regression, **RF),
    "scikit-learn | DecisionTreeClassifier": _rf("DecisionTreeClassifier", binary, max_depth=6),
    "scikit-learn | DecisionTreeRegressor": _rf("DecisionTreeRegressor", regression, max_depth=6),
    # HistGradientBoosting
    "scikit-learn | HistGradientBoostingClassifier binary": _hgb("HistGradientBoostingClassifier", binary),
    "scikit-learn | HistGradientBoostingClassifier 3 classes": _hgb("HistGradientBoostingClassifier", multiclass),
    "scikit-learn | HistGradientBoostingClassifier 10 classes": _hgb("HistGradientBoostingClassifier", digits),
    "scikit-learn | HistGradientBoostingRegressor squared_error": _hgb("HistGradientBoostingRegressor", regression),
    "scikit-learn | HistGradientBoostingRegressor poisson": _hgb(
        "HistGradientBoostingRegressor", regression, loss="poisson"
    ),
    "scikit-learn | HistGradientBoostingRegressor gamma": _hgb("HistGradientBoostingRegressor", positive, loss="gamma"),
    "scikit-learn | HistGradientBoostingRegressor quantile": _hgb(
        "HistGradientBoostingRegressor", regression, loss="quantile", quantile=0.3
    ),
    "scikit-learn | HistGradientBoostingRegressor absolute_error": _hgb(
        "HistGradientBoostingRegressor", regression, loss="absolute_error"
    ),
    # classic GradientBoosting (no missing values, as scikit-learn)
    "scikit-learn | GradientBoostingClassifier log_loss": _gb("GradientBoostingClassifier", binary),
    "scikit-learn | GradientBoostingClassifier exponential": _gb(
        "GradientBoostingClassifier", binary, loss="exponential"
    ),
    "scikit-learn | GradientBoostingClassifier multiclass": _gb("GradientBoostingClassifier", multiclass),
    "scikit-learn | GradientBoostingRegressor squared_error": _gb("GradientBoostingRegressor", regression),
    "scikit-learn | GradientBoostingRegressor huber": _gb("GradientBoostingRegressor", regression, loss="huber"),
    "scikit-learn | GradientBoostingRegressor quantile": _gb(
        "GradientBoostingRegressor", regression, loss="quantile", alpha=0.3
    ),
    "scikit-learn | GradientBoostingRegressor absolute_error": _gb(
        "GradientBoostingRegressor", regression, loss="absolute_error"
    ),
    # XGBoost
    "XGBoost | binary:logistic": _xgb("binary:logistic", binary, "XGBClassifier"),
    "XGBoost | binary:hinge": _xgb("binary:hinge", binary, "XGBClassifier"),
    "XGBoost | binary:logitraw (XGBRegressor)": _xgb("binary:logitraw", binary),
    "XGBoost | multi:softprob": _xgb("multi:softprob", multiclass, "XGBClassifier"),
    "XGBoost | multi:softmax": _xgb("multi:softmax", multiclass, "XGBClassifier"),
    "XGBoost | reg:squarederror": _xgb("reg:squarederror", regression),
    "XGBoost | reg:logistic": _xgb("reg:logistic", positive),
    "XGBoost | reg:squaredlogerror": _xgb("reg:squaredlogerror", regression),
    "XGBoost | reg:pseudohubererror": _xgb("reg:pseudohubererror", regression),
    "XGBoost | reg:absoluteerror": _xgb("reg:absoluteerror", regression),
    "XGBoost | reg:quantileerror": _xgb("reg:quantileerror", regression, quantile_alpha=0.3),
    "XGBoost | count:poisson": _xgb("count:poisson", regression),
    "XGBoost | reg:gamma": _xgb("reg:gamma", regression),
    "XGBoost | reg:tweedie": _xgb("reg:tweedie", regression),
    "XGBoost | survival:cox": _xgb("survival:cox", regression),
    "XGBoost | rank:pairwise": _xgb("rank:pairwise", grades, "XGBRanker"),
    "XGBoost | rank:ndcg": _xgb("rank:ndcg", grades, "XGBRanker"),
    "XGBoost | rank:map": _xgb("rank:map", binary, "XGBRanker"),
    "XGBoost | XGBRFClassifier": _xgb("binary:logistic", binary, "XGBRFClassifier"),
    "XGBoost | dart booster": _xgb("reg:squarederror", regression, booster="dart", rate_drop=0.3),
    "XGBoost | gblinear booster": _xgb("reg:squarederror", regression, booster="gblinear"),
    "XGBoost | gblinear binary:logistic": _xgb("binary:logistic", binary, "XGBClassifier", booster="gblinear"),
    "XGBoost | gblinear multi:softprob": _xgb("multi:softprob", multiclass, "XGBClassifier", booster="gblinear"),
    "XGBoost | multi-target, one tree per target": _xgb_multi_target(),
    "XGBoost | multi-target, vector leaves": _xgb_multi_target(multi_strategy="multi_output_tree"),
    "XGBoost | pandas category column": _categories("xgboost"),
    # LightGBM
    "LightGBM | binary": _lgb("binary", binary, "LGBMClassifier"),
    "LightGBM | multiclass": _lgb("multiclass", multiclass, "LGBMClassifier"),
    "LightGBM | multiclassova": _lgb("multiclassova", multiclass, "LGBMClassifier"),
    "LightGBM | regression": _lgb("regression", regression),
    "LightGBM | regression_l1": _lgb("regression_l1", regression),
    "LightGBM | huber": _lgb("huber", regression),
    "LightGBM | quantile": _lgb("quantile", regression, alpha=0.3),
    "LightGBM | poisson": _lgb("poisson", regression),
    "LightGBM | gamma": _lgb("gamma", regression),
    "LightGBM | tweedie": _lgb("tweedie", regression),
    "LightGBM | cross_entropy": _lgb("cross_entropy", positive),
    "LightGBM | lambdarank": _lgb("lambdarank", grades, "LGBMRanker"),
    "LightGBM | rank_xendcg": _lgb("rank_xendcg", grades, "LGBMRanker"),
    "LightGBM | rf (random forest)": _lgb(
        "binary", binary, "LGBMClassifier", boosting_type="rf", bagging_freq=1, bagging_fraction=0.7
    ),
    "LightGBM | linear_tree": _lgb("regression", regression, linear_tree=True),
    "LightGBM | linear_tree binary": _lgb("binary", binary, "LGBMClassifier", linear_tree=True),
    "LightGBM | pandas category column": _categories("lightgbm"),
    # not yet: documented refusals
    "scikit-learn | HistGradientBoosting on a pandas category column": _categories("sklearn"),
    "scikit-learn | IsolationForest": _iforest(),
    "scikit-learn | IsolationForest, max_features and contamination": _iforest(
        nan=0.1, n_estimators=20, max_features=0.6, contamination=0.1
    ),
    "scikit-learn | multi-output RandomForestRegressor": _multi_output_forest(),
    "scikit-learn | Pipeline": _meta(_pipeline, binary),
    "scikit-learn | Pipeline, one-hot + StandardScaler on strings": _pipe(_prep_onehot_standard),
    "scikit-learn | Pipeline, one-hot drop/infrequent + MinMaxScaler remainder": _pipe(_prep_onehot_infrequent_minmax),
    "scikit-learn | Pipeline, ordinal + median imputer + RobustScaler": _pipe(_prep_ordinal_imputer_robust),
    "scikit-learn | Pipeline, TargetEncoder + MaxAbsScaler": _pipe(_prep_target_maxabs),
    "scikit-learn | Pipeline, string imputer + one-hot, passthrough, drop": _pipe(_prep_string_imputer_passthrough),
    "scikit-learn | Pipeline ending in RandomForestClassifier": _pipe(_prep_onehot_standard, _pipeline_forest),
    "scikit-learn | Pipeline ending in XGBClassifier": _pipe(_prep_onehot_standard, _pipeline_xgboost),
    "scikit-learn | Pipeline ending in LGBMClassifier": _pipe(_prep_onehot_standard, _pipeline_lightgbm),
    "scikit-learn | Pipeline ending in GradientBoostingClassifier": _pipe(_prep_ordinal_imputer_robust, _pipeline_gbm),
    "scikit-learn | Pipeline with PolynomialFeatures": _pipe(_prep_polynomial),
    "scikit-learn | VotingClassifier": _meta(_voting(), binary),
    "scikit-learn | VotingClassifier, weights, 3 classes": _meta(_voting(weights=[2, 1, 0.5]), multiclass),
    "scikit-learn | VotingClassifier, hard voting": _meta(_voting("hard"), binary),
    "scikit-learn | VotingRegressor": _meta(_voting_regressor(), regression),
    "scikit-learn | StackingClassifier": _meta(_stacking, binary),
    "scikit-learn | multi-output RandomForestClassifier": _multi_output_classifier(),
    "scikit-learn | VotingRegressor, weights": _meta(_voting_regressor([3, 1, 2]), regression),
    "scikit-learn | BaggingClassifier": _meta(_bagging, binary),
    "scikit-learn | BaggingRegressor": _meta(_bagging_regressor, regression),
    "scikit-learn | CalibratedClassifierCV": _meta(_calibrated(), binary),
    "scikit-learn | CalibratedClassifierCV isotonic, 3 classes": _meta(_calibrated(method="isotonic"), multiclass),
    "scikit-learn | CalibratedClassifierCV, ensemble=False": _meta(_calibrated(ensemble=False), multiclass),
    "scikit-learn | CalibratedClassifierCV of a HistGradientBoosting": _meta(
        _calibrated(estimator=_e("HistGradientBoostingClassifier")(max_iter=5), method="isotonic"), multiclass
    ),
    "scikit-learn | CalibratedClassifierCV of an LGBMClassifier": _meta(_calibrated_lgbm, binary),
    "scikit-learn | CalibratedClassifierCV of a GradientBoosting": _meta(
        _calibrated(estimator=_e("GradientBoostingClassifier")(n_estimators=3)), lambda: binary(nan=0.0)
    ),
    "scikit-learn | CalibratedClassifierCV isotonic of a GradientBoosting, 3 classes": _meta(
        _calibrated(estimator=_e("GradientBoostingClassifier")(n_estimators=4, max_depth=2), method="isotonic"),
        lambda: multiclass(nan=0.0),
    ),
    # CatBoost (symmetric trees)
    "CatBoost | CatBoostClassifier": _catboost(),
    "CatBoost | CatBoostClassifier nan_mode Max": _catboost(nan_mode="Max"),
    "CatBoost | CatBoostClassifier CrossEntropy": _catboost(loss_function="CrossEntropy"),
    "CatBoost | CatBoostClassifier MultiClassOneVsAll": _catboost(data=multiclass, loss_function="MultiClassOneVsAll"),
    "CatBoost | CatBoostClassifier MultiClass": _catboost(data=multiclass),
    "CatBoost | CatBoostClassifier one-hot categorical feature": _catboost_categorical(255),
    "CatBoost | CatBoostClassifier CTR categorical feature": _catboost_categorical(1),
    "CatBoost | CatBoostRegressor RMSE": _catboost("CatBoostRegressor", regression),
    "CatBoost | CatBoostRegressor MAE": _catboost("CatBoostRegressor", regression, loss_function="MAE"),
    "CatBoost | CatBoostRegressor Quantile": _catboost(
        "CatBoostRegressor", regression, loss_function="Quantile:alpha=0.3"
    ),
    "CatBoost | CatBoostRegressor Huber": _catboost("CatBoostRegressor", regression, loss_function="Huber:delta=20"),
    "CatBoost | CatBoostRegressor Expectile": _catboost(
        "CatBoostRegressor", regression, loss_function="Expectile:alpha=0.3"
    ),
    "CatBoost | CatBoostRegressor Poisson": _catboost("CatBoostRegressor", grades, loss_function="Poisson"),
    "CatBoost | CatBoostRegressor Tweedie": _catboost(
        "CatBoostRegressor", regression, loss_function="Tweedie:variance_power=1.5"
    ),
    "CatBoost | CatBoostRegressor RMSEWithUncertainty": _catboost(
        "CatBoostRegressor", regression, loss_function="RMSEWithUncertainty"
    ),
    "CatBoost | CatBoostRegressor Depthwise": _catboost("CatBoostRegressor", regression, grow_policy="Depthwise"),
    "CatBoost | CatBoostClassifier Lossguide": _catboost(grow_policy="Lossguide", nan_mode="Max"),
    "CatBoost | CatBoostRanker YetiRank": _catboost("CatBoostRanker", grades),
    "CatBoost | CatBoostRanker QueryRMSE": _catboost("CatBoostRanker", grades, loss_function="QueryRMSE"),
}


# ---- the docs table ----------------------------------------------------------------------------------------------


def table_rows() -> list[tuple[str, str, list[str], str]]:
    """(key, formats, status) rows of docs/models.md's zoo table: ``| library | variant | formats | status |``."""
    text = DOCS.read_text(encoding="utf-8")
    start, end = text.index("<!-- zoo-table -->"), text.index("<!-- /zoo-table -->")
    rows = []
    for line in text[start:end].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] in ("library", "") or set(cells[0]) <= {"-"}:
            continue
        library, variant, formats, status = cells
        rows.append(
            (f"{library} | {variant.replace('`', '')}", library, [f.strip() for f in formats.split(",")], status)
        )
    return rows


ROWS = table_rows()


def test_table_lists_every_case_once():
    keys = [r[0] for r in ROWS]
    assert len(keys) == len(set(keys)), "a row is repeated"
    assert set(keys) == set(CASES), (sorted(set(keys) - set(CASES)), sorted(set(CASES) - set(keys)))
    for _, _, _, status in ROWS:
        assert status == "compiles" or re.fullmatch(r'refused: ".+"', status), status


# ---- saving each case in each format, and the library's own answers --------------------------------------------


def _save(est, fmt: str, folder: Path) -> Path:
    if fmt == "pickle":
        path = folder / "model.pkl"
        path.write_bytes(pickle.dumps(est))
    elif fmt in ("json", "ubj"):
        path = folder / f"model.{fmt}"
        est.save_model(path)
    elif fmt == "txt":
        path = folder / "model.txt"
        est.booster_.save_model(path)
    elif fmt in ("cbm", "catboost-json"):
        path = folder / ("model.cbm" if fmt == "cbm" else "model.json")
        est.save_model(str(path), format="cbm" if fmt == "cbm" else "json")
    else:
        raise AssertionError(f"unknown save format {fmt}")
    return path


def _answers(est, X):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        pred = est.predict(X)
        proba = est.predict_proba(X) if hasattr(est, "predict_proba") and hasattr(est, "classes_") else None
    if type(est).__module__.startswith("catboost") and pred.ndim == 2 and pred.shape[1] == 1:
        pred = pred.reshape(-1)  # CatBoostClassifier answers a multiclass model's labels as a column; .brew as a row
    return pred, proba


#: What an outlier detector answers besides predict (IsolationForest), compared as predict is.
SCORES = ("score_samples", "decision_function")


def _assert_bit_exact(path: Path, est, X) -> None:
    pred, proba = _answers(est, X)
    rows = X.values.tolist() if hasattr(X, "iloc") else X.tolist()  # a DataFrame: the raw columns of an input stage
    for kernel in KERNELS:
        p = BrewPredictor(path, kernel=kernel)
        for method in SCORES if hasattr(est, "offset_") else ():
            want = getattr(est, method)(X)
            got = getattr(p, method)(X)
            assert got.dtype == want.dtype and np.array_equal(got, want), (kernel, method)
            assert getattr(p, method)(rows) == want.tolist(), (kernel, method)
        got = p.predict(X)
        assert got.dtype == pred.dtype and np.array_equal(got, pred), (kernel, got[:3], pred[:3])
        assert p.predict(rows) == pred.tolist(), kernel
        # single rows: through the checked walks, then (warm: the C kernel's compact and row forms, built now)
        # through the row form, several trees at a time
        for warm in (False, True):
            if warm:
                p.warm()
            for i in range(0, len(X), max(1, len(X) // 25)):
                assert p.predict(X[i : i + 1]).tolist() == pred[i : i + 1].tolist(), (kernel, warm, i)
        if proba is not None:
            got_p = p.predict_proba(X)
            assert got_p.dtype == proba.dtype and np.array_equal(got_p, proba), (kernel, np.abs(got_p - proba).max())
            assert p.predict_proba(rows) == proba.tolist(), kernel
    served = _served_rows(X)
    pred_s, proba_s = _answers(est, served)
    values = served.values.tolist() if hasattr(served, "iloc") else served.tolist()
    rows_s = [[None if isinstance(v, float) and v != v else v for v in row] for row in values]
    _assert_served(path, rows_s, _expected_answers(est, pred_s, proba_s, served))


def _assert_by_name(path: Path, est, H) -> None:
    """Rows of raw values (names as strings, unseen and missing ones included) answer as the library does on the
    same DataFrame (a ``category`` column gets the training categories, as the library's users pass it)."""
    import pandas as pd

    from coldbrew.engine.inputs import InvalidInputError

    categories_of = H.attrs.get("categories", {})
    if H.attrs.get("unseen") == "refused":  # each row with an unseen name is refused naming its column; the rest answer
        unseen = np.zeros(len(H), dtype=bool)
        for column, categories in categories_of.items():
            unseen |= H[column].notna().to_numpy() & ~H[column].isin(categories).to_numpy()
        assert unseen.any()
        p = BrewPredictor(path)
        for i in np.flatnonzero(unseen)[:5]:
            raw = [None if isinstance(v, float) and v != v else v for v in H.iloc[i].tolist()]
            with pytest.raises(InvalidInputError, match="is not a category the model knows"):
                p.predict([raw])
        H = H[~unseen].copy()
        H.attrs["categories"] = categories_of
    frame = H.copy()
    for column, categories in categories_of.items():
        known = H[column].where(H[column].isin(categories))  # an unseen name is no category: NaN, as pandas makes it
        frame[column] = pd.Categorical(known, categories=categories)
    pred, proba = _answers(est, frame)
    rows = [[None if isinstance(v, float) and v != v else v for v in row] for row in H.astype(object).values.tolist()]
    for kernel in KERNELS:
        p = BrewPredictor(path, kernel=kernel)
        got = p.predict(H)
        assert got.dtype == pred.dtype and np.array_equal(got, pred), kernel
        assert p.predict(rows) == pred.tolist(), kernel
        if proba is not None:
            got_p = p.predict_proba(H)
            assert got_p.dtype == proba.dtype and np.array_equal(got_p, proba), kernel
            assert p.predict_proba(rows) == proba.tolist(), kernel
    expected = _expected_answers(est, pred, proba, frame)
    pick = _served_rows(np.arange(len(rows))).tolist()
    _assert_served(path, [rows[i] for i in pick], [expected[i] for i in pick])


EVENT = Path(__file__).resolve().parents[1] / "events" / "http-v2-predict.json"


def _expected_answers(est, pred, proba, X) -> list[dict]:
    """What ``POST /predict`` must answer (docs/serving.md, "Responses, by task"), from the library's answers."""
    if hasattr(est, "offset_"):  # an outlier detector: predict, score_samples, decision_function
        score, decision = est.score_samples(X).tolist(), est.decision_function(X).tolist()
        return [
            {"prediction": int(y), "score": s, "decision": d}
            for y, s, d in zip(pred.tolist(), score, decision, strict=True)
        ]
    if "Ranker" in type(est).__name__:
        return [{"score": float(v)} for v in pred.tolist()]
    classes = getattr(est, "classes_", None)
    if classes is None or len(classes) == 0:  # a regressor (multi-output: a vector per row; CatBoost's: no classes)
        return [{"prediction": [float(x) for x in v] if isinstance(v, list) else float(v)} for v in pred.tolist()]
    labels = [str(c) for c in est.classes_.tolist()]
    if proba is None:  # a classifier without probabilities (hard voting)
        return [{"prediction": str(y)} for y in pred.tolist()]
    if len(labels) == 2:
        pairs = zip(pred.tolist(), proba.tolist(), strict=True)
        return [{"prediction": str(y), "probability": float(p[1])} for y, p in pairs]
    return [
        {"prediction": str(y), "probabilities": dict(zip(labels, map(float, p), strict=True))}
        for y, p in zip(pred.tolist(), proba.tolist(), strict=True)
    ]


def _assert_served(path: Path, rows: list[list], expected: list[dict]) -> None:
    """The same rows, sent by field name (the model's contract: its raw columns when it has an input stage), through
    the Lambda handler (in-process, an HTTP API event) and ``coldbrew serve`` (a real server): both answer what the
    library says, missing values sent as null."""
    import json

    from lambdatools import Context, body_of

    from coldbrew.app.contract import contract_of
    from coldbrew.runtimes.aws_lambda import init_from_env
    from coldbrew.runtimes.server_process import ServerProcess

    names = contract_of(BrewPredictor(path)).features
    body = [dict(zip(names, row, strict=True)) for row in rows]
    handler = init_from_env({"MODEL_SOURCE": "DISK", "MODEL_URI": str(path)})
    event = json.loads(EVENT.read_text())
    event["body"] = json.dumps(body)
    response = handler(event, Context())
    assert response["statusCode"] == 200, response
    assert body_of(response) == expected, "Lambda handler"
    with ServerProcess(str(path)) as server:
        assert server.request("POST", "/predict", body) == (200, expected), "coldbrew serve"


def _served_rows(X, n: int = 40):
    """Up to ``n`` rows spread over ``X`` (held-out rows and rows at thresholds alike)."""
    return X[:: max(1, len(X) // n)][:n]


_PARAMS = [pytest.param(key, fmt, status, id=f"{key}-{fmt}") for key, _, formats, status in ROWS for fmt in formats]


@pytest.mark.integration  # compiling a model file checks it against the library in a child process
@pytest.mark.parametrize("key,fmt,status", _PARAMS)
def test_zoo_case(tmp_path, key, fmt, status):
    est, H = CASES[key]()
    src = _save(est, fmt, tmp_path)
    dst = tmp_path / "out" / "model.brew"
    if status != "compiles":
        words = status.removeprefix("refused: ").strip('"')
        with pytest.raises(UnsupportedModelError) as info:
            compile_file(src, dst, progress=False)
        message = str(info.value)
        assert "\n" not in message and words in message, message
        assert not (tmp_path / "out").exists(), "a refusal left something in -o"
        return
    compile_file(src, dst, progress=False)
    if fmt == "catboost-json":  # the file's model as catboost reads it back (its JSON loader rounds a few leaves)
        reloaded = type(est)()
        reloaded.load_model(str(src), format="json")
        est = reloaded
    p = BrewPredictor(dst)
    if p.stage is not None and "string" in p.stage.types:  # raw columns with strings: requests as clients send them
        _assert_by_name(dst, est, H)
        return
    if p.header["version"] == 1:
        from coldbrew.convert.sklearn import probe_rows

        threshold_rows = probe_rows(est, n=200)
    else:  # float32 models: rows next to the float32 thresholds (and none a float32 cannot hold)
        dtype = np.float32 if p.header["input_dtype"] == "float32" else np.float64
        threshold_rows = probe_rows_from_arrays(p.header, p.file.arrays, n=200, dtype=dtype)
    X = np.vstack([H, threshold_rows])
    if not p.header.get("feature_missing"):  # scikit-learn's classic GradientBoosting refuses NaN, as .brew does
        X = np.nan_to_num(X)
    _assert_bit_exact(dst, est, X)


SERVED_WITHOUT_NUMPY = [
    "scikit-learn | RandomForestClassifier, NaN in training",
    "scikit-learn | BaggingClassifier",
    "scikit-learn | multi-output RandomForestRegressor",
    "XGBoost | count:poisson",
    "XGBoost | binary:hinge",
    "XGBoost | dart booster",
    "LightGBM | multiclassova",
    "LightGBM | poisson",
    "LightGBM | cross_entropy",
    "LightGBM | rf (random forest)",
    "CatBoost | CatBoostClassifier",
    "CatBoost | CatBoostClassifier MultiClassOneVsAll",
    "CatBoost | CatBoostClassifier MultiClass",
    "CatBoost | CatBoostRegressor Poisson",
    "CatBoost | CatBoostRanker YetiRank",
    "scikit-learn | VotingClassifier, weights, 3 classes",
    "scikit-learn | VotingRegressor, weights",
    "scikit-learn | CalibratedClassifierCV isotonic, 3 classes",
    "scikit-learn | CalibratedClassifierCV",
]


def test_new_kinds_serve_without_numpy_or_the_library(tmp_path):
    """With the C kernel, lists in: the answers equal the library's, and no numpy, scikit-learn, scipy, pandas,
    XGBoost or LightGBM is imported (a fresh interpreter, checked through sys.modules)."""
    import json
    import subprocess
    import sys

    if "c" not in KERNELS:
        pytest.skip("the C kernel is not built here")
    cases = []
    for i, key in enumerate(SERVED_WITHOUT_NUMPY):
        est, H = CASES[key]()
        H = H[:20]
        dst = tmp_path / f"m{i}.brew"
        compile_file(_save(est, "pickle", tmp_path), dst, progress=False)
        pred, proba = _answers(est, H)
        rows = [[None if v != v else v for v in row] for row in H.tolist()]
        cases.append((str(dst), rows, pred.tolist(), None if proba is None else proba.tolist()))
    code = (
        "import json, sys\n"
        "from coldbrew.engine.brew import BrewPredictor\n"
        "out = []\n"
        "for path, rows, _, proba in json.load(sys.stdin):\n"
        "    p = BrewPredictor(path, kernel='c')\n"
        "    out.append([p.predict(rows), p.predict_proba(rows) if proba is not None else None])\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('numpy', 'sklearn', 'scipy', 'pandas', 'xgboost', 'lightgbm', 'catboost'))\n"
        "print(json.dumps({'answers': out, 'imported': bad}))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], input=json.dumps(cases), capture_output=True, text=True, check=True, timeout=120
    )
    got = json.loads(run.stdout)
    assert got["imported"] == []
    for key, (_, _, pred, proba), (got_pred, got_proba) in zip(
        SERVED_WITHOUT_NUMPY, cases, got["answers"], strict=True
    ):
        assert got_pred == pred, key
        assert got_proba == proba, key
