"""Bucket data-protection configuration: default encryption (and, below, object
lock and lifecycle).

Theory of operation
-------------------
Each document is validated by its pure module (``titans3.s3.encryption_config``
...) and stored as compact JSON in the bucket record
(``put_bucket_config``), which the object layer reads on every write it
governs -- default encryption on PUT, CreateMultipartUpload and copies.
Put* bodies need ``Content-MD5`` or an ``x-amz-checksum-*`` as AWS requires
(:func:`titans3.s3.handlers_bucket_config.read_checked_xml`).
"""

from __future__ import annotations

from titans3.s3 import encryption_config
from titans3.s3.context import Handler, Reply, S3Context, xml_reply
from titans3.s3.handlers_bucket_config import read_checked_xml


# ---------------------------------------------------------------- encryption
async def put_bucket_encryption(ctx: S3Context) -> Reply:
    await ctx.store.head_bucket(ctx.bucket)
    doc = encryption_config.parse(await read_checked_xml(ctx, encryption_config.MAX_BODY))
    await ctx.store.put_bucket_config(ctx.bucket, encryption_config.NAME, doc)
    return Reply(200)


async def get_bucket_encryption(ctx: S3Context) -> Reply:
    raw = await ctx.store.get_bucket_config(ctx.bucket, encryption_config.NAME)
    if raw is None:
        raise encryption_config.NotFound(BucketName=ctx.bucket)
    return xml_reply(encryption_config.render(raw))


async def delete_bucket_encryption(ctx: S3Context) -> Reply:
    await ctx.store.head_bucket(ctx.bucket)
    await ctx.store.put_bucket_config(ctx.bucket, encryption_config.NAME, None)
    return Reply(204)


HANDLERS: dict[str, Handler] = {
    "PutBucketEncryption": put_bucket_encryption,
    "GetBucketEncryption": get_bucket_encryption,
    "DeleteBucketEncryption": delete_bucket_encryption,
}
