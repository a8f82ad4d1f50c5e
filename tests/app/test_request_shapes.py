"""The request shapes beside named fields (issue #22): positional rows, batches of them, ``{"instances": [...]}``.

In-process against the real engine; every answer is compared with the named-field request's answer, which
tests/app/test_app.py compares with scikit-learn's own. Every malformed shape is a 4xx JSON naming the problem.
"""

from __future__ import annotations

import pytest
from test_app import bad, call

from coldbrew.app import create_app
from coldbrew.experiment.dataset import FEATURES, STUDY_PAYLOAD

ROW = [STUDY_PAYLOAD[name] for name in FEATURES]
OTHER = {**STUDY_PAYLOAD, "capital_gain": 15024, "education_num": 16}
OTHER_ROW = [OTHER[name] for name in FEATURES]


@pytest.fixture(scope="module")
def predictor(tiny_model):
    from coldbrew.engine import load_predictor

    return load_predictor(tiny_model, allow_pickle=True)


@pytest.fixture(scope="module")
def app(predictor):
    return create_app(predictor, max_body_bytes=4096, max_rows=5)


def answer(app, body):
    status, _, got = call(app, "POST", "/predict", body)
    assert status == 200, got
    return got


def test_the_issue_payload_is_the_study_payload_by_position():
    assert ROW == [34, 261799, 11, 0, 0, 56], "the issue's acceptance payload"


def test_a_bare_positional_row_answers_like_the_named_row(app):
    assert answer(app, ROW) == answer(app, STUDY_PAYLOAD)


def test_a_batch_of_positional_rows_answers_like_the_named_batch(app):
    assert answer(app, [ROW, OTHER_ROW]) == answer(app, [STUDY_PAYLOAD, OTHER])


@pytest.mark.parametrize("rows", [[ROW], [ROW, OTHER_ROW], [STUDY_PAYLOAD], [STUDY_PAYLOAD, OTHER]])
def test_instances_answer_a_list_like_the_named_batch(app, rows):
    named = [dict(zip(FEATURES, r, strict=True)) if isinstance(r, list) else r for r in rows]
    assert answer(app, {"instances": rows}) == answer(app, named)


def test_the_answers_differ_between_rows(app):
    """Guards the comparisons above: the two rows get different answers."""
    first, second = answer(app, [STUDY_PAYLOAD, OTHER])
    assert first != second


@pytest.mark.parametrize("values", [ROW[:-1], [*ROW, 1], []])
def test_a_positional_row_of_the_wrong_length_says_how_many_and_which(app, values):
    got = bad(app, {"instances": [values]} if not values else values)
    assert f"the model takes {len(FEATURES)}" in got["error"]
    assert ", ".join(FEATURES) in got["error"]


def test_wrong_length_in_a_batch_names_the_row(app):
    got = bad(app, [ROW, ROW[:3]])
    assert got["index"] == 1 and "3 values" in got["error"]


@pytest.mark.parametrize(
    "value, word", [("34", "string"), (True, "boolean"), (None, "null"), ([34], "array"), ({"v": 1}, "object")]
)
def test_a_positional_value_that_is_not_a_number_names_its_feature(app, value, word):
    got = bad(app, [*ROW[:2], value, *ROW[3:]])
    assert got["field"] == FEATURES[2] and got["index"] is None and word in got["error"]
    got = bad(app, {"instances": [ROW, [*ROW[:2], value, *ROW[3:]]]})
    assert (got["field"], got["index"]) == (FEATURES[2], 1)


@pytest.mark.parametrize("value", [3.5e38, 10**39])
def test_positional_values_beyond_float32_are_rejected(app, value):
    assert bad(app, [ROW[0], value, *ROW[2:]])["field"] == FEATURES[1]


@pytest.mark.parametrize(
    "body, index",
    [
        ([ROW, STUDY_PAYLOAD], 1),
        ([STUDY_PAYLOAD, ROW], 1),
        ({"instances": [STUDY_PAYLOAD, STUDY_PAYLOAD, ROW]}, 2),
        ({"instances": [ROW, 7]}, 1),
    ],
)
def test_rows_of_mixed_shapes_are_refused(app, body, index):
    got = bad(app, body)
    assert got["index"] == index and "mixed shapes" in got["error"]


@pytest.mark.parametrize("body", [[ROW] * 6, {"instances": [STUDY_PAYLOAD] * 6}, [STUDY_PAYLOAD] * 6])
def test_too_many_rows_is_413(predictor, body):
    got = bad(create_app(predictor, max_rows=5), body, status=413)
    assert "6 rows" in got["error"] and "limit is 5" in got["error"]


@pytest.mark.parametrize(
    "body",
    [
        {"instances": []},
        {"instances": [7]},
        {"instances": [[ROW]]},
        {"instances": ROW, "extra": 1},
        {"instances": "x"},
        [[ROW, ROW]],
    ],
)
def test_malformed_instances_are_400(app, body):
    bad(app, body)


def test_deeply_nested_instances_are_400(predictor):
    depth = 100_000
    raw = b'{"instances": ' + b"[" * depth + b"]" * depth + b"}"
    bad(create_app(predictor), raw)


def test_null_at_a_position_that_takes_missing_values(families):
    from coldbrew.engine import load_predictor

    family = families["nullable"]
    app = create_app(load_predictor(family.brew or family.pickle, allow_pickle=True))
    import numpy as np

    i = next(i for i, row in enumerate(family.X) if np.isnan(row).any())  # a held-out row with a missing value
    named = family.row(i)
    positional = [named[f] for f in family.features]
    assert None in positional
    assert answer(app, positional) == answer(app, named) == family.expected(family.X[i : i + 1], "pickle")[0]


def test_openapi_documents_every_shape(app):
    doc = call(app, "GET", "/openapi.json")[2]
    schemas = doc["components"]["schemas"]
    body = doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {ref["$ref"].rsplit("/", 1)[1] for ref in body["oneOf"]} == {
        "Row",
        "PositionalRow",
        "Batch",
        "PositionalBatch",
        "Instances",
    }
    assert schemas["PositionalRow"]["minItems"] == schemas["PositionalRow"]["maxItems"] == len(FEATURES)
    assert schemas["Batch"]["maxItems"] == schemas["PositionalBatch"]["maxItems"] == 5
    assert schemas["Instances"]["required"] == ["instances"]
