"""Object-level S3 operations: PutObject, GetObject, HeadObject, DeleteObject.

Theory of operation
-------------------
What an object carries besides its bytes travels in one ``meta`` dict that the
store keeps verbatim and hands back: the standard representation headers
(Content-Type, -Encoding, -Language, -Disposition, Cache-Control, Expires) and
every ``x-amz-meta-*`` header, names lower-case.  ``aws-chunked`` is a transfer
detail, never part of a stored Content-Encoding; the rest of that header is
kept as the client spelled it (``deflate, gzip`` stays ``deflate, gzip``).

Values are stored as text.  Header bytes that are valid UTF-8 (what SDKs
send: botocore encodes a value as UTF-8) are read as UTF-8, other bytes as
ISO-8859-1; ``titans3.s3.asgi`` sends text back as ISO-8859-1 whenever every
character fits -- which is how HTTP clients (http.client, botocore) decode
header bytes -- and as UTF-8 otherwise.  So the value a client set is the
value it reads back (``Hello World\xe9`` stays that, never ``Hello WorldÃ©``),
a raw ISO-8859-1 byte comes back as the same byte, and RFC 2047
``=?UTF-8?B?...?=`` values, being ASCII, are untouched: Ceph RGW's answers.
(AWS re-encodes non-ASCII values as RFC 2047; docs/s3-compatibility.md says so.)

Server-side encryption headers are parsed and rendered by
``titans3.s3.sse_headers``.  Request features that change what S3 promises
(non-private ACLs ...) are refused with 501 NotImplemented
until implemented -- silently ignoring them would store something other than
what the client asked for.  The list lives in ``UNSUPPORTED_WRITE_HEADERS``.

Reads: ``Range`` is parsed leniently (``titans3.s3.ranges``) and resolved by
the store; HEAD resolves it itself from the size.  Conditional GET/HEAD headers
(If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since) are evaluated
with RFC 7232 precedence against the version the store returned, before a byte
of the body is read.  Stored checksums are returned only when the client asks
(``x-amz-checksum-mode: ENABLED``) and only when the answer is the whole object
(no Range, or one spanning every byte; not a partNumber), because a checksum of
the whole object cannot validate a part of it.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager

from titans3.core import storageclass
from titans3.core.errors import (
    InvalidArgument,
    InvalidDigest,
    InvalidRequest,
    InvalidStorageClass,
    MetadataTooLarge,
    NoSuchKey,
    NotImplementedS3,
    PreconditionFailed,
)
from titans3.objects import GetResult, ObjectInfo, ObjectLock, part_span
from titans3.s3 import lifecycle_config, object_lock, ranges, sse_headers
from titans3.s3 import object_options as opts
from titans3.s3.body import MAX_PUT_SIZE
from titans3.s3.checksums import header_for
from titans3.s3.context import Handler, Reply, S3Context
from titans3.s3.xml import quote_etag

STORED_HEADERS = (
    "content-type",
    "content-encoding",
    "content-language",
    "content-disposition",
    "cache-control",
    "expires",
)
USER_META_PREFIX = "x-amz-meta-"
MAX_USER_META = 2048  # bytes of UTF-8 names (without prefix) and values, as AWS counts
DEFAULT_CONTENT_TYPE = "binary/octet-stream"

UNSUPPORTED_WRITE_HEADERS = (
    "x-amz-website-redirect-location",
    "x-amz-grant-read",
    "x-amz-grant-read-acp",
    "x-amz-grant-write-acp",
    "x-amz-grant-full-control",
)
ACCEPTED_CANNED_ACLS = ("private", "bucket-owner-full-control")

_RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}


# ------------------------------------------------------------ request checks
def reject_unsupported_write(headers: Mapping[str, str]) -> None:
    """501 for write options TitanS3 does not implement yet (see module doc)."""
    for name in UNSUPPORTED_WRITE_HEADERS:
        if name in headers:
            raise NotImplementedS3(f"The {name} header is not implemented.", Header=name)
    acl = headers.get("x-amz-acl")
    if acl is not None and acl.strip().lower() not in ACCEPTED_CANNED_ACLS:
        raise NotImplementedS3("Only the private canned ACL is implemented.", Header="x-amz-acl")


def content_md5(headers: Mapping[str, str]) -> str | None:
    """The Content-MD5 header if it is base64 of 16 bytes; ``InvalidDigest`` otherwise."""
    value = headers.get("content-md5")
    if value is None:
        return None
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 16:
        raise InvalidDigest()
    return value.strip()


def strip_aws_chunked(value: str) -> str:
    """``Content-Encoding`` without the ``aws-chunked`` token, otherwise as spelled."""
    codings = value.split(",")
    kept = [c for c in codings if c.strip() and c.strip().lower() != "aws-chunked"]
    return ",".join(kept).strip() if len(kept) != len(codings) else value


def header_text(value: str) -> str:
    """A header value (latin-1 text, one character per wire byte) as the text it encodes."""
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def extract_meta(headers: Mapping[str, str]) -> dict[str, str]:
    """The ``meta`` dict stored with an object (see module doc)."""
    meta: dict[str, str] = {}
    for name in STORED_HEADERS:
        value = headers.get(name)
        if value is None:
            continue
        value = header_text(value)
        if name == "content-encoding":
            value = strip_aws_chunked(value)
            if not value:
                continue
        meta[name] = value
    user_size = 0
    for name, value in headers.items():
        if name.startswith(USER_META_PREFIX) and len(name) > len(USER_META_PREFIX):
            value = meta[name] = header_text(value)
            user_size += len(name[len(USER_META_PREFIX) :].encode()) + len(value.encode())
    if user_size > MAX_USER_META:
        raise MetadataTooLarge(Size=str(user_size), MaxSizeAllowed=str(MAX_USER_META))
    return meta


# ---------------------------------------------------------------- rendering
def http_date(ns: int) -> str:
    """RFC 7231 IMF-fixdate (``Wed, 12 Oct 2009 17:50:00 GMT``)."""
    return email.utils.formatdate(ns // 1_000_000_000, usegmt=True)


def checksum_headers(reply: Reply, checksums: Mapping[str, str], *, with_type: bool = False) -> None:
    """``x-amz-checksum-<algo>`` per stored checksum; ``with_type`` adds
    ``x-amz-checksum-type`` (COMPOSITE for a multipart ``<b64>-N`` value)."""
    for algo in sorted(checksums):
        try:
            name = header_for(algo)
        except Exception:  # an algorithm this front cannot name: skip, never fail a read
            continue
        reply.header(name, checksums[algo])
        if with_type:
            reply.header("x-amz-checksum-type", "COMPOSITE" if "-" in checksums[algo] else "FULL_OBJECT")


def wants_checksums(ctx: S3Context, first: int, last: int, size: int) -> bool:
    """``x-amz-checksum-mode: ENABLED`` and the answer is the whole object (a
    whole-object checksum cannot validate a range or a single part)."""
    enabled = ctx.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED"
    return enabled and "partNumber" not in ctx.query and first == 0 and last >= size - 1


def object_headers(reply: Reply, info: ObjectInfo, query: Mapping[str, str]) -> None:
    """Headers GET and HEAD share: validators, representation metadata, overrides."""
    meta = info.meta
    reply.header("ETag", quote_etag(info.etag))
    reply.header("Last-Modified", http_date(info.mtime_ns))
    reply.header("Accept-Ranges", "bytes")
    if info.storage_class != "STANDARD":  # AWS omits it for STANDARD
        reply.header("x-amz-storage-class", info.storage_class)
    overridden = {_RESPONSE_OVERRIDES[q]: v for q, v in query.items() if q in _RESPONSE_OVERRIDES}
    for name, value in overridden.items():
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):  # no header injection
            raise InvalidArgument(f"Invalid value for {name} override", ArgumentName=name)
    reply.header("Content-Type", overridden.pop("Content-Type", None) or meta.get("content-type")
                 or DEFAULT_CONTENT_TYPE)  # fmt: skip
    for name in STORED_HEADERS[1:]:
        canonical = "-".join(p.capitalize() for p in name.split("-"))
        reply.header(canonical, overridden.pop(canonical, None) or meta.get(name))
    for name, value in meta.items():
        if name.startswith(USER_META_PREFIX):
            reply.header(name, value)


# ------------------------------------------------------------ preconditions
def _etags(value: str) -> list[str]:
    return [t.strip().removeprefix("W/").strip('"') for t in value.split(",") if t.strip()]


def _parse_http_date(value: str) -> int | None:
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return int(when.timestamp()) if when is not None else None


def evaluate_preconditions(headers: Mapping[str, str], etag: str, mtime_ns: int) -> int | None:
    """None to proceed, 304 for Not Modified; raises PreconditionFailed (412).

    RFC 7232 section 6 order, which S3 follows: If-Match, else If-Unmodified-Since;
    then If-None-Match, else If-Modified-Since.
    """
    mtime = mtime_ns // 1_000_000_000
    if_match = headers.get("if-match")
    if if_match is not None:
        tags = _etags(if_match)
        if "*" not in tags and etag not in tags:
            raise PreconditionFailed(Condition="If-Match")
    else:
        since = headers.get("if-unmodified-since")
        stamp = _parse_http_date(since) if since else None
        if stamp is not None and mtime > stamp:
            raise PreconditionFailed(Condition="If-Unmodified-Since")
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        tags = _etags(if_none_match)
        if "*" in tags or etag in tags:
            return 304
    else:
        since = headers.get("if-modified-since")
        stamp = _parse_http_date(since) if since else None
        if stamp is not None and mtime <= stamp:
            return 304
    return None


def _not_modified(info: ObjectInfo) -> Reply:
    reply = Reply(304)
    reply.header("ETag", quote_etag(info.etag))
    reply.header("Last-Modified", http_date(info.mtime_ns))
    return reply


@contextmanager
def _marking_absence() -> Iterator[None]:
    """A 404 of GET/HEAD says whether a delete marker caused it: the store's error
    carries ``x-amz-delete-marker: true`` for one; a key that is simply gone gets
    ``false`` (Ceph RGW's answer, which tools check)."""
    try:
        yield
    except NoSuchKey as err:
        if not any(name.lower() == "x-amz-delete-marker" for name, _ in err.headers):
            err.headers.append(("x-amz-delete-marker", "false"))
        raise


async def _aclose(body: AsyncIterator[bytes]) -> None:
    aclose = getattr(body, "aclose", None)
    if aclose is not None:
        await aclose()


# ------------------------------------------------------------------ handlers
async def require_integrity_for_lock(ctx: S3Context, lock: ObjectLock | None) -> None:
    """AWS: an upload that gets a retention period must carry Content-MD5 or a checksum."""
    if lock is None or not lock.mode:
        raw = await ctx.store.get_bucket_config(ctx.bucket, object_lock.NAME)
        if raw is None or not json.loads(raw).get("mode"):
            return
    if "content-md5" in ctx.headers or "x-amz-trailer" in ctx.headers or "x-amz-sdk-checksum-algorithm" \
            in ctx.headers or any(h.startswith("x-amz-checksum-") and h not in (
                "x-amz-checksum-mode", "x-amz-checksum-type", "x-amz-checksum-algorithm")
                for h in ctx.headers):
        return
    raise InvalidRequest("Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object "
                         "requests with Object Lock parameters")


async def put_object(ctx: S3Context) -> Reply:
    reject_unsupported_write(ctx.headers)
    meta = extract_meta(ctx.headers)
    md5 = content_md5(ctx.headers)
    tags = opts.tagging_header(ctx.headers)
    condition = opts.write_condition(ctx.headers)
    encryption = sse_headers.write_encryption(ctx.headers)
    lock = object_lock.write_lock(ctx.headers)
    storage_class = storage_class_header(ctx.headers)
    await require_integrity_for_lock(ctx, lock)
    body = ctx.open_body(max_size=MAX_PUT_SIZE)
    result = await ctx.store.put_object(
        ctx.bucket, ctx.key, body, size=body.size, meta=meta, content_md5=md5,
        checksums=body.verify, tags=tags, condition=condition, encryption=encryption, lock=lock,
        storage_class=storage_class,
    )  # fmt: skip
    reply = Reply(200).header("ETag", quote_etag(result.etag))
    sse_headers.response_headers(reply, result.info)
    await lifecycle_config.expiration_header(reply, ctx, ObjectInfo(
        ctx.bucket, ctx.key, result.version_id, result.size, result.etag, result.mtime_ns,
        tags=dict(tags or {})))
    opts.add_written_version_header(reply, result.version_id)
    checksum_headers(reply, result.checksums, with_type=True)
    return reply


def storage_class_header(headers: Mapping[str, str]) -> str | None:
    """``x-amz-storage-class`` of a write: None for STANDARD (the bucket's scheme);
    a name S3 does not know is ``InvalidStorageClass`` (an unmapped one the store's)."""
    raw = headers.get("x-amz-storage-class")
    if raw is None:
        return None
    name = raw.strip()
    if name not in storageclass.AWS_CLASSES:
        raise InvalidStorageClass(StorageClassRequested=name)
    return None if name == storageclass.STANDARD else name


def _version_id(ctx: S3Context) -> str | None:
    return opts.version_id_param(ctx.query)


async def get_object(ctx: S3Context) -> Reply:
    part_number = opts.part_number_param(ctx.query, ctx.headers)
    byte_range = ranges.parse_range(ctx.headers.get("range"))
    with _marking_absence():
        result = await ctx.store.get_object(
            ctx.bucket, ctx.key, version_id=_version_id(ctx), byte_range=byte_range,
            part_number=part_number, customer_key=sse_headers.read_key(ctx.headers),
        )  # fmt: skip
    info = result.info
    try:
        modified = evaluate_preconditions(ctx.headers, info.etag, info.mtime_ns) != 304
        reply = _get_reply(ctx, result) if modified else _not_modified(info)
        await _version_details(reply, ctx, info, part_number)
    except BaseException:
        await _aclose(result.body)  # nothing will stream it: release it now
        raise
    if not modified:
        await _aclose(result.body)
    return reply


def _get_reply(ctx: S3Context, result: GetResult) -> Reply:
    info = result.info
    length = max(0, result.last - result.first + 1)
    reply = Reply(206 if result.partial else 200, body=result.body, length=length)
    object_headers(reply, info, ctx.query)
    sse_headers.response_headers(reply, info)
    object_lock.response_headers(reply, info)
    if result.partial:
        reply.header("Content-Range", ranges.content_range(result.first, result.last, info.size))
    if wants_checksums(ctx, result.first, result.last, info.size):
        checksum_headers(reply, info.checksums, with_type=True)
    return reply


async def _version_details(
    reply: Reply, ctx: S3Context, info: ObjectInfo, part_number: int | None
) -> None:
    """Headers about the version GET/HEAD served: its id, tag count, part count, expiry."""
    await opts.add_version_header(reply, ctx, info.version_id)
    if reply.status in (200, 206):
        await lifecycle_config.expiration_header(reply, ctx, info)
    if info.tags:
        reply.header("x-amz-tagging-count", str(len(info.tags)))
    if part_number is not None and info.parts_count:
        reply.header("x-amz-mp-parts-count", str(info.parts_count))


async def head_object(ctx: S3Context) -> Reply:
    part_number = opts.part_number_param(ctx.query, ctx.headers)
    with _marking_absence():
        info = await ctx.store.head_object(ctx.bucket, ctx.key, version_id=_version_id(ctx),
                                           customer_key=sse_headers.read_key(ctx.headers))
    if evaluate_preconditions(ctx.headers, info.etag, info.mtime_ns) == 304:
        reply = _not_modified(info)
        await _version_details(reply, ctx, info, None)
        return reply
    span = ranges.resolve_range(ranges.parse_range(ctx.headers.get("range")), info.size)
    if part_number is not None:
        span = part_span(info.size, info.part_sizes, part_number)
        if info.size == 0 or not info.part_sizes:
            span = None  # part 1 of an object uploaded in one piece is the whole object
    if span is None:
        reply = Reply(200, length=info.size)
    else:
        reply = Reply(206, length=span[1] - span[0] + 1)
        reply.header("Content-Range", ranges.content_range(span[0], span[1], info.size))
    object_headers(reply, info, ctx.query)
    sse_headers.response_headers(reply, info)
    object_lock.response_headers(reply, info)
    await _version_details(reply, ctx, info, part_number)
    first, last = span if span is not None else (0, info.size - 1)
    if wants_checksums(ctx, first, last, info.size):
        checksum_headers(reply, info.checksums, with_type=True)
    return reply


async def delete_object(ctx: S3Context) -> Reply:
    version_id = _version_id(ctx)
    result = await ctx.store.delete_object(ctx.bucket, ctx.key, version_id=version_id,
                                           bypass_governance=object_lock.may_bypass(ctx.headers))
    reply = Reply(204)
    # The store names a version only in a bucket with versioning configured (a
    # null marker in a suspended one) or when the request named one: show it.
    reply.header("x-amz-version-id", result.version_id)
    if result.delete_marker:
        reply.header("x-amz-delete-marker", "true")
    return reply


HANDLERS: dict[str, Handler] = {
    "PutObject": put_object,
    "GetObject": get_object,
    "HeadObject": head_object,
    "DeleteObject": delete_object,
}
