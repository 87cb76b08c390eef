"""Glue between an HTTP request and SigV4 verification.

Theory of operation
-------------------
``titans3.s3.sigv4`` is sans-I/O and wants the request exactly as it came off
the wire: the percent-encoded path, the raw query string and lower-case header
names.  This module extracts those from the ASGI scope (never from the
framework's decoded path, which has already lost ``%2F`` vs ``/``), asks the
credential source for the secret, and returns the ``AuthResult``.

SigV2 (when enabled) and anonymous requests are recognised here too; what an
authenticated (or anonymous) caller may do is decided afterwards, by
``titans3.s3.authorize``.  Only the root access key may use the admin API
(:func:`require_root`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Protocol

from titans3.core.errors import AccessDenied
from titans3.s3 import sigv2, sigv4
from titans3.s3.sigv4 import AuthResult, PayloadMode


class Credentials(Protocol):
    """Where secrets come from (the daemon backs this with the encrypted key store)."""

    root_access_key: str

    def get_secret(self, access_key: str) -> str | None: ...


def headers_from_scope(raw_headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """Lower-case name -> value (latin-1, as on the wire); repeats joined with ``,``."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in raw_headers:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return headers


def raw_target(raw_path: bytes, query_string: bytes) -> tuple[str, str]:
    """The request target as ASCII text: non-ASCII path bytes become ``%XX``.

    Well-behaved clients percent-encode everything; this keeps a stray UTF-8
    byte from being reinterpreted when the path is decoded for routing.
    """
    if raw_path.isascii():
        path = raw_path.decode("ascii")
    else:
        path = "".join(chr(b) if b < 0x80 else f"%{b:02X}" for b in raw_path)
    return path or "/", query_string.decode("latin-1")


def authenticate(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    *,
    credentials: Credentials,
    region: str,
    now: dt.datetime | None = None,
    sigv2_enabled: bool = False,
    vhost_bucket: str | None = None,
    anonymous: bool = False,
) -> AuthResult:
    """Verify the request's signature or raise an S3Error.

    SigV4 (header or presigned): only credentials scoped to ``region`` are
    accepted, as AWS does; the error names the expected region so SDKs can
    correct themselves.  SigV2 (``sigv2_enabled``): header or query, verified
    by ``titans3.s3.sigv2`` (``vhost_bucket`` is the bucket the Host header
    named, part of what SigV2 signs).  With ``anonymous``, a request carrying
    no credentials at all is :data:`ANONYMOUS_AUTH` -- whether it may do
    anything is the authorization step's decision -- otherwise AccessDenied.
    """
    now = now or dt.datetime.now(dt.UTC)
    if sigv2_enabled and sigv2.is_sigv2(raw_query, headers) and not _also_v4(raw_query, headers):
        return sigv2.verify_request(method, raw_path, raw_query, headers, get_secret=credentials.get_secret,
                                    now=now, region=region, vhost_bucket=vhost_bucket)  # fmt: skip
    if anonymous and sigv4.is_anonymous(raw_query, headers):
        return ANONYMOUS_AUTH
    return sigv4.verify_request(
        method,
        raw_path,
        raw_query,
        headers,
        get_secret=credentials.get_secret,
        now=now,
        region=region,
    )


def _also_v4(raw_query: str, headers: Mapping[str, str]) -> bool:
    """SigV2 credentials together with SigV4 ones: sigv4 reports "one mechanism only"."""
    return "authorization" in headers and any(
        p in raw_query for p in ("X-Amz-Signature", "X-Amz-Credential", "AWSAccessKeyId"))


# The AuthResult of a request that carries no credentials (see ``authenticate``).
ANONYMOUS_AUTH = AuthResult(
    access_key="", region="", service="s3", date="", amz_date="", signing_key=b"", seed_signature="",
    payload_mode=PayloadMode.UNSIGNED, payload_sha256=None, presigned=False, scope="",
)


def require_root(auth: AuthResult, credentials: Credentials) -> None:
    """The admin API is for the root access key only."""
    if auth.access_key != credentials.root_access_key:
        raise AccessDenied()
