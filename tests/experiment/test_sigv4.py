"""SigV4 signing for endpoints behind AWS_IAM (`package --auth iam`): `coldbrew warm` and `coldbrew loadtest`.

No AWS here, so the endpoint is a local server that does what API Gateway's IAM authorizer does first: it
recomputes each request's SigV4 signature from what arrived on the wire (method, Host, path, body, signed
headers, X-Amz-Date) with the caller's secret key, and answers 403 unless it matches.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from coldbrew.errors import ColdbrewError
from coldbrew.experiment.sigv4 import Scope, make_signer, scope_for

KEY_ID, SECRET_KEY, TOKEN = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token-example"
REGION = "eu-west-1"
WARM_SECRET = "doors-test-secret"
CREDENTIALS_ENV = {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_SESSION_TOKEN": TOKEN}
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
    r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$"
)


def signature_is_valid(method: str, path: str, headers, body: bytes) -> bool:
    """Recompute the request's signature as AWS would, from the received request only."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    headers = {name.lower(): value for name, value in headers.items()}
    match = _AUTH.match(headers.get("authorization", ""))
    if not match or match.group(1) != KEY_ID or match.group(3) != REGION or match.group(4) != "execute-api":
        return False
    if headers.get("x-amz-security-token") != TOKEN:
        return False
    signed = match.group(5).split(";")
    request = AWSRequest(
        method=method,
        url=f"http://{headers['host']}{path}",
        data=body,
        headers={h: headers[h] for h in signed if h != "host"},
    )
    request.context["timestamp"] = headers["x-amz-date"]
    auth = SigV4Auth(Credentials(KEY_ID, SECRET_KEY, TOKEN), "execute-api", REGION)
    expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    return expected == match.group(6)


class IamEndpoint(BaseHTTPRequestHandler):
    """/predict and /_warm behind a SigV4 check; each warm-up answers from a new 'environment'."""

    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[int]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not signature_is_valid("POST", self.path, self.headers, body):
            status, answer = 403, {"message": "Forbidden"}
        elif self.path == "/_warm" and self.headers.get("X-Coldbrew-Warm-Secret") != WARM_SECRET:
            status, answer = 403, {"error": "secret"}
        elif self.path == "/_warm":
            status, answer = 200, {"env": uuid.uuid4().hex, "cold": True, "held_ms": json.loads(body)["hold_ms"]}
        else:
            status, answer = 200, {"probability": 0.25}
        self.seen.append(status)
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Coldbrew-Env", "e1")
        self.send_header("X-Coldbrew-Cold", "0")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), IamEndpoint)
    IamEndpoint.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_scope_from_aws_host_names():
    assert scope_for("https://abc123.execute-api.us-east-2.amazonaws.com/") == Scope("us-east-2", "execute-api")
    assert scope_for("https://xyz.lambda-url.ap-south-1.on.aws/") == Scope("ap-south-1", "lambda")
    assert scope_for("http://127.0.0.1:9000", region="eu-west-1") == Scope("eu-west-1", "execute-api")
    assert Scope.from_option(Scope("eu-west-1", "lambda").to_option()) == Scope("eu-west-1", "lambda")
    with pytest.raises(ColdbrewError, match="--region"):
        scope_for("http://127.0.0.1:9000")
    with pytest.raises(ColdbrewError, match="REGION:SERVICE"):
        Scope.from_option("eu-west-1:s3")


def test_a_signature_covers_the_body():
    """Sanity of the verifying endpoint: a signed request passes, the same signature on another body fails."""
    from botocore.credentials import Credentials

    sign = make_signer(Scope(REGION, "execute-api"), Credentials(KEY_ID, SECRET_KEY, TOKEN))
    headers = sign("POST", "http://127.0.0.1:8080/predict", b'{"a": 1}', {"Content-Type": "application/json"})
    headers["Host"] = "127.0.0.1:8080"
    assert signature_is_valid("POST", "/predict", headers, b'{"a": 1}')
    assert not signature_is_valid("POST", "/predict", headers, b'{"a": 2}')
    assert not signature_is_valid("POST", "/_warm", headers, b'{"a": 1}')


def _coldbrew(*argv, env=None, timeout=120):
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "COLDBREW_WARM_SECRET"}
    base["AWS_CONFIG_FILE"] = base["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull  # no profile from this machine
    return subprocess.run(
        [sys.executable, "-m", "coldbrew", *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env={**base, **(env or {})},
    )


def test_warm_signs_its_requests(endpoint):
    argv = ["warm", endpoint, "-x", "3", "--json", "--secret", WARM_SECRET, "--region", REGION, "--hold", "100ms"]
    signed = _coldbrew(*argv, "--sigv4", env=CREDENTIALS_ENV)
    assert signed.returncode == 0, signed.stderr
    assert json.loads(signed.stdout)["distinct_envs"] == 3 and IamEndpoint.seen == [200] * 3
    unsigned = _coldbrew(*argv, env=CREDENTIALS_ENV)
    assert unsigned.returncode == 1 and IamEndpoint.seen[3:] == [403] * 3
    no_credentials = _coldbrew(*argv, "--sigv4")
    assert no_credentials.returncode == 1 and "no AWS credentials" in no_credentials.stderr
    assert "Traceback" not in no_credentials.stderr


@pytest.mark.integration
def test_loadtest_signs_every_request(endpoint, tmp_path):
    argv = [
        "loadtest",
        "--host",
        endpoint,
        "--users",
        "2",
        "--spawn-rate",
        "2",
        "--run-time",
        "4s",
        "--region",
        REGION,
        "--out",
        str(tmp_path / "signed"),
    ]
    signed = _coldbrew(*argv, "--sigv4", env=CREDENTIALS_ENV, timeout=180)
    assert signed.returncode == 0, signed.stderr
    run = json.loads((tmp_path / "signed" / "run.json").read_text())
    assert run["requests"] >= 2 and run["failures"] == 0, run
    assert IamEndpoint.seen and set(IamEndpoint.seen) == {200}
    no_credentials = _coldbrew(*argv[:-1], str(tmp_path / "none"), "--sigv4")
    assert no_credentials.returncode == 1 and "no AWS credentials" in no_credentials.stderr
