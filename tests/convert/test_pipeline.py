"""scikit-learn Pipelines compile to one .brew file with an input stage (docs/format.md section 12), bit-exact with
``pipeline.predict`` / ``predict_proba`` on the same DataFrame, strings and unseen categories included."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
)
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    MaxAbsScaler,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    PolynomialFeatures,
    RobustScaler,
    StandardScaler,
    TargetEncoder,
)

from coldbrew.convert import compile_estimator
from coldbrew.convert.trees import UnsupportedModelError
from coldbrew.engine.brew import KERNELS, BrewPredictor
from coldbrew.engine.inputs import InvalidInputError
from coldbrew.format import BrewFile


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n = 500
    df = pd.DataFrame(
        {
            "a": rng.choice(list("abcdefg"), n, p=[0.3, 0.3, 0.2, 0.1, 0.05, 0.03, 0.02]),
            "b": rng.choice(["u", "v", None], n),
            "x": rng.normal(size=n) * 5 + 3,
            "y": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
        }
    )
    y = (df.a.isin(["a", "c"]) ^ (df.x > 3)).astype(int)
    return df, y


def _ohe(**kw):
    return OneHotEncoder(sparse_output=False, **kw)


PREP = {
    "onehot_standard": lambda: ColumnTransformer(
        [("cat", _ohe(handle_unknown="ignore"), ["a", "b"]), ("num", StandardScaler(), ["x", "y"])]
    ),
    "onehot_drop_infrequent_minmax": lambda: ColumnTransformer(
        [("cat", _ohe(handle_unknown="infrequent_if_exist", min_frequency=20, drop="first"), ["a", "b"])],
        remainder=MinMaxScaler(),
    ),
    "onehot_error": lambda: ColumnTransformer(
        [("cat", _ohe(handle_unknown="error", drop="if_binary"), ["a", "b"])], remainder=StandardScaler()
    ),
    "ordinal_imputer_robust": lambda: ColumnTransformer(
        [
            ("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), ["a", "b"]),
            ("num", make_pipeline(SimpleImputer(strategy="median"), RobustScaler()), ["x", "y"]),
        ]
    ),
    "ordinal_infrequent_maxabs_drop_passthrough": lambda: ColumnTransformer(
        [
            ("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan, min_frequency=20), ["a"]),
            ("num", MaxAbsScaler(), ["x"]),
            ("gone", "drop", ["b"]),
        ],
        remainder="passthrough",
    ),
    "target_mean_imputer": lambda: ColumnTransformer(
        [("cat", TargetEncoder(), ["a", "b"]), ("num", SimpleImputer(), ["y", "x"])]
    ),
    "string_imputers_onehot": lambda: ColumnTransformer(
        [
            ("mf", make_pipeline(SimpleImputer(strategy="most_frequent"), _ohe(handle_unknown="ignore")), ["a"]),
            (
                "const",
                make_pipeline(SimpleImputer(strategy="constant", fill_value="zz"), _ohe(handle_unknown="ignore")),
                ["b"],
            ),
            ("num", make_pipeline(SimpleImputer(strategy="constant", fill_value=-1.5), "passthrough"), ["x", "y"]),
        ]
    ),
}


def _models():
    import lightgbm
    import xgboost

    return {
        "hgb": lambda: HistGradientBoostingClassifier(max_iter=15, random_state=0),
        "forest": lambda: RandomForestClassifier(n_estimators=5, max_depth=6, random_state=0),
        "xgboost": lambda: xgboost.XGBClassifier(n_estimators=8, max_depth=3),
        "lightgbm": lambda: lightgbm.LGBMClassifier(n_estimators=8, verbose=-1),
    }


def _rows(df: pd.DataFrame) -> list[list]:
    return [[None if isinstance(v, float) and np.isnan(v) else v for v in row] for row in df.itertuples(index=False)]


def _pick(rng, pool: list, n: int) -> list:
    return [pool[i] for i in rng.integers(0, len(pool), n)]


def _request_frame(rng, n: int = 200) -> pd.DataFrame:
    """Raw rows as a client sends them: known, unseen and missing strings, numbers and missing numbers."""
    return pd.DataFrame(
        {
            "a": pd.Series(_pick(rng, [*"abcdefg", "zz-unseen", np.nan], n), dtype=object),
            "b": pd.Series(_pick(rng, ["u", "v", "w-unseen", np.nan], n), dtype=object),
            "x": rng.normal(size=n) * 6 + 3,
            "y": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
        }
    )


def _assert_exact(pipe, path, frame, *, classifier=True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_pred = pipe.predict(frame)
        ref_proba = pipe.predict_proba(frame) if classifier else None
    rows = _rows(frame)
    for kernel in KERNELS:
        p = BrewPredictor(path, kernel=kernel)
        got = p.predict(frame)
        assert got.dtype == ref_pred.dtype and np.array_equal(got, ref_pred)
        assert np.array_equal(np.asarray(p.predict(rows), dtype=ref_pred.dtype), ref_pred)
        if classifier:
            got_p = p.predict_proba(frame)
            assert got_p.dtype == ref_proba.dtype and np.array_equal(got_p, ref_proba)
            assert p.predict_proba(rows) == ref_proba.tolist()


@pytest.mark.parametrize("prep", list(PREP))
def test_each_step_kind_compiles_bit_exact(data, prep, tmp_path):
    df, y = data
    pipe = Pipeline([("prep", PREP[prep]()), ("model", HistGradientBoostingClassifier(max_iter=15))]).fit(df, y)
    compile_estimator(pipe, tmp_path / "p.brew")
    header = BrewFile(tmp_path / "p.brew").header
    assert header["version"] == 3 and [c["name"] for c in header["inputs"]["columns"]] == ["a", "b", "x", "y"]
    frame = _request_frame(np.random.default_rng(1))
    if prep == "onehot_error":  # unknown categories are refused, by scikit-learn and by coldbrew
        with pytest.raises(InvalidInputError, match="not a category the model knows"):
            BrewPredictor(tmp_path / "p.brew").predict(_rows(frame))
        frame = frame[frame.a.isin(list("abcdefg")) & frame.b.isin(["u", "v"])]
    _assert_exact(pipe, tmp_path / "p.brew", frame)


@pytest.mark.parametrize("model", ["hgb", "forest", "xgboost", "lightgbm"])
def test_each_final_model(data, model, tmp_path):
    df, y = data
    pipe = Pipeline([("prep", PREP["onehot_standard"]()), ("model", _models()[model]())]).fit(df, y)
    compile_estimator(pipe, tmp_path / "p.brew")
    _assert_exact(pipe, tmp_path / "p.brew", _request_frame(np.random.default_rng(2)))


def test_regressor_and_whole_frame_steps(data, tmp_path):
    df, _ = data
    num = df[["x", "y"]]
    pipe = make_pipeline(SimpleImputer(), StandardScaler(), HistGradientBoostingRegressor(max_iter=10)).fit(num, df.x)
    compile_estimator(pipe, tmp_path / "r.brew")
    _assert_exact(pipe, tmp_path / "r.brew", _request_frame(np.random.default_rng(3))[["x", "y"]], classifier=False)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: Pipeline(
                [
                    ("prep", ColumnTransformer([("poly", PolynomialFeatures(), ["x"])])),
                    ("model", HistGradientBoostingClassifier(max_iter=3)),
                ]
            ),
            r"^scikit-learn Pipeline step 'poly' \(PolynomialFeatures\) is not supported",
        ),
    ],
)
def test_refusals_name_the_step(data, make, message, tmp_path):
    df, y = data
    pipe = make().fit(df[["a", "x"]], y)
    with pytest.raises(UnsupportedModelError, match=message) as info:
        compile_estimator(pipe, tmp_path / "no.brew")
    assert "\n" not in str(info.value) and not (tmp_path / "no.brew").exists()


GRADIENT_BOOSTING = {
    "log_loss": lambda: GradientBoostingClassifier(n_estimators=6, max_depth=2, random_state=0),
    "exponential": lambda: GradientBoostingClassifier(n_estimators=6, loss="exponential", random_state=0),
    "3 classes": lambda: GradientBoostingClassifier(n_estimators=4, max_depth=2, random_state=0),
    "regressor": lambda: GradientBoostingRegressor(n_estimators=6, loss="huber", learning_rate=0.3, random_state=0),
}


@pytest.mark.parametrize("variant", list(GRADIENT_BOOSTING))
def test_gradient_boosting_final_step(data, variant, tmp_path):
    """Classic GradientBoosting after a ColumnTransformer: bit-exact where scikit-learn answers; a row that hands it a
    NaN feature (the unimputed column ``y``) is an input error, as scikit-learn raises on it."""
    df, y = data
    train = df[df.y.notna()]
    target = {"3 classes": (train.x > 2).astype(int) + train.a.isin(["a"]), "regressor": train.x * 2 + train.y}
    prep = ColumnTransformer(
        [("cat", _ohe(handle_unknown="ignore"), ["a", "b"]), ("imp", SimpleImputer(), ["x"])],
        remainder=StandardScaler(),
    )
    pipe = Pipeline([("prep", prep), ("model", GRADIENT_BOOSTING[variant]())]).fit(
        train, target.get(variant, y[df.y.notna()])
    )
    path = tmp_path / "gb.brew"
    compile_estimator(pipe, path)
    header = BrewFile(path).header
    assert header["version"] == 3 and header["kind"].startswith("gbm_") and header["feature_missing"] is None
    nullable = {c["name"]: c["nullable"] for c in header["inputs"]["columns"]}
    assert nullable == {"a": True, "b": True, "x": True, "y": False}  # only y reaches the model as NaN
    frame = _request_frame(np.random.default_rng(4))
    with_nan = frame.y.isna()
    assert with_nan.any()
    with pytest.raises(ValueError, match="NaN"):
        pipe.predict(frame[with_nan])
    for kernel in KERNELS:
        p = BrewPredictor(path, kernel=kernel)
        for row in _rows(frame[with_nan])[:5]:
            with pytest.raises(InvalidInputError, match="NaN"):
                p.predict([row])
        with pytest.raises(InvalidInputError, match="NaN"):
            p.predict(frame)
    _assert_exact(pipe, path, frame[~with_nan], classifier=variant != "regressor")


def test_sparse_into_xgboost_is_refused(data, tmp_path):
    import xgboost

    df, y = data
    prep = ColumnTransformer([("c", OneHotEncoder(), ["a", "b"])], sparse_threshold=1.0)
    pipe = Pipeline([("prep", prep), ("model", xgboost.XGBClassifier(n_estimators=3))]).fit(df, y)
    with pytest.raises(UnsupportedModelError, match="sparse matrix"):
        compile_estimator(pipe, tmp_path / "no.brew")
