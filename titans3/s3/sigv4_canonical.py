"""The canonical forms and primitives of AWS Signature Version 4.

Pure functions, no request parsing or policy: the signing key of a day
(``derive_signing_key``, cached -- a key depends only on secret, date, region
and service, and the cache is keyed by the secret itself so a rotated secret
never meets an old key), ``sign``, the credential scope, AWS's ``UriEncode``,
and the canonical query, headers and request, and the string to sign.
:mod:`titans3.s3.sigv4` verifies requests with them (see its docstring for which
canonical spellings it tries and why); :mod:`titans3.s3.signer` and the
aws-chunked decoder sign with them.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from urllib.parse import quote_from_bytes, unquote_to_bytes

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "s3"
TERMINAL = "aws4_request"


def derive_signing_key(secret: str, date: str, region: str, service: str = SERVICE) -> bytes:
    """The day's signing key: four HMACs, so the verifier keeps the last few (``_KEYS``)."""
    cache_key = (secret, date, region, service)
    key = _KEYS.get(cache_key)
    if key is None:
        key = _hmac(("AWS4" + secret).encode("utf-8"), date)
        key = _hmac(key, region)
        key = _hmac(key, service)
        key = _hmac(key, TERMINAL)
        if len(_KEYS) >= _KEYS_MAX:
            _KEYS.clear()  # a day's keys for a few hundred callers; then start over
        _KEYS[cache_key] = key
    return key


# (secret, date, region, service) -> signing key.  A key is valid for its whole
# day and depends on nothing else; keyed by the secret itself, so a rotated
# secret never finds an old key.  Secrets are in this process's memory anyway.
_KEYS: dict[tuple[str, str, str, str], bytes] = {}
_KEYS_MAX = 1024


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.digest(key, msg.encode("utf-8"), "sha256")


def sign(signing_key: bytes, string_to_sign: str) -> str:
    """Hex HMAC-SHA256 of ``string_to_sign``: the signature itself."""
    return hmac.digest(signing_key, string_to_sign.encode("utf-8"), "sha256").hex()


def scope_of(date: str, region: str, service: str = SERVICE) -> str:
    return f"{date}/{region}/{service}/{TERMINAL}"


def uri_encode(data: str | bytes, *, keep_slash: bool = False) -> str:
    """AWS ``UriEncode``: every byte outside ``A-Za-z0-9-_.~`` as upper-case ``%XX``."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return quote_from_bytes(raw, safe="-_.~/" if keep_slash else "-_.~")


def normalize_uri(raw_path: str) -> str:
    """The AWS-documented canonical URI: each segment decoded, then re-encoded."""
    if not raw_path:
        return "/"
    return "/".join(uri_encode(unquote_to_bytes(seg)) for seg in raw_path.split("/"))


def parse_query(raw_query: str) -> list[tuple[bytes, bytes]]:
    """Decoded ``(name, value)`` pairs in wire order; ``+`` is a space, ``a`` is ``a=``."""
    pairs = []
    for item in raw_query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        pairs.append(
            (unquote_to_bytes(name.replace("+", " ")), unquote_to_bytes(value.replace("+", " ")))
        )
    return pairs


def canonical_query(pairs: Sequence[tuple[bytes, bytes]], exclude: tuple[bytes, ...] = ()) -> str:
    """Encoded ``name=value`` pairs sorted by encoded name, then value."""
    encoded = sorted((uri_encode(n), uri_encode(v)) for n, v in pairs if n not in exclude)
    return "&".join(f"{n}={v}" for n, v in encoded)


def _raw_sorted_query(raw_query: str, exclude: tuple[bytes, ...]) -> str:
    # botocore's algorithm: the wire pairs, sorted, not re-encoded.
    items = []
    for item in raw_query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        if unquote_to_bytes(name.replace("+", " ")) not in exclude:
            items.append((name, value))
    return "&".join(f"{n}={v}" for n, v in sorted(items))


def canonical_headers(signed_headers: Sequence[str], headers: Mapping[str, str]) -> str:
    """``name:trimmed value\\n`` for each signed header, in the signed order."""
    return "".join(
        f"{name}:{' '.join(headers.get(name, '').split())}\n" for name in signed_headers
    )


def canonical_request(
    method: str,
    canonical_uri: str,
    canonical_query_string: str,
    signed_headers: Sequence[str],
    headers: Mapping[str, str],
    payload_hash: str,
) -> str:
    return "\n".join(
        (
            method,
            canonical_uri,
            canonical_query_string,
            canonical_headers(signed_headers, headers),
            ";".join(signed_headers),
            payload_hash,
        )
    )


def string_to_sign(amz_date: str, scope: str, canonical_request_: str | bytes) -> str:
    raw = (
        canonical_request_.encode("utf-8")
        if isinstance(canonical_request_, str)
        else canonical_request_
    )
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{hashlib.sha256(raw).hexdigest()}"
