"""Request options shared by the object handlers: version ids, tags in headers,
conditional writes, part numbers, and how version ids are shown.

Theory of operation
-------------------
Pure parsing of what the object operations have in common, so every handler
answers the same input with the same AWS error:

* ``?versionId=``: empty is ``InvalidArgument`` ("Version id cannot be the empty
  string"); the store judges the format.
* ``x-amz-tagging``: URL query form (``k1=v1&k2``), UTF-8 then percent-encoded;
  undecodable or duplicate names are ``InvalidArgument`` with AWS's message;
  the limits are the object layer's (``titans3.objects.tagging``).
* ``If-None-Match`` / ``If-Match`` on writes: both take ``*`` or ETags
  (``titans3.objects.conditional``): 412 when they do not hold.
* ``partNumber`` on GET/HEAD: 1..10,000 (``InvalidArgument``); it cannot be
  combined with ``Range`` (``InvalidRequest``).
* XML bodies (versioning, tagging, batch delete): a ``Content-MD5`` is checked.

Version ids in responses: the null version is shown as ``null`` only in a
bucket whose versioning was ever configured (Enabled or Suspended); a
never-versioned bucket sends no ``x-amz-version-id`` at all -- what AWS does.
A write (PutObject, CopyObject, CompleteMultipartUpload) that made the null
version -- a bucket with versioning Suspended -- sends none either.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from urllib.parse import parse_qsl

from titans3.core.errors import (
    BadDigest,
    InvalidArgument,
    InvalidDigest,
    InvalidRequest,
)
from titans3.objects import WriteCondition, validate_tags
from titans3.s3.context import Reply, S3Context
from titans3.s3.numbers import decimal

MAX_PART_NUMBER = 10_000
_TAGGING_MESSAGE = (
    "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters "
    "without tag name duplicates."
)


async def read_xml(ctx: S3Context) -> bytes:
    """A small XML request body with its ``Content-MD5`` (when sent) verified:
    ``InvalidDigest`` if malformed, ``BadDigest`` if it does not match."""
    md5 = ctx.headers.get("content-md5")
    data = await ctx.read_xml_body()
    if md5 is not None:
        try:
            want = base64.b64decode(md5.strip(), validate=True)
        except (binascii.Error, ValueError):
            want = b""
        if len(want) != 16:
            raise InvalidDigest()
        if want != hashlib.md5(data).digest():
            raise BadDigest()
    return data


def version_id_param(query: Mapping[str, str]) -> str | None:
    value = query.get("versionId")
    if value is not None and not value:
        raise InvalidArgument("Version id cannot be the empty string", ArgumentName="versionId")
    return value


def tagging_header(headers: Mapping[str, str]) -> dict[str, str] | None:
    """Tags of ``x-amz-tagging`` (None when the header is absent)."""
    raw = headers.get("x-amz-tagging")
    if raw is None:
        return None
    try:
        pairs = parse_qsl(raw.strip(), keep_blank_values=True, encoding="utf-8", errors="strict")
        raw.encode("ascii")
    except (UnicodeError, ValueError):
        raise InvalidArgument(_TAGGING_MESSAGE, ArgumentName="x-amz-tagging",
                              ArgumentValue=raw) from None  # fmt: skip
    names = [k for k, _ in pairs]
    if len(set(names)) != len(names):
        raise InvalidArgument(_TAGGING_MESSAGE, ArgumentName="x-amz-tagging", ArgumentValue=raw)
    return validate_tags(pairs)


def _etags(value: str) -> tuple[str, ...]:
    return tuple(t.strip().removeprefix("W/").strip('"') for t in value.split(",") if t.strip())


def write_condition(headers: Mapping[str, str]) -> WriteCondition | None:
    """The conditional write a PUT/Complete/Copy asks for, or None."""
    if_none = headers.get("if-none-match")
    if_match = headers.get("if-match")
    if if_none is None and if_match is None:
        return None
    none_tags = _etags(if_none) if if_none is not None else ()
    return WriteCondition(
        if_match=_etags(if_match) if if_match is not None else None,
        if_none_match="*" in none_tags,
        if_none_match_etags=tuple(t for t in none_tags if t != "*"),
    )


def part_number_param(query: Mapping[str, str], headers: Mapping[str, str]) -> int | None:
    raw = query.get("partNumber")
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or not 1 <= decimal(raw) <= MAX_PART_NUMBER:
        raise InvalidArgument("Part number must be an integer between 1 and 10000, inclusive",
                              ArgumentName="partNumber", ArgumentValue=raw)  # fmt: skip
    if "range" in headers:
        raise InvalidRequest("Cannot specify both Range header and partNumber query parameter")
    return decimal(raw)


async def shown_version(ctx: S3Context, version_id: str | None, bucket: str | None = None) -> str | None:
    """The ``x-amz-version-id`` to send for ``version_id`` (see module doc)."""
    if version_id != "null":
        return version_id
    info = await ctx.store.head_bucket(bucket or ctx.bucket)
    return "null" if getattr(info, "versioning", "") else None


async def add_version_header(reply: Reply, ctx: S3Context, version_id: str | None,
                             bucket: str | None = None) -> None:
    reply.header("x-amz-version-id", await shown_version(ctx, version_id, bucket))


def add_written_version_header(reply: Reply, version_id: str | None) -> None:
    """``x-amz-version-id`` of a write: the new version's id; none for a null version."""
    reply.header("x-amz-version-id", None if version_id == "null" else version_id)
