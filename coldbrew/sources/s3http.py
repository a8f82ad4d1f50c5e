"""A small S3 reader on the standard library: SigV4-signed GET and HEAD over http.client, one connection per thread.

Why not boto3 on the cold path: importing boto3 and creating its S3 client costs 0.3-0.4 s of init before the first
byte is asked for (bench/results/s3_client.md), longer than a 31 MB model takes to arrive over Lambda's network.
This module imports in about a millisecond and needs nothing but the standard library. It reads; it never writes.

- **Credentials**: ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN`` from the environment —
  what Lambda gives every function (its execution role's temporary credentials). Without them, botocore's own
  credential chain (profiles, SSO, container and instance roles) is asked, which imports boto3 only then.
- **Endpoint**: ``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL`` (path-style requests), else
  ``https://BUCKET.s3.REGION.amazonaws.com`` (virtual-hosted; path-style for bucket names with dots).
- **Region**: ``AWS_REGION``, else ``AWS_DEFAULT_REGION``, else the profile's, else ``us-east-1``.
- **Signing**: AWS Signature Version 4, header form, as documented by AWS ("Authenticating Requests: Using the
  Authorization Header"); tests/sources/test_s3http.py checks it against AWS's published example and against
  botocore's signer, and every request the S3 tests make is verified by SeaweedFS, which enforces signatures.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import threading
import time
from collections.abc import Mapping
from urllib.parse import quote, urlsplit

from coldbrew.errors import SourceError

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_UNRESERVED = "-_.~"


class S3Error(SourceError):
    """An S3 answer that is not a success: HTTP status, S3 error code and message (code/message may be empty).

    Callers turn it into a one-line SourceError naming the object (coldbrew.sources.s3._describe)."""

    def __init__(self, status: int, code: str = "", message: str = "", attempts: int = 1):
        super().__init__(f"{status} {code} {message}".strip())
        self.status, self.code, self.message, self.attempts = status, code, message, attempts


class NoCredentials(SourceError):
    """No AWS credentials in the environment nor in botocore's chain."""


class Credentials:
    __slots__ = ("access_key", "secret_key", "token")

    def __init__(self, access_key: str, secret_key: str, token: str | None = None):
        self.access_key, self.secret_key, self.token = access_key, secret_key, token or None


def _env_credentials(environ: Mapping[str, str]) -> Credentials | None:
    key, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        return Credentials(key, secret, environ.get("AWS_SESSION_TOKEN") or environ.get("AWS_SECURITY_TOKEN"))
    return None


def _chain_credentials_and_region() -> tuple[Credentials | None, str | None]:
    """botocore's credential chain (profiles, SSO, container/instance roles): imports boto3, so only when needed."""
    import boto3  # ModuleNotFoundError names the extra to install (caller)

    session = boto3.session.Session()
    found = session.get_credentials()
    if found is None:
        return None, session.region_name
    frozen = found.get_frozen_credentials()
    return Credentials(frozen.access_key, frozen.secret_key, frozen.token), session.region_name


def sigv4_headers(
    creds: Credentials,
    region: str,
    method: str,
    host: str,
    path: str,
    query: Mapping[str, str],
    amz_date: str,
    extra: Mapping[str, str] | None = None,
    payload_hash: str = EMPTY_SHA256,
) -> dict[str, str]:
    """The headers that sign one S3 request (AWS Signature Version 4, service ``s3``).

    ``path`` is the raw key path (``/bucket/key`` or ``/key``), encoded here as S3 expects (every byte but
    unreserved characters and ``/``); ``extra`` headers are signed too. Returns every header to send, with
    ``Authorization``.
    """
    headers = {"host": host, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
    if creds.token:
        headers["x-amz-security-token"] = creds.token
    for k, v in (extra or {}).items():
        headers[k.lower()] = v
    names = sorted(headers)
    canonical_headers = "".join(f"{n}:{' '.join(str(headers[n]).split())}\n" for n in names)
    signed = ";".join(names)
    canonical_query = "&".join(
        f"{quote(k, safe=_UNRESERVED)}={quote(v, safe=_UNRESERVED)}" for k, v in sorted(query.items())
    )
    canonical = "\n".join(
        [method, quote(path, safe="/" + _UNRESERVED), canonical_query, canonical_headers, signed, payload_hash]
    )
    day = amz_date[:8]
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + creds.secret_key).encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )
    return headers


class S3Reader:
    """GET/HEAD one bucket's objects; thread-safe (each thread keeps its own keep-alive connection).

    Args:
        bucket: the bucket name.
        environ: where credentials, region and endpoint come from (normally ``os.environ``).
        timeout: socket timeout in seconds (connect and each read).

    Raises:
        NoCredentials: neither the environment nor botocore's chain has credentials.
        ModuleNotFoundError: no credentials in the environment and boto3 is not installed.
        ValueError: an endpoint URL that is not ``http(s)://host[:port]``.
    """

    def __init__(self, bucket: str, environ: Mapping[str, str], *, timeout: float = 20.0):
        creds, region = _env_credentials(environ), environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
        if creds is None:
            creds, chain_region = _chain_credentials_and_region()
            region = region or chain_region
            if creds is None:
                raise NoCredentials
        self.creds, self.region, self.timeout = creds, region or "us-east-1", timeout
        endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            parts = urlsplit(endpoint)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"endpoint URL {endpoint!r} is not http(s)://host[:port]")
            self.scheme, self.host = parts.scheme, parts.netloc
            self.prefix = parts.path.rstrip("/") + f"/{bucket}"
        elif "." in bucket:  # a dotted name cannot be a TLS host name under *.amazonaws.com
            self.scheme, self.host, self.prefix = "https", f"s3.{self.region}.amazonaws.com", f"/{bucket}"
        else:
            self.scheme, self.host, self.prefix = "https", f"{bucket}.s3.{self.region}.amazonaws.com", ""
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self.scheme == "https":
                import ssl

                conn = http.client.HTTPSConnection(
                    self.host, timeout=self.timeout, context=ssl.create_default_context()
                )
            else:
                conn = http.client.HTTPConnection(self.host, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def drop_connection(self) -> None:
        """Close this thread's connection (after an error, or to stop reading a body): the next request opens
        a new one, as AWS advises for retries."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    def request(
        self, method: str, key: str, *, query: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None
    ) -> http.client.HTTPResponse:
        """Send one signed request and return the response with its headers read (the body is the caller's).

        A non-2xx answer is read whole and raised as :class:`S3Error`; connection problems raise OSError or
        http.client.HTTPException (the caller retries).
        """
        query = dict(query or {})
        path = f"{self.prefix}/{key}"
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        headers = dict(headers or {})
        amz = {k: v for k, v in headers.items() if k.lower().startswith("x-amz-")}  # S3 wants these signed
        signed = sigv4_headers(self.creds, self.region, method, self.host, path, query, amz_date, extra=amz)
        signed.update({k: v for k, v in headers.items() if k not in amz})
        target = quote(path, safe="/" + _UNRESERVED)
        if query:
            target += "?" + "&".join(
                f"{quote(k, safe=_UNRESERVED)}={quote(v, safe=_UNRESERVED)}" for k, v in query.items()
            )
        conn = self._connection()
        try:
            conn.request(method, target, headers=signed)
            response = conn.getresponse()
        except BaseException:
            self.drop_connection()
            raise
        if response.status >= 300:
            body = response.read() if method != "HEAD" else b""
            if response.will_close:
                self.drop_connection()
            raise S3Error(response.status, *_error_fields(body))
        return response


def _error_fields(body: bytes) -> tuple[str, str]:
    """(Code, Message) of an S3 XML error body; empty strings when there is none (a HEAD) or it is not XML."""
    if not body:
        return "", ""
    import xml.etree.ElementTree as ET  # only on error paths

    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return "", ""
    return (root.findtext("Code") or "").strip()[:100], " ".join((root.findtext("Message") or "").split())[:300]
