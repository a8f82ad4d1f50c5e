"""A model with an input stage (format version 3) served in-process: string fields, their errors, the contract."""

from __future__ import annotations

import pytest
from test_app import bad, call
from test_openapi import _strings_model

from coldbrew.app import create_app
from coldbrew.app.contract import contract_of, example_request


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    from coldbrew.engine import load_predictor

    return load_predictor(_strings_model(tmp_path_factory.mktemp("strings")))


@pytest.fixture(scope="module")
def app(predictor):
    return create_app(predictor)


ROW = {"city": "Oslo", "plan": "pro", "spend": 120.5, "note": "x"}


def test_contract_has_string_enum_number_and_any_fields(predictor):
    c = contract_of(predictor)
    assert c.features == ("city", "plan", "spend", "note")
    assert c.types == ("string", "string", "number", "any")
    assert c.closed == (False, True, False, False) and c.categories[1] == ("free", "pro")
    assert c.nullable[1] is False  # the OrdinalEncoder refuses a missing plan
    status, _, body = call(create_app(predictor), "POST", "/predict", example_request(c))
    assert status == 200, body


def test_unseen_city_is_answered_and_unseen_plan_is_a_400(app, predictor):
    status, _, body = call(app, "POST", "/predict", dict(ROW, city="Reykjavik"))
    assert status == 200 and body["probability"] == predictor.predict_proba([["Reykjavik", "pro", 120.5, "x"]])[0][1]
    got = bad(app, dict(ROW, plan="gold"))
    assert "'gold' is not a category the model knows" in got["error"] and "\n" not in got["error"]


@pytest.mark.parametrize(
    ("row", "field", "words"),
    [
        (dict(ROW, spend="a lot"), "spend", "must be a number"),
        (dict(ROW, city=7), "city", "must be a string"),
        (dict(ROW, plan=None), "plan", "must be a string"),
        ({k: v for k, v in ROW.items() if k != "city"}, "city", "missing field"),
    ],
)
def test_wrong_types_name_the_field(app, row, field, words):
    got = bad(app, row)
    assert got["field"] == field and words in got["error"]


def test_rows_by_name_only(app):
    assert "by name only" in bad(app, ["Oslo", "pro", 1.0, "x"])["error"]
    assert "by name only" in bad(app, [["Oslo", "pro", 1.0, "x"]])["error"]


def test_openapi_describes_the_fields(app):
    _, _, doc = call(app, "GET", "/openapi.json")
    props = doc["components"]["schemas"]["Row"]["properties"]
    assert props["city"]["type"] == "string" and "enum" not in props["city"] and "Oslo" in props["city"]["description"]
    assert props["plan"]["enum"] == ["free", "pro"]
    assert props["spend"]["type"] == "number" and "type" not in props["note"]
