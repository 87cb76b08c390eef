"""Service- and bucket-level S3 operations: buckets and listings.

Theory of operation
-------------------
Each handler validates the request's parameters the way S3 does, makes one
ObjectStore call and renders the answer with ``titans3.s3.xml``.  The store
owns existence and emptiness (NoSuchBucket, BucketNotEmpty, ...); the handlers
own parameter syntax (max-keys, continuation tokens, LocationConstraint).

Continuation tokens are opaque to clients but simple here: URL-safe base64 of
the key (or common prefix) to resume after.  A token that does not decode is
``InvalidArgument``, as AWS answers.  ListObjects v1 returns ``NextMarker``
whenever the page is truncated (AWS only promises it with a delimiter; always
sending it is allowed and saves clients a guess).
"""

from __future__ import annotations

import base64
import binascii

from titans3.core.errors import BucketAlreadyOwnedByYou, InvalidArgument
from titans3.s3 import xml
from titans3.s3.context import Handler, Reply, S3Context, xml_reply
from titans3.s3.location import check_location_constraint
from titans3.s3.numbers import decimal

MAX_KEYS = 1000


MAX_BUCKETS = 10_000


async def list_buckets(ctx: S3Context) -> Reply:
    """All buckets, or one page of them (``max-buckets``, ``continuation-token``,
    ``prefix``, ``bucket-region``); the token is the opaque form of the last name."""
    q = ctx.query
    raw_max = q.get("max-buckets")
    limit: int | None = None
    if raw_max is not None:
        if not (raw_max.isascii() and raw_max.isdigit()) or not 1 <= decimal(raw_max) <= MAX_BUCKETS:
            raise InvalidArgument(
                f"Argument max-buckets must be an integer between 1 and {MAX_BUCKETS}",
                ArgumentName="max-buckets", ArgumentValue=raw_max,
            )  # fmt: skip
        limit = decimal(raw_max)
    token = q.get("continuation-token")
    after = decode_token(token) if token else ""
    prefix = q.get("prefix", "")
    region = q.get("bucket-region")
    buckets = [
        b for b in await ctx.store.list_buckets()
        if b.name > after and b.name.startswith(prefix)
        and (region is None or region == ctx.settings.region)
    ]  # fmt: skip
    next_token = None
    if limit is not None and len(buckets) > limit:
        buckets = buckets[:limit]
        next_token = encode_token(buckets[-1].name)
    entries = [xml.BucketEntry(b.name, b.created_ns) for b in buckets]
    return xml_reply(xml.list_all_my_buckets(
        ctx.settings.owner, entries, region=ctx.settings.region, continuation_token=next_token,
        prefix=prefix if "prefix" in q else None,
    ))  # fmt: skip


async def create_bucket(ctx: S3Context) -> Reply:
    # (The name was validated by routing.)
    lock = ctx.headers.get("x-amz-bucket-object-lock-enabled", "").strip().lower()
    if lock not in ("", "true", "false"):
        raise InvalidArgument("x-amz-bucket-object-lock-enabled must be true or false",
                              ArgumentName="x-amz-bucket-object-lock-enabled")
    body = await ctx.read_xml_body()
    check_location_constraint(xml.parse_create_bucket_configuration(body), ctx.settings.region)
    try:
        await ctx.store.create_bucket(ctx.bucket, object_lock=lock == "true")
    except BucketAlreadyOwnedByYou:
        # AWS's legacy us-east-1 answer, which s3cmd and Terraform rely on: 200,
        # and the bucket and its contents are left alone.  Other regions: 409.
        if ctx.settings.region != "us-east-1":
            raise
    # AWS: "/bucket" for path style, the bucket's own URL for virtual-hosted style.
    location = f"{ctx.base_url()}/" if ctx.route.virtual_host else f"/{ctx.bucket}"
    return Reply(200, [("Location", location)])


async def head_bucket(ctx: S3Context) -> Reply:
    await ctx.store.head_bucket(ctx.bucket)
    return Reply(200, [("x-amz-bucket-region", ctx.settings.region)])


async def delete_bucket(ctx: S3Context) -> Reply:
    await ctx.store.delete_bucket(ctx.bucket)
    return Reply(204)


async def get_bucket_location(ctx: S3Context) -> Reply:
    await ctx.store.head_bucket(ctx.bucket)
    return xml_reply(xml.location_constraint(ctx.settings.region))


# ------------------------------------------------------------------ listings
def _max_keys(ctx: S3Context) -> int:
    raw = ctx.query.get("max-keys")
    if raw is None or raw == "":
        return MAX_KEYS
    if not (raw.isdigit() and raw.isascii()):
        raise InvalidArgument("Provided max-keys not an integer or within integer range",
                              ArgumentName="max-keys", ArgumentValue=raw)  # fmt: skip
    return min(decimal(raw), MAX_KEYS)


def _encoding_type(ctx: S3Context) -> str | None:
    value = ctx.query.get("encoding-type")
    if value is None:
        return None
    if value.lower() != "url":
        raise InvalidArgument("Invalid Encoding Method specified in Request",
                              ArgumentName="encoding-type", ArgumentValue=value)  # fmt: skip
    return "url"


def encode_token(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode("utf-8")).decode("ascii")


def decode_token(token: str) -> str:
    try:
        raw = base64.b64decode(token.encode("ascii"), altchars=b"-_", validate=True)
        return raw.decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidArgument("The continuation token provided is incorrect",
                              ArgumentName="continuation-token") from None  # fmt: skip


async def _list(
    ctx: S3Context, *, start_after: str, max_keys: int, delimiter: str, prefix: str
) -> tuple[list[xml.ObjectEntry], list[str], bool, str | None]:
    if max_keys == 0:
        await ctx.store.head_bucket(ctx.bucket)
        return [], [], False, None
    page = await ctx.store.list_objects(
        ctx.bucket, prefix=prefix, delimiter=delimiter, start_after=start_after, max_keys=max_keys
    )
    objects = [xml.ObjectEntry(o.key, o.mtime_ns, o.etag, o.size, o.storage_class) for o in page.objects]
    return objects, list(page.prefixes), page.is_truncated, page.next_start_after


async def list_objects_v2(ctx: S3Context) -> Reply:
    q = ctx.query
    max_keys = _max_keys(ctx)
    encoding = _encoding_type(ctx)
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    token = q.get("continuation-token")
    start_after = q.get("start-after", "")
    resume = decode_token(token) if token is not None else start_after
    if token is not None and start_after > resume:
        resume = start_after  # both given: the later bound wins
    objects, prefixes, truncated, next_after = await _list(
        ctx, start_after=resume, max_keys=max_keys, delimiter=delimiter, prefix=prefix
    )
    fetch_owner = q.get("fetch-owner", "").lower() == "true"
    page = xml.ListingPage(
        bucket=ctx.bucket,
        prefix=prefix,
        delimiter=delimiter,
        max_keys=max_keys,
        is_truncated=truncated,
        objects=objects,
        prefixes=prefixes,
        encoding_type=encoding,
        owner=ctx.settings.owner if fetch_owner else None,
        v2=True,
        start_after=start_after or None,
        continuation_token=token,
        next_continuation_token=encode_token(next_after) if truncated and next_after else None,
    )
    return xml_reply(xml.list_bucket_result(page))


async def list_objects_v1(ctx: S3Context) -> Reply:
    q = ctx.query
    max_keys = _max_keys(ctx)
    encoding = _encoding_type(ctx)
    prefix, delimiter, marker = q.get("prefix", ""), q.get("delimiter", ""), q.get("marker", "")
    objects, prefixes, truncated, next_after = await _list(
        ctx, start_after=marker, max_keys=max_keys, delimiter=delimiter, prefix=prefix
    )
    page = xml.ListingPage(
        bucket=ctx.bucket,
        prefix=prefix,
        delimiter=delimiter,
        max_keys=max_keys,
        is_truncated=truncated,
        objects=objects,
        prefixes=prefixes,
        encoding_type=encoding,
        owner=ctx.settings.owner,
        v2=False,
        marker=marker,
        next_marker=next_after if truncated else None,
    )
    return xml_reply(xml.list_bucket_result(page))


HANDLERS: dict[str, Handler] = {
    "ListBuckets": list_buckets,
    "CreateBucket": create_bucket,
    "HeadBucket": head_bucket,
    "DeleteBucket": delete_bucket,
    "GetBucketLocation": get_bucket_location,
    "ListObjectsV2": list_objects_v2,
    "ListObjects": list_objects_v1,
}
