"""Glue between an HTTP request and SigV4 verification.

Theory of operation
-------------------
``titans3.s3.sigv4`` is sans-I/O and wants the request exactly as it came off
the wire: the percent-encoded path, the raw query string and lower-case header
names.  This module extracts those from the ASGI scope (never from the
framework's decoded path, which has already lost ``%2F`` vs ``/``), asks the
credential source for the secret, and returns the ``AuthResult``.

Identity model for now: every valid access key may use the S3 API; only the
root access key may use the admin API (:func:`require_root`).  Per-key policies
come later and will hook in here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Protocol

from titans3.core.errors import AccessDenied
from titans3.s3 import sigv4
from titans3.s3.sigv4 import AuthResult


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
) -> AuthResult:
    """Verify the request's SigV4 signature (header or presigned) or raise an S3Error.

    Only credentials scoped to ``region`` are accepted, as AWS does; the error
    names the expected region so SDKs can correct themselves.
    """
    return sigv4.verify_request(
        method,
        raw_path,
        raw_query,
        headers,
        get_secret=credentials.get_secret,
        now=now or dt.datetime.now(dt.UTC),
        region=region,
    )


def require_root(auth: AuthResult, credentials: Credentials) -> None:
    """The admin API is for the root access key only."""
    if auth.access_key != credentials.root_access_key:
        raise AccessDenied()
