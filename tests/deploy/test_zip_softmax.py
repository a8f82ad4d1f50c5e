"""Softmax models zip: scikit-learn's multiclass GradientBoosting and HistGradientBoosting and XGBoost's
``multi:softmax`` compute probabilities with numpy's own ``exp``, so their zip ships numpy built for the target.

Expected probabilities come from the libraries themselves (``predict_proba`` of the fitted estimator, x86_64 here)
or, for the emulated arm64 run, from the libraries' softmax formula evaluated by arm64 numpy.
"""

from __future__ import annotations

import json
import platform
import zipfile
from pathlib import Path

import numpy as np
import pytest

from coldbrew.deploy import package as pkg
from coldbrew.deploy import smoke, zipbuild

HOST_IS_X86 = smoke.HOST_ARCH.get(platform.machine().lower()) == "x86_64"
EMULATOR, NO_EMULATOR = smoke.emulator("arm64")


@pytest.fixture(scope="module")
def softmax_models(tmp_path_factory):
    """name -> (fitted estimator, .brew path, feature names)."""
    import pandas as pd
    import xgboost as xgb
    from sklearn.datasets import load_iris, make_classification
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier

    from coldbrew.convert import compile_estimator

    tmp = tmp_path_factory.mktemp("softmax")
    iris = load_iris()
    Xi = pd.DataFrame(iris.data, columns=["sepal_length", "sepal_width", "petal_length", "petal_width"])
    X10, y10 = make_classification(600, 12, n_informative=8, n_classes=10, random_state=0)
    X10 = pd.DataFrame(X10, columns=[f"c{i}" for i in range(12)])
    models = {
        "gb-3class": GradientBoostingClassifier(n_estimators=10, max_depth=2, random_state=0).fit(Xi, iris.target),
        "hgb-10class": HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(X10, y10),
        "xgb-multi-softmax": xgb.XGBClassifier(n_estimators=5, max_depth=3, objective="multi:softmax").fit(
            Xi, iris.target
        ),
    }
    out = {}
    for name, est in models.items():
        path = tmp / f"{name}.brew"
        compile_estimator(est, path, progress=False)
        out[name] = (est, path, list(est.feature_names_in_))
    return out


def _smoke(result) -> smoke.Check:
    return {c.name: c for c in result.checks}["smoke"]


# ---- fast ------------------------------------------------------------------------------------------------------------
def test_only_a_softmax_model_needs_numpy(softmax_models, tiny_brew):
    for _, path, _ in softmax_models.values():
        needs = pkg.model_native_needs(pkg.make_plan(str(path), "zip-snapstart"))
        assert list(needs) == ["numpy"]
    assert pkg.model_native_needs(pkg.make_plan(str(tiny_brew), "zip-snapstart")) == {}


@pytest.mark.parametrize("name", ["gb-3class", "hgb-10class", "xgb-multi-softmax"])
def test_the_smoke_tests_expected_answers_are_the_librarys_predict_proba(softmax_models, name):
    """The answers the smoke test demands (x86_64, this machine's numpy) are the library's own, bit for bit."""
    import pandas as pd

    est, path, features = softmax_models[name]
    rows = smoke.sample_rows(path)
    expected = smoke.expected_results(path, rows)
    X = pd.DataFrame([[row[f] for f in features] for row in rows], columns=features, dtype=np.float64)
    library = est.predict_proba(X)
    got = np.array([list(e["probabilities"].values()) for e in expected], dtype=library.dtype)
    assert np.array_equal(got, library)
    assert [e["prediction"] for e in expected] == [str(v) for v in est.predict(X).tolist()]


# ---- the whole flow, both architectures -----------------------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
@pytest.mark.parametrize("name", ["gb-3class", "hgb-10class", "xgb-multi-softmax"])
def test_a_softmax_model_zips_and_smoke_tests_bit_exact(softmax_models, tmp_path, name, arch):
    if arch == "x86_64" and not HOST_IS_X86:
        pytest.skip("the lab runs x86_64 zips on an x86_64 machine")
    if arch == "arm64" and EMULATOR is None:
        pytest.skip(f"no emulated arm64 run: {NO_EMULATOR}")
    pytest.importorskip("ziglang", reason="cross-building needs the ziglang package (deploy extra)")
    _, path, _ = softmax_models[name]
    result = pkg.package(str(path), "zip-snapstart", tmp_path / "out", arch=arch)
    run = _smoke(result)
    assert run.status == "ok", run.detail
    assert not result.failed, [c for c in result.checks if c.failed]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["dependencies"]["numpy"] == np.__version__
    wheel = manifest["native"]["numpy"]["wheel"]
    assert ("aarch64" if arch == "arm64" else "x86_64") in wheel and "cp312" in wheel
    checks = {c.name: c for c in result.checks}
    assert "numpy" in checks["dependencies"].detail and "native" in checks["dependencies"].detail
    assert "numpy" in checks["size"].detail and checks["ELF numpy (vendored)"].status == "ok"
    with zipfile.ZipFile(tmp_path / "out" / "function.zip") as zf:
        names = zf.namelist()
    assert "numpy/__init__.py" in names and not any("/tests/" in n for n in names)
    if arch == "arm64":
        assert "arm64 numpy" in run.detail


@pytest.mark.integration
@pytest.mark.skipif(not HOST_IS_X86, reason="the lab runs x86_64 zips on an x86_64 machine")
def test_a_softmax_zip_without_numpy_fails_with_the_functions_own_error(softmax_models, tmp_path):
    """What every softmax zip did before: the smoke failure names the cause, not only "HTTP 500"."""
    pytest.importorskip("ziglang", reason="cross-building needs the ziglang package (deploy extra)")
    _, path, _ = softmax_models["gb-3class"]
    plan = pkg.make_plan(str(path), "zip-snapstart")
    out = tmp_path / "out"
    zipbuild.build_function_zip(path, out, "x86_64", model_name=f"model/{path.name}", native={})
    (out / "template.yaml").write_text(pkg.tpl.sam_template(plan))
    rows = smoke.sample_rows(path)
    checks = smoke.check_zip(
        out / "function.zip",
        "x86_64",
        spec=smoke.function_spec(out / "template.yaml"),
        rows=rows,
        expected=smoke.expected_results(path, rows),
    )
    run = checks[-1]
    assert run.failed and "HTTP 500" in run.detail and "numpy" in run.detail.split("HTTP 500", 1)[1], run.detail


def test_vendored_wheels_skip_tests_and_stubs(tmp_path):
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("demo/__init__.py", "")
        zf.writestr("demo/core.pyi", "")
        zf.writestr("demo/tests/test_x.py", "")
        zf.writestr("demo-1.0.dist-info/RECORD", "")
        zf.writestr("demo.libs/libx.so", b"\x7fELF")
    files = zipbuild.wheels.unpack(wheel, tmp_path / "out")
    assert sorted(arc for _, arc in files) == ["demo.libs/libx.so", "demo/__init__.py"]
    assert zipbuild.wheels.top_levels(files) == {"demo", "demo.libs"}
    evil = tmp_path / "evil.whl"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../escaped.py", "")
    with pytest.raises(zipbuild.wheels.WheelError, match="outside"):
        zipbuild.wheels.unpack(evil, tmp_path / "out2")
    assert not (tmp_path / "escaped.py").exists()
    assert Path(tmp_path / "out" / "demo" / "__init__.py").is_file()
