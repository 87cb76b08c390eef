"""Data-protection operations: default encryption, object lock (bucket
configuration, per-version retention and legal hold) and lifecycle.

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

from titans3.core import lifecycle as lc
from titans3.s3 import encryption_config, lifecycle_config, object_lock
from titans3.s3 import object_options as opts
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


# ---------------------------------------------------------------- object lock
async def put_object_lock_configuration(ctx: S3Context) -> Reply:
    await ctx.store.head_bucket(ctx.bucket)
    doc = object_lock.parse_config(await read_checked_xml(ctx, object_lock.MAX_BODY))
    await ctx.store.put_object_lock_config(ctx.bucket, doc)
    return Reply(200)


async def get_object_lock_configuration(ctx: S3Context) -> Reply:
    raw = await ctx.store.get_bucket_config(ctx.bucket, object_lock.NAME)
    if raw is None:
        raise object_lock.ConfigNotFound(BucketName=ctx.bucket)
    return xml_reply(object_lock.render_config(raw))


async def put_object_retention(ctx: S3Context) -> Reply:
    mode, until = object_lock.parse_retention(await read_checked_xml(ctx, object_lock.MAX_BODY))
    version_id = opts.version_id_param(ctx.query)
    await ctx.store.put_object_retention(ctx.bucket, ctx.key, mode, until, version_id=version_id,
                                         bypass_governance=object_lock.may_bypass(ctx.headers))
    return Reply(200)


async def get_object_retention(ctx: S3Context) -> Reply:
    lock = await ctx.store.get_object_lock(ctx.bucket, ctx.key,
                                           version_id=opts.version_id_param(ctx.query))
    if not lock.mode:
        raise object_lock.NoSuchObjectLockConfiguration()
    return xml_reply(object_lock.render_retention(lock))


async def put_object_legal_hold(ctx: S3Context) -> Reply:
    on = object_lock.parse_legal_hold(await read_checked_xml(ctx, object_lock.MAX_BODY))
    await ctx.store.put_object_legal_hold(ctx.bucket, ctx.key, on,
                                          version_id=opts.version_id_param(ctx.query))
    return Reply(200)


async def get_object_legal_hold(ctx: S3Context) -> Reply:
    lock = await ctx.store.get_object_lock(ctx.bucket, ctx.key,
                                           version_id=opts.version_id_param(ctx.query))
    if not lock.legal_hold_set:
        raise object_lock.NoSuchObjectLockConfiguration()
    return xml_reply(object_lock.render_legal_hold(lock.legal_hold))


# ---------------------------------------------------------------- lifecycle
async def put_bucket_lifecycle_configuration(ctx: S3Context) -> Reply:
    await ctx.store.head_bucket(ctx.bucket)
    rules = lifecycle_config.parse(await read_checked_xml(ctx, lifecycle_config.MAX_BODY),
                                   mapped=set(ctx.store.storage_classes))
    await ctx.store.put_bucket_config(ctx.bucket, lifecycle_config.NAME, lc.dump(rules))
    return Reply(200)


async def get_bucket_lifecycle_configuration(ctx: S3Context) -> Reply:
    raw = await ctx.store.get_bucket_config(ctx.bucket, lifecycle_config.NAME)
    if raw is None:
        raise lifecycle_config.NoSuchLifecycleConfiguration(BucketName=ctx.bucket)
    return xml_reply(lifecycle_config.render(raw))


async def delete_bucket_lifecycle(ctx: S3Context) -> Reply:
    await ctx.store.head_bucket(ctx.bucket)
    await ctx.store.put_bucket_config(ctx.bucket, lifecycle_config.NAME, None)
    return Reply(204)


HANDLERS: dict[str, Handler] = {
    "PutBucketLifecycleConfiguration": put_bucket_lifecycle_configuration,
    "GetBucketLifecycleConfiguration": get_bucket_lifecycle_configuration,
    "DeleteBucketLifecycle": delete_bucket_lifecycle,
    "PutObjectLockConfiguration": put_object_lock_configuration,
    "GetObjectLockConfiguration": get_object_lock_configuration,
    "PutObjectRetention": put_object_retention,
    "GetObjectRetention": get_object_retention,
    "PutObjectLegalHold": put_object_legal_hold,
    "GetObjectLegalHold": get_object_legal_hold,
    "PutBucketEncryption": put_bucket_encryption,
    "GetBucketEncryption": get_bucket_encryption,
    "DeleteBucketEncryption": delete_bucket_encryption,
}
