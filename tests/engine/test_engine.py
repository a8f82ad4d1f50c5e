"""Engine: .brew predictions bitwise identical to scikit-learn's, for every supported estimator and both kernels."""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coldbrew.convert.sklearn import to_arrays
from coldbrew.engine import InvalidInputError, load_predictor
from coldbrew.engine.brew import KERNELS, BrewPredictor
from coldbrew.errors import ModelFormatError
from coldbrew.format import write_brew

# sklearn's own finiteness check sums the rows; rows of +-3.4e38 overflow that sum (harmlessly).
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in reduce:RuntimeWarning")

KERNEL_PARAMS = [
    pytest.param("c", marks=pytest.mark.skipif("c" not in KERNELS, reason="C kernel not built")),
    "numpy",
]


@pytest.fixture(params=KERNEL_PARAMS)
def kernel(request):
    return request.param


def _data(n_classes: int, seed: int = 0, n: int = 300):
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.integers(0, 60, n), rng.normal(0, 1e5, n), rng.uniform(-3, 3, n), rng.integers(0, 3, n)])
    score = X[:, 0] / 30 + X[:, 2] + rng.normal(0, 0.5, n)
    y = np.digitize(score, np.quantile(score, np.linspace(0, 1, n_classes + 1)[1:-1])) if n_classes else score
    return X.astype(np.float64), y


def _estimators():
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        GradientBoostingClassifier,
        GradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    return {
        "gbc-binary": (GradientBoostingClassifier(n_estimators=15, max_depth=3, learning_rate=0.3, random_state=0), 2),
        "gbc-binary-lr1": (GradientBoostingClassifier(n_estimators=10, learning_rate=1.0, random_state=0), 2),
        "gbc-exponential": (GradientBoostingClassifier(n_estimators=10, loss="exponential", random_state=0), 2),
        "gbc-zero-init": (
            GradientBoostingClassifier(n_estimators=10, init="zero", learning_rate=0.7, random_state=0),
            2,
        ),
        "gbc-multiclass": (
            GradientBoostingClassifier(n_estimators=8, max_depth=2, learning_rate=0.37, random_state=0),
            3,
        ),
        "gbc-string-labels": (GradientBoostingClassifier(n_estimators=5, random_state=0), "str"),
        "gbr": (GradientBoostingRegressor(n_estimators=15, learning_rate=0.13, random_state=0), 0),
        "gbr-huber": (GradientBoostingRegressor(n_estimators=10, loss="huber", random_state=0), 0),
        "gbr-best-first": (GradientBoostingRegressor(n_estimators=5, max_leaf_nodes=6, random_state=0), 0),
        "rfc": (RandomForestClassifier(n_estimators=12, max_depth=6, random_state=0), 3),
        "rfr": (RandomForestRegressor(n_estimators=12, max_depth=6, random_state=0), 0),
        "etc": (ExtraTreesClassifier(n_estimators=10, max_depth=6, random_state=0), 2),
        "etr": (ExtraTreesRegressor(n_estimators=10, max_depth=6, random_state=0), 0),
        "dtc": (DecisionTreeClassifier(max_depth=5, random_state=0), 4),
        "dtr": (DecisionTreeRegressor(max_depth=5, random_state=0), 0),
        "dtr-best-first": (DecisionTreeRegressor(max_leaf_nodes=9, random_state=0), 0),
    }


def _fit(est, n_classes):
    X, y = _data(3 if n_classes == "str" else n_classes)
    if n_classes == "str":
        y = np.array(["low", "mid", "high"])[y]
        y = np.where(y == "mid", "low", y)
    return est.fit(X, y)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """name -> (fitted estimator, .brew path)."""
    out = {}
    root = tmp_path_factory.mktemp("engine")
    for name, (est, n_classes) in _estimators().items():
        est = _fit(est, n_classes)
        path = root / f"{name}.brew"
        header, arrays = to_arrays(est)
        write_brew(path, header, arrays)
        out[name] = (est, path)
    return out


def adversarial_rows(est, n_random: int = 200) -> np.ndarray:
    """Values on, just below and just above every threshold (float32 and float64 neighbours), extremes, ints."""
    trees = [t.tree_ for t in np.asarray(getattr(est, "estimators_", [est]), dtype=object).ravel()]
    rng = np.random.default_rng(1)
    n_features = est.n_features_in_
    per_feature = [[0.0, -0.0, -1.0, 1e30, -1e30, 3.4e38, -3.4e38, 1e-45, 12345678.0] for _ in range(n_features)]
    for tr in trees:
        for f, t in zip(tr.feature[tr.children_left != -1], tr.threshold[tr.children_left != -1], strict=True):
            t32 = np.float32(t)
            per_feature[f] += [
                t,
                float(t32),
                float(np.nextafter(t32, np.float32(-np.inf))),
                float(np.nextafter(t32, np.float32(np.inf))),
                float(np.nextafter(t, -np.inf)),
                float(np.nextafter(t, np.inf)),
                float(np.floor(t)),
                float(np.ceil(t)),
            ]
    X = np.empty((n_random + max(len(v) for v in per_feature), n_features))
    for f, values in enumerate(per_feature):
        values = np.asarray(values)
        X[:, f] = np.concatenate([rng.choice(values, n_random), np.resize(values, X.shape[0] - n_random)])
    return X


def _sk(est, method, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(est, method)(X)


@pytest.mark.parametrize("name", list(_estimators()))
def test_bit_exact_every_estimator(models, kernel, name):
    est, path = models[name]
    p = BrewPredictor(path, kernel=kernel)
    X = np.vstack([_data(2, seed=5)[0], adversarial_rows(est)])
    if hasattr(est, "predict_proba"):
        assert np.array_equal(p.predict_proba(X), _sk(est, "predict_proba", X))
        assert p.predict_proba(X.tolist()) == _sk(est, "predict_proba", X).tolist()  # lists in, lists out
    assert np.array_equal(p.predict(X), _sk(est, "predict", X))
    assert p.predict(X.tolist()) == _sk(est, "predict", X).tolist()
    # integers in, same answers as the equal floats
    Xi = np.rint(np.clip(X, -1e9, 1e9)).astype(np.int64)
    assert np.array_equal(p.predict(Xi), _sk(est, "predict", Xi))
    assert p.feature_names == ("x0", "x1", "x2", "x3")


def test_adult_test_split(tiny_model, tiny_brew, kernel):
    from coldbrew.experiment.dataset import study_split

    _, X_test, _, _ = study_split()
    est = pickle.loads(tiny_model.read_bytes())
    p = BrewPredictor(tiny_brew, kernel=kernel)
    X = X_test.to_numpy(dtype=np.float64)
    assert np.array_equal(p.predict_proba(X), est.predict_proba(X_test))
    assert np.array_equal(p.predict(X), est.predict(X_test))
    assert p.predict_proba(X.tolist()) == est.predict_proba(X_test).tolist()
    assert p.predict(X.tolist()) == est.predict(X_test).tolist()
    adv = adversarial_rows(est)
    assert np.array_equal(p.predict_proba(adv), _sk(est, "predict_proba", adv))
    assert p.feature_names == tuple(est.feature_names_in_)
    assert p.classes == ("<=$50K", ">$50K")


# function_scoped_fixture: tmp_path is shared by every example; each writes its model (atomically, by rename) before
# reading it, so a file an earlier example left is never what an example checks.
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000),
    kind=st.sampled_from(["gbc", "gbc3", "gbr", "rfc", "rfr", "dtc"]),
    n_estimators=st.integers(1, 6),
    depth=st.integers(1, 5),
    lr=st.floats(0.01, 2.0),
    rows=st.lists(st.lists(st.floats(-1e6, 1e6, width=64), min_size=4, max_size=4), min_size=1, max_size=20),
)
def test_property_random_models(tmp_path, seed, kind, n_estimators, depth, lr, rows):
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        GradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.tree import DecisionTreeClassifier

    make = {
        "gbc": lambda: GradientBoostingClassifier(
            n_estimators=n_estimators, max_depth=depth, learning_rate=lr, random_state=seed
        ),
        "gbc3": lambda: GradientBoostingClassifier(
            n_estimators=n_estimators, max_depth=depth, learning_rate=lr, random_state=seed
        ),
        "gbr": lambda: GradientBoostingRegressor(
            n_estimators=n_estimators, max_depth=depth, learning_rate=lr, random_state=seed
        ),
        "rfc": lambda: RandomForestClassifier(n_estimators=n_estimators, max_depth=depth, random_state=seed),
        "rfr": lambda: RandomForestRegressor(n_estimators=n_estimators, max_depth=depth, random_state=seed),
        "dtc": lambda: DecisionTreeClassifier(max_depth=depth, random_state=seed),
    }
    X_fit, y = _data({"gbc3": 3, "gbr": 0, "rfr": 0}.get(kind, 2), seed=seed, n=120)
    est = make[kind]().fit(X_fit, y)
    path = tmp_path / f"{kind}-{seed}.brew"
    write_brew(path, *to_arrays(est))
    X = np.vstack([np.asarray(rows), adversarial_rows(est, n_random=10)])
    for k in KERNELS:
        p = BrewPredictor(path, kernel=k)
        if hasattr(est, "predict_proba"):
            assert np.array_equal(p.predict_proba(X), est.predict_proba(X))
            assert p.predict_proba(X.tolist()) == est.predict_proba(X).tolist()
        assert np.array_equal(p.predict(X), est.predict(X))
        assert p.predict(X.tolist()) == est.predict(X).tolist()


@pytest.mark.parametrize(
    "value, message",
    [(np.nan, "is NaN"), (np.inf, "infinite"), (-np.inf, "infinite"), (1e39, "too large for float32")],
)
def test_bad_values_refused(models, kernel, value, message):
    _, path = models["gbc-binary"]
    X = np.zeros((3, 4))
    X[2, 1] = value
    with pytest.raises(InvalidInputError, match=f"row 2, x1: value .* {message}"):
        BrewPredictor(path, kernel=kernel).predict_proba(X)


@pytest.mark.parametrize("X", [np.zeros(4), np.zeros((2, 3)), [["a", "b", "c", "d"]]])
def test_bad_shapes_refused(models, X):
    with pytest.raises(InvalidInputError):
        BrewPredictor(models["gbc-binary"][1]).predict_proba(X)


def test_regressor_has_no_proba(models):
    with pytest.raises(Exception, match="use predict"):
        BrewPredictor(models["gbr"][1]).predict_proba(np.zeros((1, 4)))


@pytest.mark.parametrize("field, value, message", [("right", 999, "child index"), ("feature", 7, "feature index")])
def test_corrupt_nodes_raise_not_crash(models, tmp_path, kernel, field, value, message):
    est, _ = models["gbc-binary"]
    header, arrays = to_arrays(est)
    arrays["nodes"][field][0] = value
    path = tmp_path / "bad.brew"
    write_brew(path, header, arrays)
    with pytest.raises(ModelFormatError, match=message):
        BrewPredictor(path, kernel=kernel).predict_proba(np.zeros((2, 4)))


def test_detects_by_magic_not_extension(tiny_model, tiny_brew, tmp_path):
    disguised = tmp_path / "model.pkl"
    shutil.copy(tiny_brew, disguised)
    assert load_predictor(disguised).format == "brew"
    pickled_as_brew = tmp_path / "model.brew"
    shutil.copy(tiny_model, pickled_as_brew)
    with pytest.raises(ModelFormatError, match="named .brew but not a .brew file"):
        load_predictor(pickled_as_brew, allow_pickle=True)  # never falls through to unpickling


def test_pickle_predictor_matches_and_is_quiet(tiny_model, tiny_brew):
    pk = load_predictor(tiny_model, allow_pickle=True)
    br = load_predictor(tiny_brew, verify=True, eager=True)
    X = np.array([[34, 261799, 11, 0, 0, 56], [50, 100000, 13, 15024, 0, 40]], dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        proba = pk.predict_proba(X)
    assert np.array_equal(proba, br.predict_proba(X))
    assert pk.feature_names == br.feature_names and pk.classes == br.classes
    for p in (pk, br):
        info = p.info()
        assert info["n_trees"] == 20 and info["n_nodes"] > 0 and info["size_bytes"] > 0
    assert br.info()["checksum_verified"] is True


def test_not_a_model(tmp_path):
    path = tmp_path / "junk.bin"
    path.write_bytes(b"hello world")
    with pytest.raises(ModelFormatError, match="not a .brew file"):
        load_predictor(path)
    with pytest.raises(ModelFormatError, match="cannot open"):
        load_predictor(tmp_path / "missing.brew")


@pytest.mark.integration
def test_serving_brew_imports_no_sklearn(tiny_brew):
    code = (
        "import sys, numpy as np\n"
        "from coldbrew.engine import load_predictor\n"
        f"p = load_predictor({str(tiny_brew)!r})\n"
        "p.predict_proba(np.array([[34, 261799, 11, 0, 0, 56]], dtype=float))\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'scipy', 'pandas'))\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_numpy_expit_saturates_like_scipy_instead_of_overflowing():
    from scipy.special import expit as scipy_expit

    from coldbrew.engine.numpy_kernel import expit

    x = np.array([-1000.0, -745.2, -709.79, -709.78, -36.5, -1e-300, 0.0, 1e-300, 36.5, 709.8, 1000.0])
    got = x.copy()
    expit(got)
    assert np.array_equal(got, scipy_expit(x)) and got.dtype == np.float64


@pytest.mark.skipif("c" not in KERNELS, reason="the C kernel is not built")
def test_pair_proba_is_one_minus_p_then_p_rounded_once_and_refuses_mismatched_buffers():
    from array import array

    from coldbrew.engine import _kernel

    rng = np.random.default_rng(7)
    p = np.concatenate([rng.random(997), [0.0, 1.0, 1e-30, 1e-8, 0.5, 1 - 2**-24, 2**-25 + 2**-50]])
    for f32, code, dtype in ((True, "f", np.float32), (False, "d", np.float64)):
        p1 = array(code, p.astype(dtype).tobytes())
        out = array(code, bytes(2 * len(p1) * p1.itemsize))
        _kernel.pair_proba(p1, out, f32)
        got = np.frombuffer(out, dtype=dtype).reshape(-1, 2)
        exact = p.astype(dtype)
        # Python's 1.0 - p on a float: worked in float64, then (float32) rounded once on the way into the array
        assert np.array_equal(got[:, 0], (1.0 - exact.astype(np.float64)).astype(dtype))
        assert np.array_equal(got[:, 1], exact)
    with pytest.raises(ValueError, match="twice"):
        _kernel.pair_proba(array("d", [0.5]), array("d", [0.0]), False)
    with pytest.raises(ValueError, match="twice"):
        _kernel.pair_proba(array("f", [0.5]), array("d", [0.0, 0.0]), True)
