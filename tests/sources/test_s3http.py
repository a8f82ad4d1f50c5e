"""The stdlib S3 reader's SigV4 signer (coldbrew/sources/s3http.py) against AWS's published example and botocore.

Every request the S3 tests make is also checked by SeaweedFS, which enforces signatures (a wrong one is a 403:
tests/sources/test_sources_s3.py::test_wrong_credentials_are_denied).
"""

from __future__ import annotations

import datetime
from urllib.parse import quote

import pytest

from coldbrew.sources.s3http import Credentials, sigv4_headers

EXAMPLE_KEY = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")


def test_awss_published_get_object_example():
    """AWS's "Example: GET Object" (Signature Version 4, Authorization header, single chunk): the 10 first bytes
    of examplebucket/test.txt on 2013-05-24, with the Range header signed."""
    headers = sigv4_headers(
        EXAMPLE_KEY,
        "us-east-1",
        "GET",
        "examplebucket.s3.amazonaws.com",
        "/test.txt",
        {},
        "20130524T000000Z",
        extra={"Range": "bytes=0-9"},
    )
    assert headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


@pytest.mark.parametrize(
    "path, query, token",
    [
        ("/bucket/models/m.brew", {}, None),
        ("/bucket/a key/with spaces+plus&amp=é.pkl", {"partNumber": "1"}, "session/token+=="),
        ("/m.brew", {"partNumber": "12", "versionId": "a b"}, "tok"),
    ],
)
def test_the_same_signature_as_botocore(monkeypatch, path, query, token):
    botocore_auth = pytest.importorskip("botocore.auth")
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotoCredentials

    when = datetime.datetime(2026, 12, 4, 17, 30, 5)
    monkeypatch.setattr(botocore_auth, "get_current_datetime", lambda: when)
    host = "s3.eu-west-1.amazonaws.com"
    url = f"https://{host}{quote(path, safe='/-_.~')}"
    if query:
        url += "?" + "&".join(f"{k}={quote(v, safe='-_.~')}" for k, v in query.items())
    request = AWSRequest(method="GET", url=url, headers={})
    creds = BotoCredentials(EXAMPLE_KEY.access_key, EXAMPLE_KEY.secret_key, token)
    botocore_auth.S3SigV4Auth(creds, "s3", "eu-west-1").add_auth(request)
    ours = sigv4_headers(
        Credentials(EXAMPLE_KEY.access_key, EXAMPLE_KEY.secret_key, token),
        "eu-west-1",
        "GET",
        host,
        path,
        query,
        when.strftime("%Y%m%dT%H%M%SZ"),
    )
    assert ours["authorization"] == request.headers["Authorization"]


@pytest.mark.integration
def test_x_amz_headers_are_signed_and_s3_gives_no_checksum_for_a_range(s3_server, bucket):
    """An ``x-amz-*`` header must be signed (SeaweedFS refuses it otherwise). And the reason coldbrew proves a
    download by the whole file's digest: a whole-object GET with checksum mode returns the object's CRC32, a
    ranged GET returns none (as S3 documents)."""
    import os

    from coldbrew.sources.s3http import S3Reader

    s3_server.client().put_object(Bucket=bucket, Key="k", Body=os.urandom(3 << 20), ChecksumAlgorithm="CRC32")
    reader = S3Reader(bucket, s3_server.env())
    whole = reader.request("GET", "k", headers={"x-amz-checksum-mode": "ENABLED"})
    whole.read()
    assert whole.getheader("x-amz-checksum-crc32")
    part = reader.request("GET", "k", headers={"x-amz-checksum-mode": "ENABLED", "Range": "bytes=0-1023"})
    assert len(part.read()) == 1024 and part.getheader("x-amz-checksum-crc32") is None
    reader.drop_connection()
