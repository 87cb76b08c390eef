"""Client-side SigV4 signing: header-signed requests and presigned URLs.

Used by titanctl and the admin tools, and by tests as an independent check of
the verifier in :mod:`titans3.s3.sigv4`; both share its canonicalisation
primitives, which are what AWS's published vectors pin down.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from titans3.s3.sigv4 import (
    _UNSIGNABLE,
    ALGORITHM,
    AMZ_DATE_FORMAT,
    MAX_PRESIGN_EXPIRES,
    UNSIGNED_PAYLOAD,
    _utc,
    canonical_query,
    canonical_request,
    derive_signing_key,
    parse_query,
    scope_of,
    sign,
    string_to_sign,
    uri_encode,
)


def _host_of(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(parts.scheme)
    if parts.port is not None and parts.port != default:
        host = f"{host}:{parts.port}"
    return host


def sign_request(
    method: str,
    url: str,
    headers: Mapping[str, str],
    *,
    access_key: str,
    secret_key: str,
    region: str = "us-east-1",
    payload_sha256: str = UNSIGNED_PAYLOAD,
    now: _dt.datetime | None = None,
) -> dict[str, str]:
    """Header-sign a request; returns the lower-case headers to add to it.

    ``url`` must be exactly what will be sent (path percent-encoded, e.g. with
    ``uri_encode(key, keep_slash=True)``).  Every header in ``headers`` is signed
    except hop-by-hop ones; ``host`` is added when absent.
    """
    when = _utc(now or _dt.datetime.now(_dt.UTC))
    amz_date = when.strftime(AMZ_DATE_FORMAT)
    parts = urlsplit(url)
    all_headers = {k.lower(): v for k, v in headers.items()}
    added: dict[str, str] = {}
    if "host" not in all_headers:
        added["host"] = _host_of(url)
    added["x-amz-date"] = amz_date
    added["x-amz-content-sha256"] = payload_sha256
    all_headers.update(added)
    signed = sorted(name for name in all_headers if name not in _UNSIGNABLE)
    scope = scope_of(amz_date[:8], region)
    creq = canonical_request(
        method.upper(), parts.path or "/", canonical_query(parse_query(parts.query)), signed,
        all_headers, payload_sha256,
    )  # fmt: skip
    signature = sign(
        derive_signing_key(secret_key, amz_date[:8], region), string_to_sign(amz_date, scope, creq)
    )
    added["authorization"] = (
        f"{ALGORITHM} Credential={access_key}/{scope}, SignedHeaders={';'.join(signed)}, "
        f"Signature={signature}"
    )
    return added


def presign_url(
    method: str,
    url: str,
    *,
    access_key: str,
    secret_key: str,
    region: str = "us-east-1",
    expires: int = 3600,
    now: _dt.datetime | None = None,
) -> str:
    """A presigned URL (only ``host`` signed, payload ``UNSIGNED-PAYLOAD``)."""
    if not 0 <= expires <= MAX_PRESIGN_EXPIRES:
        raise ValueError(f"expires must be within 0..{MAX_PRESIGN_EXPIRES} seconds")
    when = _utc(now or _dt.datetime.now(_dt.UTC))
    amz_date = when.strftime(AMZ_DATE_FORMAT)
    scope = scope_of(amz_date[:8], region)
    parts = urlsplit(url)
    auth = [
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", f"{access_key}/{scope}"),
        ("X-Amz-Date", amz_date),
        ("X-Amz-Expires", str(expires)),
        ("X-Amz-SignedHeaders", "host"),
    ]
    auth_query = "&".join(f"{uri_encode(n)}={uri_encode(v)}" for n, v in auth)
    query = f"{parts.query}&{auth_query}" if parts.query else auth_query
    creq = canonical_request(
        method.upper(), parts.path or "/", canonical_query(parse_query(query)), ["host"],
        {"host": _host_of(url)}, UNSIGNED_PAYLOAD,
    )  # fmt: skip
    signature = sign(
        derive_signing_key(secret_key, amz_date[:8], region), string_to_sign(amz_date, scope, creq)
    )
    query += f"&X-Amz-Signature={signature}"
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


__all__ = ["presign_url", "sign_request"]
