"""CatBoost models (coldbrew.convert.catboost) against the real catboost library: bit for bit on both kernels.

What is checked here beyond the zoo (tests/convert/test_zoo.py): rows exactly at, and one float32 / float64 step
either side of, every border, with NaN under each nan_mode; raw scores (RawFormulaVal); the way catboost's own
JSON loader reads numbers; CatBoost's categorical hash against catboost's; a model with a string column answered
from lists without numpy or catboost; and the refusals, each one line.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes

from coldbrew.convert import compile_estimator, compile_file
from coldbrew.convert.catboost import rapidjson_double
from coldbrew.convert.trees import UnsupportedModelError
from coldbrew.engine.brew import KERNELS, BrewPredictor
from coldbrew.engine.cityhash import catboost_cat_hash, city_hash64

catboost = pytest.importorskip("catboost")

CITIES = np.array(
    ["Paris", "Lyon", "Nice", "Zürich", "東京", "", "a much longer city name, over sixty-four bytes long ..."]
)


def _border_rows(model, X: np.ndarray, seed: int = 0) -> np.ndarray:
    """Rows whose values sit on every border of the model, one float32 step and one float64 step either side."""
    doc = _json(model)
    rng = np.random.default_rng(seed)
    rows = np.repeat(X[:1], 600, axis=0).copy()
    for f in doc["features_info"]["float_features"]:
        b = np.asarray(f["borders"], dtype=np.float32)
        if not len(b):
            continue
        b64 = b.astype(np.float64)
        with np.errstate(over="ignore"):
            near = np.concatenate(
                [
                    b64,
                    np.nextafter(b, np.float32(-np.inf)).astype(np.float64),
                    np.nextafter(b, np.float32(np.inf)).astype(np.float64),
                    np.nextafter(b64, -np.inf),
                    np.nextafter(b64, np.inf),
                ]
            )
        near = near[np.isfinite(near)]  # one step past float32's largest border is an infinity: not an input
        rows[:, f["flat_feature_index"]] = rng.choice(near, size=len(rows))
    rows[rng.random(rows.shape) < 0.1] = np.nan
    return rows


def _json(model) -> dict:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.json"
        model.save_model(str(path), format="json")
        return json.loads(path.read_text())


def _compile_as(model, fmt: str, tmp_path):
    """Compile ``model`` as an object (``fmt == "object"``) or through a file saved in ``fmt``; returns the
    .brew path and the model to compare with (the file as catboost reads it back)."""
    dst = tmp_path / "m.brew"
    if fmt == "object":
        compile_estimator(model, dst)
        return dst, model
    src = tmp_path / f"m.{fmt}"
    model.save_model(str(src), format=fmt)
    compile_file(src, dst, progress=False)
    reloaded = type(model)()
    reloaded.load_model(str(src), format=fmt)
    return dst, reloaded


def _assert_exact(path, model, X, *, classifier: bool) -> None:
    raw = model.predict(X, prediction_type="RawFormulaVal")
    pred = np.asarray(model.predict(X))
    pred = pred.reshape(len(X)) if pred.ndim == 2 and pred.shape[1] == 1 else pred
    for kernel in KERNELS:
        p = BrewPredictor(path, kernel=kernel)
        got_raw = p.predict_raw(X)
        got_raw = got_raw.reshape(raw.shape)
        assert got_raw.dtype == raw.dtype and np.array_equal(got_raw, raw), kernel
        got = p.predict(X)
        assert got.dtype == pred.dtype and np.array_equal(got, pred), kernel
        rows = [[None if v != v else v for v in row] for row in X.tolist()]
        assert p.predict(rows) == pred.tolist(), kernel
        if classifier:
            proba = model.predict_proba(X)
            got_p = p.predict_proba(X)
            assert got_p.dtype == proba.dtype and np.array_equal(got_p, proba), kernel
            assert p.predict_proba(rows) == proba.tolist(), kernel


@pytest.mark.parametrize("grow_policy", ["SymmetricTree", "Depthwise", "Lossguide"])
@pytest.mark.parametrize("nan_mode", ["Min", "Max"])
@pytest.mark.parametrize("fmt", ["cbm", "json", "object"])
def test_borders_and_missing_values_bit_exact(tmp_path, nan_mode, fmt, grow_policy):
    X, y = load_breast_cancer(return_X_y=True)
    X = X.copy()
    X[np.random.default_rng(0).random(X.shape) < 0.1] = np.nan
    model = catboost.CatBoostClassifier(
        iterations=20,
        depth=5,
        nan_mode=nan_mode,
        grow_policy=grow_policy,
        verbose=0,
        random_seed=0,
        allow_writing_files=False,
    ).fit(X, y)
    dst, model = _compile_as(model, fmt, tmp_path)
    _assert_exact(dst, model, np.vstack([X[:100], _border_rows(model, X)]), classifier=True)


def test_regressor_bias_and_borders_bit_exact(tmp_path):
    X, y = load_diabetes(return_X_y=True)
    model = catboost.CatBoostRegressor(iterations=30, depth=6, verbose=0, allow_writing_files=False).fit(X, y)
    assert model.get_scale_and_bias()[1] != 0  # boost_from_average: the bias CatBoost adds after the trees
    compile_estimator(model, tmp_path / "m.brew")
    _assert_exact(tmp_path / "m.brew", model, np.vstack([X, _border_rows(model, X)]), classifier=False)


def test_json_numbers_read_as_catboost_reads_them(tmp_path):
    """CatBoost's JSON loader (rapidjson, normal precision) is not correctly rounded; we read numbers as it does."""
    X, y = load_diabetes(return_X_y=True)
    model = catboost.CatBoostRegressor(iterations=20, depth=4, verbose=0, allow_writing_files=False).fit(X, y)
    doc = _json(model)
    rng = np.random.default_rng(0)
    n = sum(len(t["leaf_values"]) for t in doc["oblivious_trees"])
    values = rng.normal(size=n) * 10.0 ** rng.integers(-320, 300, size=n)
    values[: n // 3] = rng.normal(size=n // 3)
    k = 0
    for t in doc["oblivious_trees"]:
        t["leaf_values"] = values[k : k + len(t["leaf_values"])].tolist()
        k += len(t["leaf_values"])
    path = tmp_path / "m.json"
    path.write_text(json.dumps(doc))
    loaded = catboost.CatBoostRegressor()
    loaded.load_model(str(path), format="json")
    ours = np.array([rapidjson_double(repr(v)) for v in values.tolist()])
    assert np.array_equal(ours, loaded.get_leaf_values())
    assert not np.array_equal(values, loaded.get_leaf_values())  # Python's float would differ


def test_city_hash_is_catboosts():
    """CityHash64 against catboost's group id hash (CityHash64 of the string) at every length class."""
    rng = np.random.default_rng(0)
    alphabet = list("abcdefghijklmnopqrstuvwxyz0123456789 é漢")
    strings = ["", "a", "ab", "abc", "abcd"] + ["".join(rng.choice(alphabet, size=n)) for n in range(5, 260)]
    strings = list(dict.fromkeys(strings))
    pool = catboost.Pool(np.zeros((len(strings), 1)), group_id=strings)
    assert [city_hash64(s.encode()) for s in strings] == np.asarray(pool.get_group_id_hash()).astype(np.uint64).tolist()


def test_categorical_hash_matches_the_models_one_hot_values():
    X, y, frame = _city_data()
    model = catboost.CatBoostClassifier(
        iterations=30, depth=4, one_hot_max_size=255, verbose=0, allow_writing_files=False
    ).fit(frame, y, cat_features=["city"])
    (cat,) = _json(model)["features_info"]["categorical_features"]
    stored = {v & 0xFFFFFFFF for v in cat["values"]}
    assert stored and stored <= {catboost_cat_hash(c) for c in CITIES}


def _city_data(n: int = 1500, seed: int = 0):
    X, y = load_breast_cancer(return_X_y=True)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(X), n)
    frame = pd.DataFrame(X[idx, :4], columns=["radius", "texture", "perimeter", "area"])
    frame["city"] = CITIES[rng.integers(0, len(CITIES), n)]
    frame.loc[rng.random(n) < 0.05, "texture"] = np.nan
    y = np.where(frame["city"].isin(["Paris", "東京"]), 1 - y[idx], y[idx])
    return X, y, frame


def _with_unseen(frame: pd.DataFrame, seed: int = 1) -> pd.DataFrame:
    rows = frame.copy()
    rng = np.random.default_rng(seed)
    unseen = rng.random(len(rows)) < 0.2
    rows.loc[unseen, "city"] = [f"unseen {i}" for i in range(int(unseen.sum()))]
    return rows


@pytest.mark.parametrize("fmt", ["cbm", "json", "object"])
def test_one_hot_categorical_bit_exact(tmp_path, fmt):
    _, y, frame = _city_data()
    model = catboost.CatBoostClassifier(
        iterations=30, depth=4, one_hot_max_size=255, verbose=0, allow_writing_files=False
    ).fit(frame, y, cat_features=["city"])
    dst, model = _compile_as(model, fmt, tmp_path)
    rows = _with_unseen(frame.iloc[:1000])
    pred, proba = model.predict(rows), model.predict_proba(rows)
    for kernel in KERNELS:
        p = BrewPredictor(dst, kernel=kernel)
        assert p.header["version"] == 3 and p.feature_names == tuple(frame.columns)
        assert np.array_equal(p.predict(rows), pred) and np.array_equal(p.predict_proba(rows), proba), kernel
        listed = [[None if v != v else v for v in r] for r in rows.astype(object).values.tolist()]
        assert p.predict(listed) == pred.tolist() and p.predict_proba(listed) == proba.tolist(), kernel


def test_one_hot_categorical_served_from_lists_without_numpy_or_catboost(tmp_path):
    _, y, frame = _city_data()
    target = frame["radius"] + np.where(frame["city"] == "Nice", 3.0, 0.0)
    model = catboost.CatBoostRegressor(
        iterations=30, depth=4, one_hot_max_size=255, verbose=0, allow_writing_files=False
    ).fit(frame, target, cat_features=["city"])
    if "c" not in KERNELS:
        pytest.skip("the C kernel is not built here")
    compile_estimator(model, tmp_path / "m.brew")
    rows = _with_unseen(frame.iloc[:1000])
    listed = [[None if v != v else v for v in r] for r in rows.astype(object).values.tolist()]
    code = (
        "import json, sys\n"
        "from coldbrew.engine.brew import BrewPredictor\n"
        "rows = json.load(sys.stdin)\n"
        "out = BrewPredictor(sys.argv[1], kernel='c').predict(rows)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'pandas', 'catboost', 'sklearn'))\n"
        "print(json.dumps({'out': out, 'imported': bad}))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "m.brew")],
        input=json.dumps(listed),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    got = json.loads(run.stdout)
    assert got["imported"] == []
    assert got["out"] == model.predict(rows).tolist()


def test_missing_category_is_an_input_error(tmp_path):
    from coldbrew.engine.inputs import InvalidInputError

    _, y, frame = _city_data()
    model = catboost.CatBoostClassifier(
        iterations=5, depth=3, one_hot_max_size=255, verbose=0, allow_writing_files=False
    ).fit(frame, y, cat_features=["city"])
    compile_estimator(model, tmp_path / "m.brew")
    row = frame.iloc[:1].astype(object).values.tolist()[0]
    row[-1] = None
    with pytest.raises(InvalidInputError, match="city"):
        BrewPredictor(tmp_path / "m.brew").predict([row])
    row[-1] = "\ud800"  # a lone surrogate (JSON allows "\ud800"): no UTF-8 bytes to hash
    with pytest.raises(InvalidInputError, match="city.*lone surrogate"):
        BrewPredictor(tmp_path / "m.brew").predict([row])


def _refusal(tmp_path, model, *fit, **fit_kw) -> str:
    model.fit(*fit, **fit_kw)
    with pytest.raises(UnsupportedModelError) as info:
        compile_estimator(model, tmp_path / "out" / "m.brew")
    assert not (tmp_path / "out").exists()
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("cls", ["CatBoostClassifier", "CatBoostRegressor"])
@pytest.mark.parametrize("fmt", ["cbm", "json", "object"])
def test_ctr_categorical_bit_exact(tmp_path, cls, fmt):
    """CTR features (Borders for a classifier, Counter and Borders for a regressor) on two string columns: the
    learn-time counts of every category the model saw, and the prior for any other, through float32 as CatBoost."""
    _, y, frame = _city_data()
    frame["size"] = np.array(["S", "M", "L", "XL"])[np.arange(len(frame)) % 4]
    target = y if cls == "CatBoostClassifier" else frame["radius"] + np.where(frame["city"] == "Nice", 3.0, 0.0)
    model = getattr(catboost, cls)(
        iterations=30, depth=5, one_hot_max_size=1, max_ctr_complexity=1, verbose=0, allow_writing_files=False
    ).fit(frame, target, cat_features=["city", "size"])
    assert _json(model).get("ctr_data")
    dst, model = _compile_as(model, fmt, tmp_path)
    rows = _with_unseen(frame.iloc[:1000])
    rows.loc[rows.index[::7], "size"] = "XXL"
    listed = [[None if v != v else v for v in r] for r in rows.astype(object).values.tolist()]
    pred = model.predict(rows)
    for kernel in KERNELS:
        p = BrewPredictor(dst, kernel=kernel)
        assert np.array_equal(p.predict(rows), pred) and p.predict(listed) == pred.tolist(), kernel
        if cls == "CatBoostClassifier":
            proba = model.predict_proba(rows)
            assert np.array_equal(p.predict_proba(rows), proba) and p.predict_proba(listed) == proba.tolist(), kernel


def test_ctr_on_a_combination_is_refused(tmp_path):
    """A CTR on several columns (max_ctr_complexity > 1) hashes them together: refused naming the columns."""
    from coldbrew.convert.catboost import model_to_arrays

    _, y, frame = _city_data()
    frame["size"] = np.array(["S", "M", "L", "XL"])[np.arange(len(frame)) % 4]
    model = catboost.CatBoostClassifier(
        iterations=5, depth=3, one_hot_max_size=1, max_ctr_complexity=1, verbose=0, allow_writing_files=False
    ).fit(frame, y, cat_features=["city", "size"])
    doc = _json(model)
    ctr = next(c for c in doc["features_info"]["ctrs"] if c["elements"])
    ctr["elements"] = [{"cat_feature_index": 0, "combination_element": "cat_feature_value"}] * 1 + [
        {"cat_feature_index": 1, "combination_element": "cat_feature_value"}
    ]
    used = {
        s["split_index"] for t in doc["oblivious_trees"] for s in t["splits"] or [] if s["split_type"] == "OnlineCtr"
    }
    assert used
    with pytest.raises(UnsupportedModelError) as info:
        for c in doc["features_info"]["ctrs"]:  # whichever CTR a split uses: make them all combinations
            c["elements"] = ctr["elements"]
        model_to_arrays(doc)
    assert "CTR features (Borders on a combination: 'city', 'size')" in str(info.value)


def test_too_large_to_expand_is_refused(tmp_path, monkeypatch):
    import coldbrew.convert.catboost as converter

    X, y = load_diabetes(return_X_y=True)
    model = catboost.CatBoostRegressor(iterations=4, depth=6, verbose=0, allow_writing_files=False).fit(X, y)
    monkeypatch.setattr(converter, "MAX_EXPANDED_NODES", 4 * 127 - 1)
    with pytest.raises(UnsupportedModelError, match="too large to expand: its symmetric trees make 508 nodes"):
        compile_estimator(model, tmp_path / "m.brew")


def test_refusals_name_what_is_unsupported(tmp_path):
    X, y = load_diabetes(return_X_y=True)
    params = {"iterations": 3, "depth": 2, "verbose": 0, "allow_writing_files": False}
    scaled = catboost.CatBoostRegressor(**params).fit(X, y)
    scaled.set_scale_and_bias(2.0, [0.0])
    with pytest.raises(UnsupportedModelError, match="scale 2"):
        compile_estimator(scaled, tmp_path / "m.brew")
    threshold = catboost.CatBoostClassifier(**params).fit(X, (y > 150).astype(int))
    threshold.set_probability_threshold(0.9)
    with pytest.raises(UnsupportedModelError, match="probability_threshold 0.9"):
        compile_estimator(threshold, tmp_path / "m.brew")
    two = _refusal(tmp_path, catboost.CatBoostRegressor(loss_function="RMSEWithUncertainty", **params), X, y)
    assert "CatBoost objective RMSEWithUncertainty" in two and "two columns" in two
    text = pd.DataFrame({"a": X[:, 0], "t": np.where(y > 150, "good day", "bad night")})
    msg = _refusal(tmp_path, catboost.CatBoostClassifier(**params), text, (y > 150).astype(int), text_features=["t"])
    assert "CatBoost model uses text features" in msg


@pytest.mark.integration  # spawns `coldbrew serve`
def test_one_hot_categorical_served_by_coldbrew_serve(tmp_path):
    """The acceptance case: a CatBoost model with string columns (one split one-hot, one through CTRs) behind
    `coldbrew serve`; 1,000 rows sent by name with strings (a fifth of them categories the model never saw) answer
    exactly what catboost answers."""
    import os
    import signal
    import urllib.request

    from coldbrew.runtimes.local import READY_PREFIX

    _, y, frame = _city_data(n=3000)
    plans = np.array([f"plan {i}" for i in range(12)])
    frame["plan"] = plans[np.random.default_rng(5).integers(0, len(plans), len(frame))]
    y = np.where(frame["plan"].isin(plans[:4]), 1 - y, y)
    model = catboost.CatBoostClassifier(
        iterations=40, depth=5, one_hot_max_size=8, max_ctr_complexity=1, verbose=0, allow_writing_files=False
    ).fit(frame, y, cat_features=["city", "plan"])
    doc = _json(model)
    kinds = {s["split_type"] for t in doc["oblivious_trees"] for s in t["splits"] or []}
    assert {"OneHotFeature", "OnlineCtr"} <= kinds, kinds
    model.save_model(str(tmp_path / "model.cbm"))
    compile_file(tmp_path / "model.cbm", tmp_path / "model.brew", progress=False)
    rows = _with_unseen(frame.iloc[1000:2000])
    rows.loc[rows.index[::6], "plan"] = "a plan never seen"
    records = [{k: (None if v != v else v) for k, v in r.items()} for r in rows.astype(object).to_dict("records")]
    expected = [
        {"prediction": str(label), "probability": float(p)}
        for label, p in zip(model.predict(rows).tolist(), model.predict_proba(rows)[:, 1].tolist(), strict=True)
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "coldbrew", "serve", str(tmp_path / "model.brew"), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=dict(os.environ),
    )
    try:
        url = None
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(READY_PREFIX):
                url = line[len(READY_PREFIX) :].strip()
                break
        assert url, f"server exited with {proc.wait()} before listening"
        got = []
        for start in range(0, len(records), 100):
            body = json.dumps(records[start : start + 100]).encode()
            request = urllib.request.Request(url + "predict", data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as response:
                got.extend(json.loads(response.read()))
        assert got == expected
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()


def test_one_hot_categorical_through_the_lambda_handler(tmp_path, capsys):
    """The same model behind the Lambda handler (the real apig-wsgi path): rows by name with strings, unseen
    categories and missing numbers answer what catboost answers; a missing category is a 400, not a 500."""
    from pathlib import Path

    from lambdatools import Context, body_of

    from coldbrew.runtimes.aws_lambda import init_from_env

    _, y, frame = _city_data()
    model = catboost.CatBoostClassifier(
        iterations=20, depth=4, one_hot_max_size=255, verbose=0, allow_writing_files=False
    ).fit(frame, y, cat_features=["city"])
    compile_estimator(model, tmp_path / "m.brew")
    rows = _with_unseen(frame.iloc[:200])
    records = [{k: (None if v != v else v) for k, v in r.items()} for r in rows.astype(object).to_dict("records")]
    assert any(v is None for r in records for v in r.values())
    handler = init_from_env({"MODEL_SOURCE": "DISK", "MODEL_URI": str(tmp_path / "m.brew")})
    event = json.loads((Path(__file__).parents[1] / "events" / "http-v2-predict.json").read_text())
    event["body"] = json.dumps(records)
    response = handler(event, Context())
    assert response["statusCode"] == 200, response
    expected = [
        {"prediction": str(label), "probability": float(p)}
        for label, p in zip(model.predict(rows).tolist(), model.predict_proba(rows)[:, 1].tolist(), strict=True)
    ]
    assert body_of(response) == expected
    event["body"] = json.dumps([{**records[0], "city": None}])
    response = handler(event, Context())
    assert response["statusCode"] == 400 and "city" in json.dumps(body_of(response)), response


@pytest.mark.parametrize("loss", ["MultiClass", "Poisson", "Tweedie:variance_power=1.5"])
def test_fast_exp_objectives_bit_exact_at_borders_with_nan(tmp_path, loss):
    """CatBoost's own exp (softmax_cb / exp_cb) on rows at every border and with NaN, both kernels, lists too."""
    X, y = load_diabetes(return_X_y=True)
    X = X.copy()
    X[np.random.default_rng(0).random(X.shape) < 0.1] = np.nan
    params = {"iterations": 40, "depth": 5, "verbose": 0, "random_seed": 0, "allow_writing_files": False}
    if loss == "MultiClass":
        model = catboost.CatBoostClassifier(loss_function=loss, **params).fit(X, np.digitize(y, [90, 150, 220]))
    else:
        model = catboost.CatBoostRegressor(loss_function=loss, **params).fit(X, y)
    compile_estimator(model, tmp_path / "m.brew")
    assert BrewPredictor(tmp_path / "m.brew").header["version"] == 3
    X = np.vstack([X[:200], _border_rows(model, X)])
    _assert_exact(tmp_path / "m.brew", model, X, classifier=loss == "MultiClass")


def test_fast_exp_model_that_can_reach_the_unstable_region_is_refused(tmp_path):
    X, y = load_diabetes(return_X_y=True)
    params = {"iterations": 3, "depth": 2, "verbose": 0, "allow_writing_files": False}
    model = catboost.CatBoostRegressor(loss_function="Poisson", **params).fit(X, y)
    leaves = model.get_leaf_values().copy()
    leaves[0] = -800.0  # a raw score of about -800: catboost answers 2.2e-308 or 0.0 by position
    model.set_leaf_values(leaves)
    with pytest.raises(UnsupportedModelError, match="raw score can reach") as info:
        compile_estimator(model, tmp_path / "m.brew")
    assert "\n" not in str(info.value) and not (tmp_path / "m.brew").exists()
