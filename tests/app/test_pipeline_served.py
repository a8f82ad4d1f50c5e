"""Acceptance (issue 21): a Pipeline(ColumnTransformer([OneHotEncoder on two string columns, StandardScaler on the
rest]), HistGradientBoostingClassifier) fitted on the UI Adult census data is compiled, served by ``coldbrew serve``
(a real process on 127.0.0.1, a free port) and answers 1,000 rows of requests carrying strings (unseen categories
and missing values included) exactly as ``pipeline.predict`` / ``predict_proba`` on the same DataFrame; the server
imports no numpy, scikit-learn or pandas."""

from __future__ import annotations

import gzip
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

STRINGS = ["workclass", "occupation"]
NUMBERS = ["age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"]
HEAVY = ("numpy", "sklearn", "scipy", "pandas")
REPO = Path(__file__).resolve().parents[2]


def _adult() -> pd.DataFrame:
    with resources.files("coldbrew.data").joinpath("adult.csv.gz").open("rb") as fh:
        return pd.read_csv(gzip.open(fh))


def _requests(held: pd.DataFrame, rng) -> list[dict]:
    """Held-out rows as JSON objects, with unseen categories, missing strings and missing numbers mixed in."""
    rows = []
    for record in held[STRINGS + NUMBERS].to_dict("records"):
        row = {k: (v if isinstance(v, str) else float(v)) for k, v in record.items()}
        r = rng.random()
        if r < 0.08:
            row["workclass"] = "Space-force"  # never seen in training
        elif r < 0.16:
            row["occupation"] = "Astronaut"
        elif r < 0.2:
            row["occupation"] = None
        elif r < 0.24:
            row["age"] = None
        rows.append(row)
    return rows


def _fitted(train: pd.DataFrame):
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    return Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), STRINGS),
                        ("num", StandardScaler(), NUMBERS),
                    ]
                ),
            ),
            ("model", HistGradientBoostingClassifier(max_iter=40, random_state=0)),
        ]
    ).fit(train[STRINGS + NUMBERS], train["income"])


@pytest.mark.integration
def test_pipeline_served_bit_exact_with_strings(tmp_path, monkeypatch):
    from coldbrew.convert import compile_estimator
    from coldbrew.runtimes.server_process import ServerProcess

    df = _adult()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(df))
    train, held = df.iloc[order[:8000]], df.iloc[order[8000:9000]]
    pipe = _fitted(train)
    path = tmp_path / "adult-pipeline.brew"
    compile_estimator(pipe, path)

    rows = _requests(held, rng)
    assert len(rows) == 1000
    frame = pd.DataFrame(rows)  # what pandas makes of the same JSON rows: None -> NaN
    proba = pipe.predict_proba(frame)[:, 1].tolist()
    labels = pipe.predict(frame).tolist()
    assert sum(r["workclass"] == "Space-force" for r in rows) > 50

    monkeypatch.setenv("PYTHONPATH", str(REPO))
    with ServerProcess(str(path), env={"COLDBREW_WARMUP": "0", "PYTHONPROFILEIMPORTTIME": "1"}) as server:
        assert server.url.startswith("http://127.0.0.1:")
        got = []
        for start in range(0, 1000, 250):  # batches by name
            status, body = server.request("POST", "/predict", rows[start : start + 250])
            assert status == 200, body
            got.extend(body)
        status, one = server.request("POST", "/predict", rows[0])  # and one row
        assert status == 200 and one == got[0]
        status, bad = server.request("POST", "/predict", dict(rows[0], age="forty"))
        assert status == 400 and bad["field"] == "age" and "number" in bad["error"]
        status, bad = server.request("POST", "/predict", dict(rows[0], workclass=3))
        assert status == 400 and bad["field"] == "workclass" and "string" in bad["error"]
        status, bad = server.request("POST", "/predict", {k: v for k, v in rows[0].items() if k != "occupation"})
        assert status == 400 and bad["field"] == "occupation"
        server._stderr.seek(0)
        imported = {line.rsplit("|", 1)[1].strip() for line in server._stderr if line.startswith("import time:")}
    assert [r["probability"] for r in got] == proba
    assert [r["prediction"] for r in got] == labels
    assert "coldbrew.engine.stage" in imported and "waitress.server" in imported, "the import log covers the server"
    assert sorted(m for m in imported if m.split(".")[0] in HEAVY) == []


HANDLER_CHILD = """
import json, sys
import coldbrew.aws
response = coldbrew.aws.handler(json.loads(sys.stdin.read()), None)
heavy = sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r})
sys.stdout.write(json.dumps({{"response": response, "heavy": heavy}}))
"""


@pytest.mark.integration
def test_pipeline_through_the_lambda_handler(tmp_path):
    """The same kind of model behind the Lambda handler (an HTTP API v2 event): strings in, the pipeline's answers
    out, and no numpy, scikit-learn or pandas imported by the function."""
    import json
    import os
    import subprocess
    import sys

    from coldbrew.convert import compile_estimator

    df = _adult()
    rng = np.random.default_rng(1)
    order = rng.permutation(len(df))
    pipe = _fitted(df.iloc[order[:4000]])
    path = tmp_path / "adult-pipeline.brew"
    compile_estimator(pipe, path)
    rows = _requests(df.iloc[order[4000:4100]], rng)
    expected = pipe.predict_proba(pd.DataFrame(rows))[:, 1].tolist()
    event = json.loads((REPO / "tests" / "events" / "http-v2-predict.json").read_text())
    event["body"] = json.dumps(rows)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODEL_", "COLDBREW_"))}
    env.update(MODEL_SOURCE="DISK", MODEL_URI=str(path), PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-c", HANDLER_CHILD.format(heavy=HEAVY)],
        input=json.dumps(event),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["heavy"] == []
    assert got["response"]["statusCode"] == 200, got["response"]
    assert [r["probability"] for r in json.loads(got["response"]["body"])] == expected


def test_gradient_boosting_pipeline_served(tmp_path):
    """A Pipeline ending in classic GradientBoosting behind the Lambda handler: the pipeline's answers for rows it
    accepts; a null in a column that would reach the model as NaN is a 400 naming that field (scikit-learn raises)."""
    import json

    from lambdatools import Context, body_of
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from coldbrew.convert import compile_estimator
    from coldbrew.runtimes.aws_lambda import init_from_env

    df = _adult()
    rng = np.random.default_rng(2)
    order = rng.permutation(len(df))
    prep = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), STRINGS),
            ("num", StandardScaler(), NUMBERS),
        ]
    )
    pipe = Pipeline([("prep", prep), ("model", GradientBoostingClassifier(n_estimators=20, random_state=0))])
    pipe.fit(df.iloc[order[:3000]][STRINGS + NUMBERS], df.iloc[order[:3000]]["income"])
    path = tmp_path / "gb-pipeline.brew"
    compile_estimator(pipe, path)
    rows = [r for r in _requests(df.iloc[order[3000:3200]], rng) if r["age"] is not None]
    frame = pd.DataFrame(rows)
    expected = [
        {"prediction": str(y), "probability": float(p[1])}
        for y, p in zip(pipe.predict(frame).tolist(), pipe.predict_proba(frame).tolist(), strict=True)
    ]
    handler = init_from_env({"MODEL_SOURCE": "DISK", "MODEL_URI": str(path)})
    event = json.loads((REPO / "tests" / "events" / "http-v2-predict.json").read_text())
    event["body"] = json.dumps(rows)
    response = handler(event, Context())
    assert response["statusCode"] == 200, response
    assert body_of(response) == expected
    event["body"] = json.dumps([dict(rows[0], age=None)])
    response = handler(event, Context())
    assert response["statusCode"] == 400 and "age" in json.dumps(body_of(response)), response
