"""Serving a .brew model imports no numpy (issue #12, section 1).

Checked on the real things, in fresh processes: the Lambda entry point ``coldbrew.aws.handler`` (init + first
invocation with an API Gateway event built in the child), the Python API (``load_predictor`` + predictions on
lists) and ``coldbrew serve`` (the real waitress server: after the first ``/predict`` no process of the server has
numpy's shared objects mapped), for a format version 1 model (the study's GradientBoosting) and version 2 models
(HistGradientBoosting with missing values, XGBoost). The answers are compared with the library's own.
``coldbrew serve`` is a child process whose ``sys.modules`` a test cannot read, so there the interpreter's
import log (``PYTHONPROFILEIMPORTTIME``) and the process's memory maps stand in for it.

Also unit tests of the standard-library pieces: class labels rebuilt without numpy, list rows refused with the
messages numpy's path gives.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coldbrew.engine import InvalidInputError
from coldbrew.engine.brew import KERNELS, BrewPredictor
from coldbrew.format import spec

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("numpy", "sklearn", "scipy", "pandas", "xgboost", "lightgbm", "boto3")


def _child_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODEL_", "COLDBREW_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def models(tiny_model, tiny_brew, tmp_path_factory) -> dict:
    """name -> (.brew path, fitted estimator, rows as dicts of the model's features)."""
    import xgboost
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import HistGradientBoostingClassifier

    from coldbrew.convert import compile_file
    from coldbrew.experiment.dataset import study_split

    tmp = tmp_path_factory.mktemp("numpy-free")
    _, X_test, _, _ = study_split()
    study = pickle.loads(tiny_model.read_bytes())
    out = {"v1-study-gbm": (tiny_brew, study, X_test.iloc[:3].to_dict(orient="records"))}

    X, y = load_breast_cancer(return_X_y=True)
    X = X.copy()
    X[np.random.default_rng(0).random(X.shape) < 0.1] = np.nan
    names = [f"x{i}" for i in range(X.shape[1])]  # the names a model fitted on an array takes
    rows = [{n: (None if np.isnan(v) else float(v)) for n, v in zip(names, r, strict=True)} for r in X[:3]]
    hgb = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(X, y)
    (tmp / "hgb.pkl").write_bytes(pickle.dumps(hgb))
    compile_file(tmp / "hgb.pkl", tmp / "hgb.brew")
    out["v2-hgb-missing"] = (tmp / "hgb.brew", hgb, rows)
    xgb = xgboost.XGBClassifier(n_estimators=5, max_depth=3).fit(X, y)
    xgb.save_model(tmp / "xgb.json")
    compile_file(tmp / "xgb.json", tmp / "xgb.brew")
    out["v2-xgboost"] = (tmp / "xgb.brew", xgb, rows)
    return out


def _expected(est, rows: list[dict]) -> list[float]:
    X = np.array([[np.nan if v is None else v for v in r.values()] for r in rows], dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.predict_proba(X)[:, 1].tolist()


LAMBDA_CHILD = r"""
import json, sys
import coldbrew.aws
rows = json.loads(sys.argv[1])
event = {"version": "2.0", "routeKey": "POST /predict", "rawPath": "/predict", "rawQueryString": "",
         "headers": {"content-type": "application/json"}, "body": json.dumps(rows), "isBase64Encoded": False,
         "requestContext": {"http": {"method": "POST", "path": "/predict", "protocol": "HTTP/1.1",
                                     "sourceIp": "127.0.0.1", "userAgent": "test"}, "stage": "$default"}}
response = coldbrew.aws.handler(event, None)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in sys.argv[2].split(","))
sys.stderr.write(json.dumps({"response": response, "heavy": heavy}) + "\n")
"""


@pytest.mark.integration
@pytest.mark.parametrize("name", ["v1-study-gbm", "v2-hgb-missing", "v2-xgboost"])
def test_lambda_handler_init_and_first_invocation_import_no_numpy(models, name):
    path, est, rows = models[name]
    proc = subprocess.run(
        [sys.executable, "-c", LAMBDA_CHILD, json.dumps(rows), ",".join(HEAVY)],
        env=_child_env(MODEL_SOURCE="DISK", MODEL_URI=str(path)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    assert report["heavy"] == [], f"the Lambda path imported {report['heavy']}"
    assert "numpy" not in report["heavy"]
    response = report["response"]
    assert response["statusCode"] == 200, response
    assert [r["probability"] for r in json.loads(response["body"])] == _expected(est, rows)
    startup = next(json.loads(line) for line in proc.stdout.splitlines() if '"coldbrew.startup"' in line)
    assert startup["model"]["kernel"] == KERNELS[0], "the start-up line names the kernel"


API_CHILD = r"""
import json, sys
from coldbrew.engine import load_predictor
p = load_predictor(sys.argv[1])
rows = json.loads(sys.argv[2])
X = [[float("nan") if r[f] is None else r[f] for f in p.feature_names] for r in rows]
out = {"proba": p.predict_proba(X), "predict": p.predict(X), "raw": p.predict_raw(X)}
out["heavy"] = sorted(m for m in sys.modules if m.split(".")[0] in sys.argv[3].split(","))
print(json.dumps(out))
"""


@pytest.mark.integration
@pytest.mark.parametrize("name", ["v1-study-gbm", "v2-hgb-missing", "v2-xgboost"])
def test_python_api_on_lists_imports_no_numpy(models, name):
    path, est, rows = models[name]
    proc = subprocess.run(
        [sys.executable, "-c", API_CHILD, str(path), json.dumps(rows), ",".join(HEAVY)],
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["heavy"] == []
    X = np.array([[np.nan if v is None else v for v in r.values()] for r in rows], dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert out["proba"] == est.predict_proba(X).tolist()
        assert out["predict"] == est.predict(X).tolist()


def _mapped_files(pid: int) -> set[str]:
    with open(f"/proc/{pid}/maps") as fh:
        return {line.split(None, 5)[5].strip() for line in fh if len(line.split(None, 5)) == 6}


def _process_tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        for task in os.listdir(f"/proc/{p}/task"):
            with open(f"/proc/{p}/task/{task}/children") as fh:
                todo.extend(int(c) for c in fh.read().split())
    return pids


@pytest.mark.integration
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("name", ["v1-study-gbm", "v2-hgb-missing"])
def test_serve_first_predict_imports_no_numpy(models, name, monkeypatch):
    """``coldbrew serve`` (the real waitress server): after the first /predict no process of the server maps
    numpy's (or another heavy library's) files — importing numpy would map its compiled core."""
    from coldbrew.runtimes.server_process import ServerProcess

    path, est, rows = models[name]
    monkeypatch.setenv("PYTHONPATH", _child_env()["PYTHONPATH"])
    # PYTHONPROFILEIMPORTTIME: the server logs each module it imports
    with ServerProcess(str(path), env={"COLDBREW_WARMUP": "0", "PYTHONPROFILEIMPORTTIME": "1"}) as server:
        status, body = server.request("POST", "/predict", rows)
        assert status == 200, body
        assert [r["probability"] for r in body] == _expected(est, rows)
        server._stderr.seek(0)
        imported = {line.rsplit("|", 1)[1].strip() for line in server._stderr if line.startswith("import time:")}
        assert "coldbrew.engine.brew" in imported and "waitress.server" in imported, "the import log covers the server"
        assert sorted(m for m in imported if m.split(".")[0] in HEAVY) == []
        pids = _process_tree(server.proc.pid)
        mapped = set().union(*(_mapped_files(p) for p in pids))
        heavy = sorted(f for f in mapped if any(f"/{lib}/" in f or f"/{lib}." in f for lib in HEAVY))
        assert heavy == [], heavy
        assert any("_kernel" in f for f in mapped) or KERNELS == ("numpy",), "the C kernel served"
        assert server.startup is not None and server.startup["model"]["kernel"] == KERNELS[0]


# ---- the standard-library pieces -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype, classes",
    [
        ("|b1", [False, True]),
        ("<i8", [0, 1, -5, 2**62]),
        ("|u1", [0, 255]),
        ("<i2", [-32768, 7]),
        ("<f8", [0.1, 2, -3.5]),
        ("<f4", [0.1, 1e30, 3, -2.5e-3]),
        ("<f2", [0.1, 65504, 70000.0]),
        ("<U5", ["a", "<=50K"]),
        ("|O", ["x", 1, 2.5, True]),
    ],
)
def test_labels_without_numpy_equal_numpys(dtype, classes):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # float16 overflow to inf
        expected = np.array(classes, dtype=np.dtype(dtype)).tolist()
    got = spec.label_values(classes, dtype)
    assert list(got) == expected
    assert [type(v) for v in got] == [type(v) for v in expected]


@pytest.fixture(params=KERNELS)
def study(request, tiny_brew):
    return BrewPredictor(tiny_brew, kernel=request.param)


@pytest.mark.parametrize(
    "value, message",
    [
        (float("nan"), "value nan is NaN"),
        (float("inf"), "value inf is infinite"),
        (-float("inf"), "value -inf is infinite"),
        (1e39, "value 1e\\+39 is infinite or too large for float32"),
        (None, "value None is NaN"),
    ],
)
def test_list_rows_refused_naming_row_and_column(study, value, message):
    rows = [[1.0] * 6 for _ in range(3)]
    rows[2][3] = value
    with pytest.raises(InvalidInputError, match=f"row 2, capital_gain: {message}"):
        study.predict_proba(rows)


@pytest.mark.parametrize("rows", [[], [1.0] * 6, [[1.0] * 5], [["a"] * 6], [[1.0] * 6, [1.0] * 7], [[10**400] * 6]])
def test_list_rows_of_the_wrong_shape_or_type_refused(study, rows):
    with pytest.raises(InvalidInputError):
        study.predict(rows)


def test_numpy_in_numpy_out_lists_in_lists_out(study):
    X = np.zeros((2, 6))
    assert isinstance(study.predict_proba(X), np.ndarray) and study.predict_proba(X).dtype == np.float64
    assert isinstance(study.predict(X), np.ndarray)
    assert study.predict_proba(X.tolist()) == study.predict_proba(X).tolist()
    assert study.predict(X.tolist()) == study.predict(X).tolist()
    assert study.predict_raw(X.tolist()) == study.predict_raw(X).tolist()


BLOCKED_NUMPY = r"""
import json, sys
sys.modules["numpy"] = None  # a deployment without numpy: `import numpy` raises ImportError
from coldbrew.engine.brew import BrewPredictor
from coldbrew.errors import ColdbrewError
p = BrewPredictor(sys.argv[1])
out = {"needs_numpy": p.needs_numpy, "predict": p.predict([[5.1, 3.5, 1.4, 0.2]])}
for call in (lambda: p.predict_proba([[5.1, 3.5, 1.4, 0.2]]), lambda: BrewPredictor(sys.argv[1], kernel="numpy")):
    try:
        call()
        out.setdefault("errors", []).append(None)
    except ColdbrewError as exc:
        out.setdefault("errors", []).append(str(exc))
print(json.dumps(out))
"""


@pytest.mark.integration
def test_softmax_probabilities_without_numpy_are_a_one_line_error(tmp_path):
    """sklearn's multiclass GradientBoosting computes probabilities with numpy's own exp (not libm's), so they
    need numpy; where it is missing that is a one-line ColdbrewError, never a traceback or other bits."""
    from sklearn.datasets import load_iris
    from sklearn.ensemble import GradientBoostingClassifier

    from coldbrew.convert.sklearn import to_arrays
    from coldbrew.format import write_brew

    X, y = load_iris(return_X_y=True)
    est = GradientBoostingClassifier(n_estimators=5, max_depth=2, random_state=0).fit(X, y)
    path = tmp_path / "iris.brew"
    write_brew(path, *to_arrays(est))
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKED_NUMPY, str(path)], env=_child_env(), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["needs_numpy"] is True
    assert out["predict"] == est.predict(X[:1]).tolist()  # the argmax of raw scores needs no exp, no numpy
    proba_error, kernel_error = out["errors"]
    assert "softmax" in proba_error and "needs numpy" in proba_error
    if "c" in KERNELS:
        assert "numpy kernel" in kernel_error and "needs numpy" in kernel_error


def test_needs_numpy_only_for_softmax_or_the_numpy_kernel(tiny_brew):
    assert BrewPredictor(tiny_brew, kernel=KERNELS[0]).needs_numpy is (KERNELS[0] == "numpy")
    assert BrewPredictor(tiny_brew, kernel="numpy").needs_numpy is True


def test_null_in_list_rows_is_missing(models):
    """``None`` in list rows is a missing value, exactly like NaN (version 2 models route it per node)."""
    path, est, rows = models["v2-hgb-missing"]
    p = BrewPredictor(path)
    with_none = [list(r.values()) for r in rows]
    with_nan = [[float("nan") if v is None else v for v in r] for r in with_none]
    assert any(v is None for r in with_none for v in r)
    assert p.predict_proba(with_none) == p.predict_proba(with_nan) == est.predict_proba(np.array(with_nan)).tolist()


def test_a_list_of_numpy_rows_is_numpy_in(study):
    rows = [np.zeros(6), np.ones(6)]
    out = study.predict_proba(rows)
    assert isinstance(out, np.ndarray) and np.array_equal(out, study.predict_proba(np.array(rows)))


_SPECIAL = [float("nan"), float("inf"), -float("inf"), 3.4028235e38, 3.4028236e38, -1e39, 0.0, -0.0, 1e-40, None]


# function_scoped_fixture: ``models`` is module-scoped and read-only, so sharing it across examples is intended.
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_list_path_answers_and_refuses_as_the_numpy_path(models, data):
    """Rows as lists (the C kernel casts and checks them) and the same rows as a numpy array (numpy casts and
    checks them) give the same answers, or the same refusal, for any values — NaN, infinities, float32 overflow,
    subnormals, signed zeros, null — on a version 1 and a version 2 model."""
    name = data.draw(st.sampled_from(["v1-study-gbm", "v2-hgb-missing", "v2-xgboost"]))
    path, _, _ = models[name]
    p = BrewPredictor(path)
    value = st.one_of(
        st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(_SPECIAL), st.integers(-(2**40), 2**40)
    )
    rows = data.draw(st.lists(st.lists(value, min_size=p.n_features, max_size=p.n_features), min_size=1, max_size=4))
    array = np.array([[np.nan if v is None else v for v in r] for r in rows], dtype=np.float64)

    def outcome(X):
        try:
            return p.predict_raw(X), p.predict(X)
        except InvalidInputError as exc:
            return str(exc)

    from_lists, from_numpy = outcome(rows), outcome(array)
    if isinstance(from_numpy, str):
        assert isinstance(from_lists, str)
        # the same row, column and reason; the value as given (None in a list is NaN in the array)
        assert from_lists.replace("value None", "value nan") == from_numpy
    else:
        assert from_lists == (from_numpy[0].tolist(), from_numpy[1].tolist())
