"""Multipart upload operations.

Theory of operation
-------------------
The store owns the upload state and every rule about parts (existence, ETag
match, order, the 5 MiB minimum: ``NoSuchUpload``, ``InvalidPart``,
``InvalidPartOrder``, ``EntityTooSmall``).  The front owns syntax: the part
number range (1..10,000, ``InvalidArgument``), the CompleteMultipartUpload XML
(``MalformedXML``), and ListParts paging (``max-parts``,
``part-number-marker``), which it does over the full part list the store
returns.  Object metadata is fixed at CreateMultipartUpload, exactly as for
PutObject.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from urllib.parse import quote

from titans3.core.errors import InvalidArgument, NoSuchUpload
from titans3.objects import PartInfo
from titans3.s3 import encryption_config, multipart_checksums, object_lock, sse_headers, xml
from titans3.s3 import object_options as opts
from titans3.s3.body import MAX_PUT_SIZE
from titans3.s3.context import Handler, Reply, S3Context, xml_reply
from titans3.s3.handlers_object import (
    checksum_headers,
    content_md5,
    extract_meta,
    reject_unsupported_write,
    storage_class_header,
)
from titans3.s3.numbers import decimal
from titans3.s3.xml import quote_etag

MAX_PART_NUMBER = 10_000
MAX_PARTS_LISTED = 1000


def _upload_id(ctx: S3Context) -> str:
    upload_id = ctx.query.get("uploadId", "")
    if not upload_id:
        raise NoSuchUpload(UploadId=upload_id)
    return upload_id


def _int_param(ctx: S3Context, name: str, default: int, low: int, high: int, message: str) -> int:
    raw = ctx.query.get(name)
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= decimal(raw) <= high:
        raise InvalidArgument(message, ArgumentName=name, ArgumentValue=raw)
    return decimal(raw)


async def create_multipart_upload(ctx: S3Context) -> Reply:
    reject_unsupported_write(ctx.headers)
    meta = extract_meta(ctx.headers)
    algo, kind = multipart_checksums.upload_checksum(ctx.headers)
    encryption = sse_headers.write_encryption(ctx.headers)
    lock = object_lock.write_lock(ctx.headers)
    upload_id = await ctx.store.create_multipart(
        ctx.bucket, ctx.key, meta=meta, checksum_algorithm=algo, checksum_type=kind,
        tags=opts.tagging_header(ctx.headers), encryption=encryption, lock=lock,
        storage_class=storage_class_header(ctx.headers),
    )
    reply = xml_reply(xml.initiate_multipart_upload_result(ctx.bucket, ctx.key, upload_id))
    if encryption is not None and encryption.mode == "SSE-C":
        sse_headers.echo_customer_key(reply, encryption.customer_key)
    elif encryption is not None:
        reply.header(sse_headers.SSE, encryption.mode)
    else:  # the bucket's default encryption applies (the store reads the same document)
        raw = await ctx.store.get_bucket_config(ctx.bucket, encryption_config.NAME)
        if raw is not None:
            reply.header(sse_headers.SSE, json.loads(raw)["alg"])
    reply.header("x-amz-checksum-algorithm", algo)
    reply.header("x-amz-checksum-type", kind)
    return reply


async def upload_part(ctx: S3Context) -> Reply:
    raw = ctx.query.get("partNumber", "")
    if not (raw.isascii() and raw.isdigit()) or not 1 <= decimal(raw) <= MAX_PART_NUMBER:
        raise InvalidArgument("Part number must be an integer between 1 and 10000, inclusive",
                              ArgumentName="partNumber", ArgumentValue=raw)  # fmt: skip
    upload_id = _upload_id(ctx)
    md5 = content_md5(ctx.headers)
    ck = sse_headers.customer_key(ctx.headers)
    body = ctx.open_body(max_size=MAX_PUT_SIZE)
    part = await ctx.store.upload_part(
        ctx.bucket, ctx.key, upload_id, decimal(raw), body, size=body.size, content_md5=md5,
        checksums=body.verify, compute_checksum=multipart_checksums.compute_for_upload_part,
        customer_key=ck,
    )  # fmt: skip
    reply = Reply(200).header("ETag", quote_etag(part.etag))
    sse_headers.response_headers(reply, part.info)
    checksum_headers(reply, part.checksums)
    return reply


def _location(ctx: S3Context) -> str:
    key = quote(ctx.key, safe="/")
    if ctx.route.virtual_host:
        return f"{ctx.base_url()}/{key}"
    return f"{ctx.base_url()}/{ctx.bucket}/{key}"


async def complete_multipart_upload(ctx: S3Context) -> Reply:
    upload_id = _upload_id(ctx)
    client_checksum = multipart_checksums.object_checksum_header(ctx.headers)
    parts = xml.parse_complete_multipart_upload(await ctx.read_xml_body(body_checksums=False))

    def checksums(algo: str | None, kind: str | None, chosen: Sequence[PartInfo]) -> dict[str, str]:
        return multipart_checksums.complete_checksums(
            algo, kind, parts, chosen, client_checksum, upload_id=upload_id,
            requested_type=ctx.headers.get("x-amz-checksum-type"),
        )  # fmt: skip

    result = await ctx.store.complete_multipart(
        ctx.bucket, ctx.key, upload_id, parts=[(p.number, p.etag) for p in parts],
        checksums=checksums, condition=opts.write_condition(ctx.headers),
    )  # fmt: skip
    reply = xml_reply(
        xml.complete_multipart_upload_result(
            location=_location(ctx), bucket=ctx.bucket, key=ctx.key, etag=result.etag,
            checksums=result.checksums,
            checksum_type=next(
                (multipart_checksums.checksum_type(v) for v in result.checksums.values()), None
            ),
        )  # fmt: skip
    )
    opts.add_written_version_header(reply, result.version_id)
    sse_headers.response_headers(reply, result.info)
    return reply


async def abort_multipart_upload(ctx: S3Context) -> Reply:
    await ctx.store.abort_multipart(ctx.bucket, ctx.key, _upload_id(ctx))
    return Reply(204)


async def list_parts(ctx: S3Context) -> Reply:
    upload_id = _upload_id(ctx)
    max_parts = _int_param(ctx, "max-parts", MAX_PARTS_LISTED, 0, 2**31 - 1,
                           "Provided max-parts not an integer or within integer range")  # fmt: skip
    max_parts = min(max_parts, MAX_PARTS_LISTED)
    marker = _int_param(ctx, "part-number-marker", 0, 0, 2**31 - 1,
                        "Provided part-number-marker not an integer or within integer range")  # fmt: skip
    parts = sorted(await ctx.store.list_parts(ctx.bucket, ctx.key, upload_id), key=lambda p: p.number)
    after = [p for p in parts if p.number > marker]
    page, truncated = after[:max_parts], len(after) > max_parts
    result = xml.PartsPage(
        bucket=ctx.bucket,
        key=ctx.key,
        upload_id=upload_id,
        part_number_marker=marker,
        next_part_number_marker=page[-1].number if page else None,
        max_parts=max_parts,
        is_truncated=truncated,
        parts=[xml.PartEntry(p.number, p.mtime_ns, p.etag, p.size, p.checksums) for p in page],
        owner=ctx.settings.owner,
    )
    return xml_reply(xml.list_parts_result(result))


HANDLERS: dict[str, Handler] = {
    "CreateMultipartUpload": create_multipart_upload,
    "UploadPart": upload_part,
    "CompleteMultipartUpload": complete_multipart_upload,
    "AbortMultipartUpload": abort_multipart_upload,
    "ListParts": list_parts,
}
