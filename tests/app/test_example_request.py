"""``example_request(contract)`` builds a request the real app answers with 200, for real models."""

from __future__ import annotations

import pytest
from families import SERVED
from test_app import call

from coldbrew.app import create_app
from coldbrew.app.contract import contract_of, example_request


@pytest.mark.parametrize("name", SERVED)
def test_the_example_is_answered(families, name):
    from coldbrew.engine import load_predictor

    predictor = load_predictor(families[name].brew)
    contract = contract_of(predictor)
    example = example_request(contract)
    assert list(example) == list(predictor.feature_names)
    status, _, body = call(create_app(predictor), "POST", "/predict", example)
    assert status == 200, body
