"""The study's locust user, run by ``coldbrew loadtest`` (``python -m locust -f <this file> ...``).

Each user POSTs the payload to ``/predict`` and waits 3–5 s, as the study's locustfile did. After every
request it logs the latency (ms, two decimals) on the root logger — with locust's ``--logfile`` that gives
the study's ``[YYYY-mm-dd HH:MM:SS,mmm] host/INFO/root: <ms>`` lines — and appends one JSON line to our
structured file with the status and the ``X-Coldbrew-Env`` / ``X-Coldbrew-Cold`` headers.

Extra locust options: ``--coldbrew-payload FILE`` (JSON body; default: the study's row),
``--coldbrew-requests FILE`` (where the JSON lines go; default: none) and ``--coldbrew-sigv4 REGION:SERVICE``
(sign every request with SigV4, for an endpoint packaged with ``--auth iam``; default: unsigned).
"""

from __future__ import annotations

import json
import logging
import time

from locust import HttpUser, between, events, task

from coldbrew.experiment.dataset import STUDY_PAYLOAD
from coldbrew.experiment.results import request_record, study_log_message

_state: dict = {"payload": STUDY_PAYLOAD, "out": None, "sign": None}


@events.init_command_line_parser.add_listener
def _add_options(parser, **_kwargs):
    parser.add_argument("--coldbrew-payload", default="", help="JSON file to POST to /predict")
    parser.add_argument("--coldbrew-requests", default="", help="append one JSON line per request here")
    parser.add_argument("--coldbrew-sigv4", default="", help="REGION:SERVICE to sign requests with SigV4")


@events.init.add_listener
def _open_outputs(environment, **_kwargs):
    options = environment.parsed_options
    if options is None:
        return
    if options.coldbrew_payload:
        with open(options.coldbrew_payload, encoding="utf-8") as fh:
            _state["payload"] = json.load(fh)
    if options.coldbrew_sigv4:
        from coldbrew.experiment.sigv4 import Scope, make_signer

        _state["sign"] = make_signer(Scope.from_option(options.coldbrew_sigv4))
    if options.coldbrew_requests:
        _state["out"] = open(options.coldbrew_requests, "a", encoding="utf-8")  # noqa: SIM115 - closed on quit


@events.request.add_listener
def _record(response_time, response, exception, start_time=None, **_kwargs):
    logging.info(study_log_message(response_time))
    out = _state["out"]
    if out is None:
        return
    end = (start_time if start_time is not None else time.time() - response_time / 1000.0) + response_time / 1000.0
    status = getattr(response, "status_code", 0) or 0
    headers = getattr(response, "headers", None)
    record = request_record(end, response_time, status, headers, None if exception is None else str(exception))
    out.write(json.dumps(record) + "\n")
    out.flush()


@events.quitting.add_listener
def _close_outputs(**_kwargs):
    if _state["out"] is not None:
        _state["out"].close()
        _state["out"] = None


class StudyUser(HttpUser):
    """The study's user: one prediction every 3–5 seconds."""

    wait_time = between(3, 5)

    @task
    def predict(self):
        """POST the payload to /predict (signed, each request on its own, when asked)."""
        sign = _state["sign"]
        if sign is None:
            self.client.post("/predict", json=_state["payload"])
            return
        body = json.dumps(_state["payload"]).encode()
        url = self.client.base_url.rstrip("/") + "/predict"  # the URL requested: --host without any user:password
        headers = sign("POST", url, body, {"Content-Type": "application/json"})
        self.client.post("/predict", data=body, headers=headers)
