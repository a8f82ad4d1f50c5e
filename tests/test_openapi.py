"""Property-based API testing: schemathesis drives the in-process WSGI app from its own /openapi.json.

Every operation gets positive and negative examples (bounded); every response must be non-5xx, have a documented
status and content type, and match the documented schema.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from coldbrew.app import create_app


@pytest.fixture(scope="module")
def api_schema(tiny_model):
    from coldbrew.engine import load_predictor

    app = create_app(load_predictor(tiny_model, allow_pickle=True))
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
# scikit-learn's fast finiteness check sums X and overflows for values near ±3.4e38 before its exact check passes.
@pytest.mark.filterwarnings("ignore:invalid value encountered in reduce:RuntimeWarning")
@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case):
    case.call_and_validate()
