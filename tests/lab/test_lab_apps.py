"""Any app, as a user would bring it (issue #13, part 3): a plain Flask app through ``--wsgi`` and a
plain ASGI app through ``--asgi``, with ``--code``/``--cwd``/``--bucket``, behind every front door."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from labtools import LabCommand, LabFactory, call

from coldbrew.errors import ConfigError
from coldbrew.lab import LabConfig

pytestmark = pytest.mark.integration

STUDY = Path(__file__).parents[1] / "apps" / "study_shape"
ASGI = Path(__file__).parents[1] / "apps" / "asgi_raw"
ROW = json.dumps({"age": 39, "education_num": 13, "hours_per_week": 40}).encode()
STUDY_ENV = {"MODEL_SOURCE": "DISK", "MODEL_VERSION": "v1"}


@pytest.fixture
def lab_factory(tmp_path):
    factory = LabFactory(tmp_path)
    yield factory
    factory.close()


def expected_probability() -> float:
    import math

    model = json.loads((STUDY / "app" / "models" / "v1.json").read_text())
    row = json.loads(ROW)
    score = model["bias"] + sum(w * row[k] for k, w in model["weights"].items())
    return 1 / (1 + math.exp(-score))


def test_the_study_shaped_app_runs_with_one_command(tmp_path):
    with LabCommand(
        "--wsgi",
        "app.main:app",
        "--code",
        str(STUDY),
        "--cwd",
        str(STUDY / "app"),
        "--env",
        "MODEL_SOURCE=DISK",
        "--env",
        "MODEL_VERSION=v1",
        "--memory-mb",
        "256",
        "--quiet",
        "--no-report",
        "--function-output",
        str(tmp_path / "out.log"),
    ) as lab:
        status, headers, body = call(lab, "/predict", ROW, headers={"Content-Type": "application/json"})
        assert status == 200 and headers["x-lab-cold"] == "1", body
        assert json.loads(body)["probability"] == pytest.approx(expected_probability(), rel=1e-12)
        status, _, body = call(lab, "/")
        assert status == 200 and json.loads(body) == {"model_version": "v1", "source": "DISK"}
        lab.stop()


def test_without_cwd_the_relative_model_path_is_not_found(lab_factory, capfd):
    lab = lab_factory(wsgi="app.main:app", task_root=STUDY, env=STUDY_ENV)
    status, _, _ = call(lab, "/")
    assert status == 502
    assert lab.stats()["errors"] == {"FileNotFoundError": 1}
    assert "Status: error\tError Type: FileNotFoundError" in capfd.readouterr().err


def test_the_model_from_the_apps_own_hard_coded_bucket(lab_factory):
    lab = lab_factory(
        wsgi="app.main:app",
        task_root=STUDY,
        cwd=STUDY / "app",
        source="s3",
        bucket="study-models",
        model_uri=STUDY / "app" / "models" / "v1.json",
        env={"MODEL_VERSION": "v1"},
    )
    status, _, body = call(lab, "/predict", ROW, headers={"Content-Type": "application/json"})
    assert status == 200, body
    assert json.loads(body)["probability"] == pytest.approx(expected_probability(), rel=1e-12)
    assert json.loads(call(lab, "/")[2])["source"] == "S3"


@pytest.mark.parametrize("api", ["http", "rest", "url", "alb"])
def test_the_flask_app_behind_every_front_door(lab_factory, api):
    """apig-wsgi (code nobody here wrote) reads each event the lab builds."""
    lab = lab_factory(wsgi="app.main:app", task_root=STUDY, cwd=STUDY / "app", env=STUDY_ENV, api=api)
    status, _, body = call(lab, "/predict?x=1", ROW, headers={"Content-Type": "application/json"})
    assert status == 200, body
    assert json.loads(body)["probability"] == pytest.approx(expected_probability(), rel=1e-12)
    assert call(lab, "/nowhere")[0] == 404


@pytest.mark.parametrize("api", ["http", "rest", "url", "alb"])
def test_an_asgi_app_through_mangum_behind_every_front_door(lab_factory, api):
    pytest.importorskip("mangum")
    lab = lab_factory(asgi="rawasgi:app", task_root=ASGI, api=api)
    status, headers, body = call(lab, "/echo?a=1&b=2", b'{"k": "v"}', headers={"Content-Type": "application/json"})
    assert status == 201 and headers["x-asgi"] == "1", body
    assert json.loads(body) == {"method": "POST", "path": "/echo", "query": "a=1&b=2", "body": '{"k": "v"}'}


@pytest.mark.parametrize(
    "options",
    [
        {"wsgi": "app..main:app"},
        {"wsgi": "app:"},
        {"wsgi": "a:b", "asgi": "c:d"},
        {"wsgi": "x y:app"},
        {"wsgi": "a:app", "handler": "echo.handler"},
        {"bucket": "b"},
        {"source": "s3", "bucket": "Not_A_Bucket"},
        {"cwd": "/nonexistent/dir"},
        {"api": "grpc"},
    ],
)
def test_invalid_hosting_options_are_config_errors(options):
    with pytest.raises(ConfigError):
        LabConfig(**options)
