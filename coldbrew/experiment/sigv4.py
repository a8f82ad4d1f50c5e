"""SigV4-signed HTTP requests, so `coldbrew loadtest` and `coldbrew warm` reach an endpoint behind AWS_IAM.

``coldbrew package --auth iam`` puts the HTTP API behind IAM authorization: API Gateway (or a Function URL)
then accepts only requests signed with AWS Signature Version 4 by a principal allowed to invoke it. The
signature covers the method, host, path, query, body and a timestamp, so every request is signed on its own,
just before it is sent. Credentials come from botocore's usual chain (environment, profile, SSO, instance
role); botocore is imported only when signing is asked for.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from coldbrew.errors import ColdbrewError

# https://ID.execute-api.REGION.amazonaws.com/ (HTTP and REST APIs) and https://ID.lambda-url.REGION.on.aws/
_AWS_HOSTS = (
    (re.compile(r"^[^.]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$"), "execute-api"),
    (re.compile(r"^[^.]+\.lambda-url\.([a-z0-9-]+)\.on\.aws$"), "lambda"),
)
SERVICES = ("execute-api", "lambda")

Signer = Callable[[str, str, bytes, dict], dict]


@dataclass(frozen=True)
class Scope:
    """Where a signature is valid: the AWS region and service (``execute-api`` or ``lambda``)."""

    region: str
    service: str

    def to_option(self) -> str:
        """``REGION:SERVICE``, as the locustfile's ``--coldbrew-sigv4`` takes it."""
        return f"{self.region}:{self.service}"

    @classmethod
    def from_option(cls, text: str) -> Scope:
        """The inverse of :meth:`to_option`."""
        region, _, service = text.partition(":")
        if not region or service not in SERVICES:
            raise ColdbrewError(f"SigV4 scope {text!r}: expected REGION:SERVICE with SERVICE one of {SERVICES}")
        return cls(region, service)


def scope_for(url: str, region: str | None = None, service: str | None = None) -> Scope:
    """The signing scope for ``url``: from an AWS endpoint's host name, or the given region/service."""
    host = (urlsplit(url).hostname or "").lower()
    for pattern, host_service in _AWS_HOSTS:
        match = pattern.match(host)
        if match:
            return Scope(region or match.group(1), service or host_service)
    if not region:
        raise ColdbrewError(f"cannot tell the AWS region from {host or url!r}: pass --region to sign requests for it")
    if service is not None and service not in SERVICES:
        raise ColdbrewError(f"SigV4 service must be one of {', '.join(SERVICES)}, not {service!r}")
    return Scope(region, service or "execute-api")


def make_signer(scope: Scope, credentials=None) -> Signer:
    """``sign(method, url, body, headers) -> headers``: the headers to send, with the SigV4 ones added.

    ``credentials`` defaults to botocore's credential chain; no credentials is a one-line ColdbrewError.
    """
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    if credentials is None:
        import botocore.session

        credentials = botocore.session.get_session().get_credentials()
        if credentials is None:
            raise ColdbrewError(
                "--sigv4: no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID/"
                "AWS_SECRET_ACCESS_KEY, or run `aws sso login`)"
            )
    auth = SigV4Auth(credentials, scope.service, scope.region)

    def sign(method: str, url: str, body: bytes, headers: dict) -> dict:
        request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
        auth.add_auth(request)
        return dict(request.headers.items())

    return sign
