"""Checks on client input shared by every object operation (pure)."""

from __future__ import annotations

import base64
import binascii

from titans3.core.errors import BadDigest, InvalidArgument, InvalidDigest, KeyTooLongError

MAX_KEY_BYTES = 1024


def check_key(key: str) -> bytes:
    """The key as UTF-8 bytes; S3 limits keys to 1,024 bytes."""
    raw = key.encode("utf-8", "surrogatepass")
    if not raw:
        raise InvalidArgument("Object key must not be empty.")
    if len(raw) > MAX_KEY_BYTES:
        raise KeyTooLongError()
    return raw


def check_content_md5(b64: str, md5: bytes) -> None:
    """Content-MD5 header against the body's MD5 (InvalidDigest / BadDigest)."""
    try:
        want = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidDigest() from None
    if len(want) != 16:
        raise InvalidDigest()
    if want != md5:
        raise BadDigest()
