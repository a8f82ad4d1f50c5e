"""Install what you use: the serving runtime is `pip install coldbrew`; everything else is an extra, and
`coldbrew package` derives a function's requirements from that metadata."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import coldbrew
from coldbrew.cli import main
from coldbrew.deploy.package import pinned_requirements, serving_distributions
from coldbrew.errors import ColdbrewError

ROOT = Path(coldbrew.__file__).parent
PYPROJECT = ROOT.parent / "pyproject.toml"
PROJECT = tomllib.loads(PYPROJECT.read_text())["project"]


def _closure(lines: list[str]) -> set[str]:
    """Distributions named by ``lines`` (coldbrew[...] expanded) and everything they require, as installed here."""
    found: set[str] = set()
    todo = [Requirement(line) for line in lines]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        key = canonicalize_name(req.name)
        if key == "coldbrew":
            todo += [Requirement(x) for name in req.extras for x in PROJECT["optional-dependencies"][name]]
            continue
        if key in found:
            continue
        found.add(key)
        try:
            todo += [Requirement(x) for x in metadata.requires(req.name) or []]
        except metadata.PackageNotFoundError:
            pass
    return found


def test_the_base_install_is_the_serving_runtime():
    assert {canonicalize_name(Requirement(r).name) for r in PROJECT["dependencies"]} == {"numpy", "apig-wsgi"}
    extras = PROJECT["optional-dependencies"]
    assert {"s3", "serve", "sklearn", "train", "lab", "bench", "deploy", "all", "dev"} <= set(extras)
    # [all] is every extra but the test tools and the ONNX and peer comparisons (bench/peers.py), so it holds every
    # library `coldbrew compile` reads or checks against (xgboost, lightgbm, catboost); [dev] is [all] plus the test tools.
    optional = ("all", "dev", "onnx", "peers")
    assert _closure(extras["all"]) >= _closure(
        [line for name in extras if name not in optional for line in extras[name]]
    )
    assert {"xgboost-cpu" if sys.platform == "linux" else "xgboost", "lightgbm", "catboost"} <= _closure(extras["all"])
    assert _closure(extras["dev"]) >= _closure(extras["all"]) | {"pytest", "ruff", "mypy"}


def test_every_third_party_import_is_declared():
    """Each module coldbrew imports (anywhere, lazily too) comes from a declared distribution or the stdlib."""
    declared = _closure([*PROJECT["dependencies"], "coldbrew[all]", "coldbrew[xgboost,lightgbm]", "coldbrew[dev]"])
    providers = metadata.packages_distributions()
    missing = {}
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                tops = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                if top in sys.stdlib_module_names or top in ("coldbrew", "__future__", "_kernel"):
                    continue
                dists = {canonicalize_name(d) for d in providers.get(top, [])}
                if not dists & declared:
                    missing[top] = str(path.relative_to(ROOT.parent))
    # bench/brew_vs_pickle.py's ONNX comparison is not in coldbrew/, so nothing here needs [onnx].
    assert not missing


def test_function_requirements_come_from_the_metadata(tmp_path):
    """A different pyproject gives different requirements: nothing is hard-coded."""
    fake = tmp_path / "pyproject.toml"
    fake.write_text(
        '[project]\nname = "coldbrew"\ndependencies = ["numpy>=1", "threadpoolctl"]\n'
        '[project.optional-dependencies]\nsklearn = ["coldbrew[extra2]"]\nextra2 = ["joblib"]\n'
    )
    assert serving_distributions("brew", fake) == ["numpy", "threadpoolctl"]
    pickle = serving_distributions("pickle", fake)
    assert pickle[:3] == ["numpy", "threadpoolctl", "joblib"]
    assert set(pickle[3:]) == {
        canonicalize_name(Requirement(r).name) for r in metadata.requires("joblib") or [] if "extra" not in r
    } - {"numpy"}
    assert pinned_requirements("brew", fake) == [
        f"numpy=={metadata.version('numpy')}",
        f"threadpoolctl=={metadata.version('threadpoolctl')}",
    ]


def test_the_real_metadata_gives_the_serving_set():
    assert serving_distributions("brew") == ["numpy", "apig-wsgi"]
    pickle = {canonicalize_name(n) for n in serving_distributions("pickle")}
    assert {"numpy", "apig-wsgi", "scikit-learn", "scipy", "joblib", "threadpoolctl"} <= pickle
    assert not pickle & {"boto3", "pandas", "waitress", "gunicorn", "locust", "matplotlib"}


@pytest.mark.parametrize(
    "text, message",
    [
        ('dependencies = ["no-such-distribution-xyz"]\n', "no-such-distribution-xyz is not installed here"),
        ('dependencies = ["coldbrew[nope]"]\n', "no [nope] extra"),
    ],
)
def test_unresolvable_metadata_is_a_one_line_error(tmp_path, text, message):
    fake = tmp_path / "pyproject.toml"
    fake.write_text('[project]\nname = "coldbrew"\n' + text)
    with pytest.raises(ColdbrewError, match=re.escape(message)):
        serving_distributions("brew", fake)


def test_a_missing_extra_names_the_pip_command(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if `pip install coldbrew` without [bench]
    data = Path(__file__).parent / "data" / "DOCKER_DISK_TEST_ROUND_5_locust_logs.txt"
    assert main(["report", str(data), "--plots", str(tmp_path / "plots")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "matplotlib" in err and "pip install 'coldbrew[bench]'" in err


def test_a_pickle_without_scikit_learn_installed_says_which_extra(monkeypatch, tiny_model):
    from coldbrew.engine import load_predictor
    from coldbrew.errors import ModelFormatError

    for name in [m for m in sys.modules if m.split(".")[0] in ("sklearn", "joblib")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "joblib", None)
    with pytest.raises(ModelFormatError, match=re.escape("pip install 'coldbrew[sklearn]'")):
        load_predictor(tiny_model, allow_pickle=True)


def test_s3_without_boto3_installed_says_which_extra(monkeypatch, tmp_path):
    from coldbrew.errors import SourceError
    from coldbrew.sources.s3 import fetch_s3

    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(SourceError, match=re.escape("s3://b/k: reading models from S3 needs boto3: pip install")):
        fetch_s3("b", "k", tmp_path)
