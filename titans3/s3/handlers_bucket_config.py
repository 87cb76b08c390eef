"""Bucket configuration operations: CORS and tagging, plus CORS on every request.

Theory of operation
-------------------
Each configuration is validated and encoded by its pure module
(``titans3.s3.cors``, ``titans3.s3.tagging``) and kept as opaque bytes in the
bucket record (``ObjectStore.put_bucket_config`` / ``get_bucket_config``), so
it is replicated with the bucket's quorum register and deleted with it.

Put* bodies are small XML documents that S3 insists arrive with an integrity
check: ``Content-MD5`` or an ``x-amz-checksum-*`` header/trailer
(``InvalidRequest`` when neither is present, ``BadDigest`` when one does not
match).  :func:`read_checked_xml` implements that once.

CORS outside the handlers.  Browsers send preflights (OPTIONS) without
credentials, so the app answers them before authentication through
:func:`preflight_reply`; and any request carrying ``Origin`` -- successful or
not, authenticated or not -- gets the matching rule's headers from
:func:`add_cors_headers` after its reply is built.  Both read the bucket's
configuration from the bucket table's in-memory cache.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping

from titans3.core.errors import (
    InvalidRequest,
    NoSuchBucket,
    NoSuchCORSConfiguration,
    NoSuchTagSet,
    S3Error,
)
from titans3.s3 import cors, tagging
from titans3.s3.checksums import HEADER_PREFIX, verify_content_md5
from titans3.s3.context import Handler, Reply, S3Context, xml_reply
from titans3.s3.routing import Route

log = logging.getLogger("titans3.s3")

CORS = "cors"
TAGGING = "tagging"
MAX_TAGGING_BODY = 64 * 1024
_NOT_VALUES = ("x-amz-checksum-mode", "x-amz-checksum-algorithm", "x-amz-checksum-type")


async def read_checked_xml(ctx: S3Context, limit: int) -> bytes:
    """A Put* XML body that must carry Content-MD5 or an ``x-amz-checksum-*``."""
    md5 = ctx.headers.get("content-md5")
    has_checksum = md5 is not None or "x-amz-trailer" in ctx.headers or any(
        name.startswith(HEADER_PREFIX) and name not in _NOT_VALUES
        for name in ctx.headers
    )
    if not has_checksum:
        raise InvalidRequest("Missing required header for this request: Content-MD5")
    body = await ctx.read_xml_body(limit)  # verifies x-amz-checksum-* and the payload hash
    if md5 is not None:
        verify_content_md5(md5, hashlib.md5(body).digest())
    return body


# --------------------------------------------------------------------- CORS
async def put_bucket_cors(ctx: S3Context) -> Reply:
    await ctx.store.head_bucket(ctx.bucket)
    rules = cors.parse_cors_configuration(await read_checked_xml(ctx, cors.MAX_CONFIG_BYTES))
    await ctx.store.put_bucket_config(ctx.bucket, CORS, cors.encode_rules(rules))
    return Reply(200)


async def get_bucket_cors(ctx: S3Context) -> Reply:
    raw = await ctx.store.get_bucket_config(ctx.bucket, CORS)
    if raw is None:
        raise NoSuchCORSConfiguration(BucketName=ctx.bucket)
    return xml_reply(cors.render_cors_configuration(cors.decode_rules(raw)))


async def delete_bucket_cors(ctx: S3Context) -> Reply:
    await ctx.store.put_bucket_config(ctx.bucket, CORS, None)
    return Reply(204)


async def preflight_reply(store: object, route: Route, headers: Mapping[str, str]) -> Reply:
    """Answer an OPTIONS request (unauthenticated, see module doc)."""
    cors.check_origin(headers)
    try:
        raw = await store.get_bucket_config(route.bucket, CORS)  # type: ignore[attr-defined]
    except NoSuchBucket:
        raise cors.bucket_not_found(headers) from None
    rules = cors.decode_rules(raw) if raw is not None else None
    kind = "OBJECT" if route.key is not None else "BUCKET"
    return Reply(200, cors.preflight(rules, headers, kind))


async def add_cors_headers(
    reply: Reply, store: object, bucket: str | None, headers: Mapping[str, str], method: str
) -> None:
    """Add the matching CORS rule's headers to ``reply`` (nothing when none matches)."""
    if bucket is None or not headers.get("origin"):
        return
    try:
        raw = await store.get_bucket_config(bucket, CORS)  # type: ignore[attr-defined]
        if raw is None:
            return
        extra = cors.actual_headers(cors.decode_rules(raw), headers, method)
    except S3Error:
        return  # no bucket (or unavailable): no CORS headers, the reply stands
    except Exception:  # noqa: BLE001 -- decorating must never break the answer itself
        log.warning("CORS headers for bucket %s failed", bucket, exc_info=True)
        return
    for name, value in extra:
        reply.header(name, value)


# ------------------------------------------------------------------ tagging
async def put_bucket_tagging(ctx: S3Context) -> Reply:
    await ctx.store.head_bucket(ctx.bucket)
    tags = tagging.parse_tagging(await read_checked_xml(ctx, MAX_TAGGING_BODY))
    value = tagging.encode_tags(tags) if tags else None  # an empty TagSet removes the tags
    await ctx.store.put_bucket_config(ctx.bucket, TAGGING, value)
    return Reply(204)


async def get_bucket_tagging(ctx: S3Context) -> Reply:
    raw = await ctx.store.get_bucket_config(ctx.bucket, TAGGING)
    if raw is None:
        raise NoSuchTagSet(BucketName=ctx.bucket)
    return xml_reply(tagging.render_tagging(tagging.decode_tags(raw)))


async def delete_bucket_tagging(ctx: S3Context) -> Reply:
    await ctx.store.put_bucket_config(ctx.bucket, TAGGING, None)
    return Reply(204)


HANDLERS: dict[str, Handler] = {
    "PutBucketCors": put_bucket_cors,
    "GetBucketCors": get_bucket_cors,
    "DeleteBucketCors": delete_bucket_cors,
    "PutBucketTagging": put_bucket_tagging,
    "GetBucketTagging": get_bucket_tagging,
    "DeleteBucketTagging": delete_bucket_tagging,
}
