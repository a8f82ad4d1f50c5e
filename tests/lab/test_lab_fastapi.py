"""A FastAPI app, as a user would bring it, hosted by ``coldbrew lab --asgi`` through Mangum (issue #13, part 3).

The app (tests/apps/fastapi_shape/service.py) loads its model in FastAPI's lifespan handler, as FastAPI's
docs show for ML models, and validates its body with pydantic. Expected values come from its model.json.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from labtools import LabCommand, LabFactory, call

pytestmark = pytest.mark.integration
pytest.importorskip("fastapi")
pytest.importorskip("mangum")

APP = Path(__file__).parents[1] / "apps" / "fastapi_shape"
ROW = {"age": 39, "education_num": 13, "hours_per_week": 40}
JSON = {"Content-Type": "application/json"}


def expected_probability(row: dict) -> float:
    model = json.loads((APP / "model.json").read_text())
    score = model["bias"] + sum(w * row[k] for k, w in model["weights"].items())
    return 1 / (1 + math.exp(-score))


def test_a_fastapi_app_runs_with_one_command(tmp_path):
    events = tmp_path / "events.jsonl"
    with LabCommand(
        "--asgi",
        "service:app",
        "--code",
        str(APP),
        "--memory-mb",
        "512",
        "--log",
        str(events),
        "--quiet",
        "--function-output",
        str(tmp_path / "out.log"),
    ) as lab:
        status, headers, body = call(lab, "/predict", json.dumps(ROW).encode(), headers=JSON)
        assert status == 200, body
        assert json.loads(body) == {
            "probability": pytest.approx(expected_probability(ROW), rel=1e-12),
            "model": "adult",
        }
        assert headers["x-lab-cold"] == "1" and float(headers["x-lab-init-ms"]) > 0
        cold_env = headers["x-lab-env"]
        # pydantic refuses a body of the wrong shape: FastAPI's 422, naming the field, from the warm environment
        status, headers, body = call(lab, "/predict", json.dumps({"age": "old"}).encode(), headers=JSON)
        assert status == 422, body
        detail = json.loads(body)["detail"]
        assert {tuple(d["loc"]) for d in detail} >= {("body", "age"), ("body", "education_num")}
        assert headers["x-lab-cold"] == "0" and headers["x-lab-env"] == cold_env and "x-lab-init-ms" not in headers
        status, _, body = call(lab, "/")
        assert status == 200 and json.loads(body) == {"models": ["adult"]}
        _, err = lab.stop()
    records = [json.loads(line) for line in events.read_text().splitlines()]
    ready = [r for r in records if r["event"] == "env_ready"]
    invokes = [r for r in records if r["event"] == "invoke"]
    assert len(ready) == 1 and ready[0]["init_ms"] > 0  # one cold start: the app imported once, during init
    assert [r["cold"] for r in invokes] == [True, False, False]
    assert [r["outcome"] for r in invokes] == ["ok", "ok", "ok"]  # a 422 is the app's answer, not a failure
    # REPORT lines as Lambda prints them: the first with the init, the rest without
    reports = [line for line in err.splitlines() if line.startswith("REPORT RequestId:")]
    assert len(reports) == 3 and "Init Duration" in reports[0] and "Init Duration" not in reports[1]


@pytest.fixture
def lab_factory(tmp_path):
    factory = LabFactory(tmp_path)
    yield factory
    factory.close()


@pytest.mark.parametrize("api", ["rest", "url", "alb"])
def test_the_fastapi_app_behind_the_other_front_doors(lab_factory, api):
    """Mangum (code nobody here wrote) reads each event the lab builds; the lifespan runs as it does on Lambda."""
    lab = lab_factory(asgi="service:app", task_root=APP, api=api, memory_mb=512)
    row = {"age": 52, "education_num": 9, "hours_per_week": 60}
    status, _, body = call(lab, "/predict", json.dumps(row).encode(), headers=JSON)
    assert status == 200, body
    assert json.loads(body)["probability"] == pytest.approx(expected_probability(row), rel=1e-12)
    status, _, body = call(lab, "/predict", json.dumps({**row, "hours_per_week": 200}).encode(), headers=JSON)
    assert status == 422 and json.loads(body)["detail"][0]["loc"] == ["body", "hours_per_week"]
    assert lab.stats()["cold_starts"] == 1
