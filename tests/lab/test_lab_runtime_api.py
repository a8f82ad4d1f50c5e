"""The lab's Runtime API as the function sees it (docs/lab.md, "Runtime API"): an unknown request id gets
`400 InvalidRequestID`, and such a post does not answer the invocation in progress."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from coldbrew.lab import Lab, LabConfig

HANDLERS = Path(__file__).parents[1] / "handlers"

pytestmark = pytest.mark.integration


def test_unknown_request_id_is_400_invalid_request_id(tmp_path):
    config = LabConfig(
        handler="runtime_probe.handler",
        task_root=HANDLERS,
        memory_mb=256,
        function_output=tmp_path / "function.log",
        report=False,
    )
    with Lab(config) as lab, urllib.request.urlopen(lab.url + "/", timeout=60) as response:
        status, body = response.status, json.load(response)
    bogus = "00000000-0000-0000-0000-000000000000"
    expected = [400, {"errorType": "InvalidRequestID", "errorMessage": f"Invalid request ID: {bogus}"}]
    assert body["unknown_response"] == expected
    assert body["unknown_error"] == expected
    # The invocation in progress was answered by the function's own result, not by the bogus posts.
    assert status == 200 and body["request_id"] != bogus
