"""CopyObject and UploadPartCopy (a PUT carrying ``x-amz-copy-source``).

Theory of operation
-------------------
The store streams the source version into the destination
(``titans3.objects.copy``); the front parses what AWS puts in headers:

* ``x-amz-copy-source``: ``[/]bucket/key[?versionId=id]``, the bucket and key
  percent-encoded (``?`` inside a key arrives as ``%3F``, so the first literal
  ``?`` starts the query).  No bucket or key: ``InvalidArgument``.
* ``x-amz-metadata-directive`` / ``x-amz-tagging-directive``: ``COPY``
  (default: the source's metadata / tags) or ``REPLACE`` (the request's
  headers; no ``x-amz-tagging`` means no tags); other values ``InvalidArgument``.
* ``x-amz-copy-source-if-{match,none-match,modified-since,unmodified-since}``:
  evaluated on the source version before any byte moves, with AWS's pairing
  (if-match true wins over unmodified-since false; if-none-match false loses
  to nothing); a failed condition is 412 ``PreconditionFailed``.
* Copying an object onto itself needs a change: ``REPLACE`` metadata, a storage
  class, or a named source version; otherwise 400 ``InvalidRequest``.
* ``If-Match`` / ``If-None-Match`` make the *destination* write conditional.
* ``x-amz-checksum-algorithm``: the copy's checksum is computed with that
  algorithm while the data streams; otherwise the source's checksums are kept.
* ``x-amz-copy-source-range: bytes=first-last`` (UploadPartCopy only): both
  ends required, ``first <= last``.

Responses: ``CopyObjectResult`` / ``CopyPartResult`` with the new ETag and
Last-Modified, ``x-amz-version-id`` of the new version and
``x-amz-copy-source-version-id`` of the source version.  The copy runs before
the status line is sent (no keep-alive whitespace), so a multi-GiB copy must
finish within the client's read timeout (5 GiB at the measured ~0.4 GB/s
fits boto3's default 60 s).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl, unquote_to_bytes

from titans3.core.errors import InvalidArgument, InvalidRequest, PreconditionFailed
from titans3.objects import ObjectInfo
from titans3.s3 import multipart_checksums, object_lock, routing, sse_headers, xml
from titans3.s3 import object_options as opts
from titans3.s3 import xml_objects as xo
from titans3.s3.checksums import ChecksumSet
from titans3.s3.context import Handler, Reply, S3Context, xml_reply
from titans3.s3.handlers_object import (
    _parse_http_date,
    extract_meta,
    new_acl,
    reject_unsupported_write,
    storage_class_header,
)
from titans3.s3.numbers import decimal

_SOURCE_MESSAGE = "Copy Source must mention the source bucket and key: sourcebucket/sourcekey"
_RANGE = re.compile(r"bytes=([0-9]+)-([0-9]+)")
_RANGE_MESSAGE = (
    "The x-amz-copy-source-range value must be of the form bytes=first-last where first and "
    "last are the zero-based offsets of the first and last bytes to copy"
)
SELF_COPY_MESSAGE = (
    "This copy request is illegal because it is trying to copy an object to itself without "
    "changing the object's metadata, storage class, website redirect location or encryption "
    "attributes."
)


def parse_copy_source(value: str) -> tuple[str, str, str | None]:
    """``(bucket, key, version id or None)`` of an ``x-amz-copy-source`` value."""
    path, sep, query = value.strip().partition("?")
    version_id: str | None = None
    if sep:
        params = dict(parse_qsl(query, keep_blank_values=True))
        if "versionId" in params:
            version_id = params["versionId"]
            if not version_id:
                raise InvalidArgument("Version id cannot be the empty string",
                                      ArgumentName="versionId")  # fmt: skip
    try:
        decoded = unquote_to_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument(_SOURCE_MESSAGE, ArgumentName="x-amz-copy-source") from None
    bucket, _, key = decoded.removeprefix("/").partition("/")
    if not bucket or not key:
        raise InvalidArgument(_SOURCE_MESSAGE, ArgumentName="x-amz-copy-source")
    routing.validate_bucket_name(bucket)
    routing.validate_key(key)
    return bucket, key, version_id


def directive(headers: Mapping[str, str], name: str, what: str) -> str:
    value = headers.get(name, "COPY")
    if value not in ("COPY", "REPLACE"):
        raise InvalidArgument(f"Unknown {what} directive.", ArgumentName=name, ArgumentValue=value)
    return value


def _etag_list(value: str) -> list[str]:
    return [t.strip().removeprefix("W/").strip('"') for t in value.split(",") if t.strip()]


def source_check(headers: Mapping[str, str]) -> Callable[[ObjectInfo], None] | None:
    """The copy-source conditionals as a check of the source version (module doc)."""
    prefix = "x-amz-copy-source-if-"
    if_match, if_none = headers.get(prefix + "match"), headers.get(prefix + "none-match")
    modified, unmodified = headers.get(prefix + "modified-since"), headers.get(prefix + "unmodified-since")
    if if_match is None and if_none is None and modified is None and unmodified is None:
        return None

    def check(info: ObjectInfo) -> None:
        mtime = info.mtime_ns // 1_000_000_000
        if if_match is not None:
            tags = _etag_list(if_match)
            if "*" not in tags and info.etag not in tags:
                raise PreconditionFailed(Condition="x-amz-copy-source-If-Match")
        elif unmodified is not None:
            stamp = _parse_http_date(unmodified)
            if stamp is not None and mtime > stamp:
                raise PreconditionFailed(Condition="x-amz-copy-source-If-Unmodified-Since")
        if if_none is not None:
            tags = _etag_list(if_none)
            if "*" in tags or info.etag in tags:
                raise PreconditionFailed(Condition="x-amz-copy-source-If-None-Match")
        elif modified is not None:
            stamp = _parse_http_date(modified)
            if stamp is not None and mtime <= stamp:
                raise PreconditionFailed(Condition="x-amz-copy-source-If-Modified-Since")

    return check


def parse_copy_range(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    m = _RANGE.fullmatch(value.strip())
    if m is None or decimal(m.group(1)) > decimal(m.group(2)):
        raise InvalidArgument(_RANGE_MESSAGE, ArgumentName="x-amz-copy-source-range",
                              ArgumentValue=value)  # fmt: skip
    return decimal(m.group(1)), decimal(m.group(2))


async def _source_version_header(reply: Reply, ctx: S3Context, bucket: str, info: ObjectInfo) -> None:
    reply.header("x-amz-copy-source-version-id",
                 await opts.shown_version(ctx, info.version_id, bucket))  # fmt: skip


async def copy_object(ctx: S3Context) -> Reply:
    reject_unsupported_write(ctx.headers)
    src_bucket, src_key, src_version = parse_copy_source(ctx.headers["x-amz-copy-source"])
    replace_meta = directive(ctx.headers, "x-amz-metadata-directive", "metadata") == "REPLACE"
    replace_tags = directive(ctx.headers, "x-amz-tagging-directive", "tagging") == "REPLACE"
    if (
        (src_bucket, src_key) == (ctx.bucket, ctx.key)
        and src_version is None
        and not replace_meta
        and "x-amz-storage-class" not in ctx.headers
        and sse_headers.SSE not in ctx.headers
        and sse_headers.SSE_C_ALGO not in ctx.headers
    ):
        raise InvalidRequest(SELF_COPY_MESSAGE)
    meta = extract_meta(ctx.headers) if replace_meta else None
    tags = (opts.tagging_header(ctx.headers) or {}) if replace_tags else None
    algo = ctx.headers.get("x-amz-checksum-algorithm")
    computed = ChecksumSet([algo]) if algo else None
    if meta is not None and _metadata_only(ctx, src_bucket, src_key, src_version, replace_tags):
        result = await ctx.store.replace_metadata(ctx.bucket, ctx.key, meta,
                                                  check_source=source_check(ctx.headers),
                                                  acl=new_acl(ctx))
    else:
        result = await ctx.store.copy_object(
            src_bucket, src_key, ctx.bucket, ctx.key, src_version_id=src_version, meta=meta,
            tags=tags, check_source=source_check(ctx.headers),
            condition=opts.write_condition(ctx.headers),
            on_data=computed.update if computed else None,
            checksums=computed.digests if computed else None, acl=new_acl(ctx),
            src_customer_key=sse_headers.customer_key(ctx.headers, prefix=sse_headers.COPY_PREFIX),
            encryption=sse_headers.write_encryption(ctx.headers),
            lock=object_lock.write_lock(ctx.headers),
            storage_class=storage_class_header(ctx.headers),
        )  # fmt: skip
    put = result.put
    reply = xml_reply(xml.copy_object_result(etag=put.etag, mtime_ns=put.mtime_ns,
                                             checksums=put.checksums))  # fmt: skip
    opts.add_written_version_header(reply, put.version_id)
    sse_headers.response_headers(reply, put.info)
    await _source_version_header(reply, ctx, src_bucket, result.source)
    return reply


def _metadata_only(ctx: S3Context, src_bucket: str, src_key: str, src_version: str | None,
                   replace_tags: bool) -> bool:
    """A copy of the current version onto itself that changes only user
    metadata (and the ACL): the object layer's ``replace_metadata``, which
    moves no data (objects/metaupdate.py)."""
    h = ctx.headers
    return ((src_bucket, src_key) == (ctx.bucket, ctx.key) and src_version is None
            and not replace_tags and "x-amz-storage-class" not in h
            and "x-amz-checksum-algorithm" not in h
            and not any(n.startswith(("x-amz-server-side-encryption",
                                      "x-amz-copy-source-server-side-encryption",
                                      "x-amz-object-lock-")) for n in h)
            and opts.write_condition(h) is None)


async def upload_part_copy(ctx: S3Context) -> Reply:
    raw = ctx.query.get("partNumber", "")
    if not (raw.isascii() and raw.isdigit()) or not 1 <= decimal(raw) <= opts.MAX_PART_NUMBER:
        raise InvalidArgument("Part number must be an integer between 1 and 10000, inclusive",
                              ArgumentName="partNumber", ArgumentValue=raw)  # fmt: skip
    upload_id = ctx.query.get("uploadId", "")
    src_bucket, src_key, src_version = parse_copy_source(ctx.headers["x-amz-copy-source"])
    byte_range = parse_copy_range(ctx.headers.get("x-amz-copy-source-range"))
    ck = sse_headers.customer_key(ctx.headers)
    result = await ctx.store.upload_part_copy(
        ctx.bucket, ctx.key, upload_id, decimal(raw), src_bucket, src_key,
        src_version_id=src_version, byte_range=byte_range,
        check_source=source_check(ctx.headers),
        compute_checksum=multipart_checksums.compute_for_part_copy,
        src_customer_key=sse_headers.customer_key(ctx.headers, prefix=sse_headers.COPY_PREFIX),
        customer_key=ck,
    )  # fmt: skip
    part = result.part
    reply = xml_reply(xo.copy_part_result(etag=part.etag, mtime_ns=part.mtime_ns,
                                          checksums=part.checksums))  # fmt: skip
    sse_headers.echo_customer_key(reply, ck)
    await _source_version_header(reply, ctx, src_bucket, result.source)
    return reply


HANDLERS: dict[str, Handler] = {
    "CopyObject": copy_object,
    "UploadPartCopy": upload_part_copy,
}
