"""Object tagging: Put/Get/DeleteObjectTagging (``?tagging`` on a key).

Theory of operation
-------------------
Tags belong to a version (the current one, or ``?versionId=``); the store keeps
them in the version record and enforces AWS's limits
(``titans3.objects.tagging``).  The front parses the ``<Tagging>`` body and
answers with the version id it acted on (shown by the rules of
``titans3.s3.object_options``).  A delete marker has no tags: reading them is
404 (current version) or 405 (named by version id); changing them is 405.
Tags given at write time (``x-amz-tagging`` on PUT, CreateMultipartUpload,
CopyObject) are handled by those operations.
"""

from __future__ import annotations

from titans3.objects import validate_tags
from titans3.s3 import object_options as opts
from titans3.s3 import xml_objects as xo
from titans3.s3.context import Handler, Reply, S3Context, xml_reply


async def put_object_tagging(ctx: S3Context) -> Reply:
    version_id = opts.version_id_param(ctx.query)
    tags = validate_tags(xo.parse_tagging(await opts.read_xml(ctx)))
    vid = await ctx.store.put_object_tagging(ctx.bucket, ctx.key, tags, version_id=version_id)
    reply = Reply(200)
    await opts.add_version_header(reply, ctx, vid)
    return reply


async def get_object_tagging(ctx: S3Context) -> Reply:
    version_id = opts.version_id_param(ctx.query)
    vid, tags = await ctx.store.get_object_tagging(ctx.bucket, ctx.key, version_id=version_id)
    reply = xml_reply(xo.tagging(tags))
    await opts.add_version_header(reply, ctx, vid)
    return reply


async def delete_object_tagging(ctx: S3Context) -> Reply:
    version_id = opts.version_id_param(ctx.query)
    vid = await ctx.store.delete_object_tagging(ctx.bucket, ctx.key, version_id=version_id)
    reply = Reply(204)
    await opts.add_version_header(reply, ctx, vid)
    return reply


HANDLERS: dict[str, Handler] = {
    "PutObjectTagging": put_object_tagging,
    "GetObjectTagging": get_object_tagging,
    "DeleteObjectTagging": delete_object_tagging,
}
