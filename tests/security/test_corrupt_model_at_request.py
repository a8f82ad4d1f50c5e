"""Corruption met while predicting (a re-signed .brew with NaN leaves) is a clean 500 and one log line.

The per-node checks of both kernels find it (docs/format.md section 5); the app answers with a JSON 500 that
says the model is corrupt — the client did nothing wrong — and logs one line naming the file and the problem,
not a traceback.
"""

from __future__ import annotations

import io
import json
import logging
from wsgiref.util import setup_testing_defaults

import pytest
from test_crafted_headers import craft, edit_nodes, set_leaves_of_tree0

from coldbrew.app import create_app
from coldbrew.engine.brew import KERNELS, BrewPredictor
from coldbrew.experiment.dataset import STUDY_PAYLOAD


def post(app, payload):
    raw = json.dumps(payload).encode()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/predict",
        "wsgi.input": io.BytesIO(raw),
        "CONTENT_LENGTH": str(len(raw)),
        "CONTENT_TYPE": "application/json",
    }
    setup_testing_defaults(environ)
    seen = {}
    out = b"".join(app(environ, lambda status, headers, exc_info=None: seen.update(status=int(status[:3]))))
    return seen["status"], json.loads(out)


@pytest.mark.parametrize("kernel", KERNELS)
def test_nan_leaves_are_a_clean_500_with_one_log_line(tiny_brew, tmp_path, caplog, kernel):
    path = tmp_path / "nan-leaves.brew"
    path.write_bytes(craft(tiny_brew.read_bytes(), edit_nodes(set_leaves_of_tree0("value", float("nan")))))
    app = create_app(BrewPredictor(path, kernel=kernel))
    with caplog.at_level(logging.ERROR, logger="coldbrew.app"):
        status, body = post(app, STUDY_PAYLOAD)
    assert status == 500 and body == {"error": "the model file is corrupt", "field": None, "index": None}
    assert "non-finite leaf value" in caplog.text and str(path) in caplog.text
    assert "Traceback" not in caplog.text and len(caplog.records) == 1
