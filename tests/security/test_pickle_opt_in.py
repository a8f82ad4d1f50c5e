"""A model file never gets unpickled unless the user asked for pickles (docs/security.md, "A model file").

Each attack hands coldbrew a pickle whose ``__reduce__`` would create a marker file: without the opt-in the
marker must not appear, the refusal must be one line naming what the file is and how to opt in, and every
command must exit non-zero.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from argparse import Namespace

import numpy as np
import pytest

from coldbrew.engine import PickleRefusedError, load_predictor
from coldbrew.errors import ModelFormatError

ROW = np.array([[34, 261799, 11, 0, 0, 56]], dtype=np.float64)


def run_coldbrew(*args, env=None, timeout=120, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "coldbrew", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        cwd=cwd,
    )


def assert_one_line_refusal(result, command: str, *needles: str):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"coldbrew {command}: error:"), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_python_api_refuses_a_pickle_without_opt_in(evil_pickle):
    path, marker = evil_pickle
    with pytest.raises(PickleRefusedError) as info:
        load_predictor(path)
    message = str(info.value)
    assert "\n" not in message and "pickle" in message and "allow_pickle=True" in message
    assert "--allow-pickle" in message and "COLDBREW_ALLOW_PICKLE=1" in message
    assert not marker.exists(), "the pickle was executed"


def test_python_api_loads_a_trusted_pickle_when_asked(tiny_model, tiny_brew):
    pk = load_predictor(tiny_model, allow_pickle=True)
    assert pk.format == "pickle"
    assert np.array_equal(pk.predict_proba(ROW), load_predictor(tiny_brew).predict_proba(ROW))


@pytest.mark.parametrize("allow", [False, True], ids=["default", "allow_pickle"])
def test_a_pickle_named_brew_is_refused_even_with_opt_in(evil_pickle, tmp_path, allow):
    path, marker = evil_pickle
    disguised = tmp_path / "model.brew"
    shutil.copy(path, disguised)
    with pytest.raises(ModelFormatError, match="named .brew but not a .brew file"):
        load_predictor(disguised, allow_pickle=allow)
    assert not marker.exists()


def test_a_brew_uri_is_checked_by_the_name_the_user_gave(evil_pickle):
    """An S3 download lands in a cache file; the name the user asked for (s3://.../model.brew) still counts."""
    path, marker = evil_pickle
    with pytest.raises(ModelFormatError, match="s3://bucket/model.brew: named .brew"):
        load_predictor(path, allow_pickle=True, name="s3://bucket/model.brew")
    assert not marker.exists()


def test_joblib_compressed_pickle_is_named_as_such(tmp_path):
    import joblib

    path = tmp_path / "model.joblib"
    joblib.dump({"a": 1}, path, compress=3)
    with pytest.raises(PickleRefusedError, match="compressed joblib/pickle file"):
        load_predictor(path)


def test_lambda_init_refuses_a_pickle_without_opt_in(evil_pickle):
    """The Lambda handler's init (the environment variables a deployed function gets, even COLDBREW_VERIFY=1)."""
    from coldbrew.app.startup import load_from_env

    path, marker = evil_pickle
    with pytest.raises(PickleRefusedError, match="COLDBREW_ALLOW_PICKLE=1"):
        load_from_env({"MODEL_SOURCE": "DISK", "MODEL_URI": str(path), "COLDBREW_VERIFY": "1"})
    assert not marker.exists()


@pytest.mark.integration
def test_lambda_handler_import_refuses_and_runs_nothing(evil_pickle, tiny_model):
    """Importing coldbrew.aws is Lambda's init: it fails with one logged line; with the opt-in it serves."""
    path, marker = evil_pickle
    code = "import coldbrew.aws"
    env = {**os.environ, "MODEL_SOURCE": "DISK", "MODEL_URI": str(path)}
    env.pop("COLDBREW_ALLOW_PICKLE", None)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env, timeout=120
    )
    assert result.returncode != 0 and not marker.exists()
    logged = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert logged and logged[0]["event"] == "coldbrew.startup_error"
    assert "PickleRefusedError" in logged[0]["error"] and "COLDBREW_ALLOW_PICKLE=1" in logged[0]["error"]
    env.update(MODEL_URI=str(tiny_model), COLDBREW_ALLOW_PICKLE="1")
    ok = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert any(
        json.loads(line).get("event") == "coldbrew.startup" for line in ok.stdout.splitlines() if line.startswith("{")
    )


@pytest.mark.integration
def test_serve_refuses_a_pickle_without_allow_pickle(evil_pickle):
    path, marker = evil_pickle
    env = {k: v for k, v in os.environ.items() if k != "COLDBREW_ALLOW_PICKLE"}
    result = subprocess.run(
        [sys.executable, "-m", "coldbrew", "serve", str(path), "--port", "0"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=120,
    )
    assert_one_line_refusal(result, "serve", "pickle", "--allow-pickle")
    assert not marker.exists()


@pytest.mark.integration
def test_serve_refuses_a_pickle_named_brew_over_s3_even_with_allow_pickle(evil_pickle, s3_server, tmp_path):
    path, marker = evil_pickle
    s3_server.create_bucket("sec-models")
    s3_server.upload(path, "sec-models", "prod/model.brew")
    result = run_coldbrew(
        "serve",
        "s3://sec-models/prod/model.brew",
        "--allow-pickle",
        "--port",
        "0",
        env={**s3_server.env(), "TMPDIR": str(tmp_path)},
    )
    assert_one_line_refusal(result, "serve", "named .brew but not a .brew file")
    assert not marker.exists()


@pytest.mark.integration
def test_lab_refuses_a_pickle_before_starting_any_environment(evil_pickle):
    path, marker = evil_pickle
    result = run_coldbrew("lab", str(path), "--no-report", "--quiet", timeout=60)
    assert_one_line_refusal(result, "lab", "pickle", "--allow-pickle")
    assert "coldbrew lab: http" not in result.stdout, "no lab was started"
    assert not marker.exists()


def test_lab_allow_pickle_passes_the_opt_in_to_its_environments(tiny_model):
    from coldbrew.commands.lab import _pickle_opt_in

    args = Namespace(model_uri=str(tiny_model), handler="coldbrew.aws.handler", allow_pickle=True)
    env: dict[str, str] = {}
    _pickle_opt_in(args, env)
    assert env == {"COLDBREW_ALLOW_PICKLE": "1"}
    with pytest.raises(PickleRefusedError):
        _pickle_opt_in(Namespace(model_uri=str(tiny_model), handler="coldbrew.aws.handler", allow_pickle=False), {})


@pytest.mark.parametrize("setup", ["image-disk", "image-s3"])
def test_packaged_pickle_setups_opt_in_and_brew_setups_do_not(tiny_model, tiny_brew, tmp_path, setup):
    """The deployed templates: a pickle setup carries COLDBREW_ALLOW_PICKLE=1, a .brew setup never does."""
    from dockerfile_parse import DockerfileParser
    from samtranslator.yaml_helper import yaml_parse

    from coldbrew.deploy.package import package

    for model, fmt in ((tiny_model, "pickle"), (tiny_brew, "brew")):
        out = tmp_path / f"{setup}-{fmt}"
        package(str(model), setup, out, **({"s3_uri": f"s3://bucket/model.{fmt}"} if setup == "image-s3" else {}))
        template = yaml_parse((out / "template.yaml").read_text())
        variables = template["Resources"]["ModelFunction"]["Properties"]["Environment"]["Variables"]
        image_env = DockerfileParser(path=str(out / "Dockerfile")).envs  # ENV as Docker reads it (quotes removed)
        if fmt == "pickle":
            assert str(variables.get("COLDBREW_ALLOW_PICKLE")) == "1"
            assert image_env["COLDBREW_ALLOW_PICKLE"] == "1"
        else:
            assert "COLDBREW_ALLOW_PICKLE" not in variables
            assert "COLDBREW_ALLOW_PICKLE" not in image_env


def test_the_zip_setup_refuses_a_pickle_outright(tiny_model, tmp_path):
    """zip-snapstart serves .brew only: a pickle is refused with the way out, and no opt-in is ever packaged."""
    from coldbrew.deploy.package import package
    from coldbrew.errors import ColdbrewError

    with pytest.raises(ColdbrewError, match="zip-snapstart serves .brew models only.*coldbrew compile"):
        package(str(tiny_model), "zip-snapstart", tmp_path / "zip")
    assert not (tmp_path / "zip" / "template.yaml").exists()
