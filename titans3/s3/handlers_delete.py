"""DeleteObjects (``POST /bucket?delete``): up to 1,000 deletes in one request.

Theory of operation
-------------------
The body must carry an integrity check, as AWS requires: ``Content-MD5`` or an
``x-amz-checksum-*`` value (header or trailer); without one the request is 400
``InvalidRequest``.  A wrong digest is ``BadDigest`` and deletes nothing.  A
body that is not a ``<Delete>`` document, lists no object or more than 1,000
is ``MalformedXML``.

Each listed object is an independent DeleteObject (same store call, same
versioning semantics); a failure of one becomes an ``<Error>`` entry for that
key and never fails the request.  Deleting a key or version that does not
exist is a success, as in AWS.  Entries naming the same key and version twice
are done once (AWS answers once).  Deletes run concurrently, a bounded number
at a time; the answer lists them in request order.  Quiet mode lists only the
errors.  Per-object conditions (``ETag``, ``LastModifiedTime``, ``Size``) are
not implemented: such an entry gets a ``NotImplemented`` error and is left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import trio

from titans3.core.errors import InvalidRequest, S3Error
from titans3.s3 import object_lock
from titans3.s3 import object_options as opts
from titans3.s3 import xml_objects as xo
from titans3.s3.checksums import HEADER_PREFIX
from titans3.s3.context import Handler, Reply, S3Context, xml_reply

log = logging.getLogger(__name__)

CONCURRENCY = 16
_NOT_VALUES = ("x-amz-checksum-mode", "x-amz-checksum-type", "x-amz-checksum-algorithm")


def has_integrity_header(headers: Mapping[str, str]) -> bool:
    if "content-md5" in headers or "x-amz-sdk-checksum-algorithm" in headers:
        return True
    if any(n.startswith(HEADER_PREFIX) and n not in _NOT_VALUES for n in headers):
        return True
    return "x-amz-checksum" in headers.get("x-amz-trailer", "").lower()


async def delete_objects(ctx: S3Context) -> Reply:
    if not has_integrity_header(ctx.headers):
        raise InvalidRequest("Missing required header for this request: Content-MD5")
    body = await opts.read_xml(ctx)
    objects, quiet = xo.parse_delete(body)
    await ctx.store.head_bucket(ctx.bucket)
    unique = list(dict.fromkeys((o.key, o.version_id, o.conditions) for o in objects))
    results: list[xo.Deleted | xo.DeleteError | None] = [None] * len(unique)
    limiter = trio.CapacityLimiter(CONCURRENCY)

    async def one(i: int, key: str, version_id: str | None, conditions: tuple[str, ...]) -> None:
        async with limiter:
            results[i] = await _delete_one(ctx, key, version_id, conditions)

    async with trio.open_nursery() as nursery:
        for i, (key, version_id, conditions) in enumerate(unique):
            nursery.start_soon(one, i, key, version_id, conditions)
    done = [r for r in results if r is not None]
    return xml_reply(xo.delete_result(done, quiet=quiet))


async def _delete_one(
    ctx: S3Context, key: str, version_id: str | None, conditions: tuple[str, ...]
) -> xo.Deleted | xo.DeleteError:
    if conditions:
        return xo.DeleteError(key, "NotImplemented",
                              f"Conditional deletes ({', '.join(conditions)}) are not implemented.",
                              version_id)  # fmt: skip
    try:
        if version_id is not None and not version_id:
            raise InvalidRequest("Version id cannot be the empty string")
        result = await ctx.store.delete_object(ctx.bucket, key, version_id=version_id,
                                               bypass_governance=object_lock.may_bypass(ctx.headers))
    except S3Error as err:
        if err.status >= 500:
            log.warning("DeleteObjects: %r (version %s) failed: %s", key, version_id, err)
        return xo.DeleteError(key, err.code, err.message, version_id)
    if version_id is not None:
        return xo.Deleted(key, version_id, result.delete_marker,
                          version_id if result.delete_marker else None)  # fmt: skip
    if result.delete_marker:
        return xo.Deleted(key, None, True, result.version_id)
    return xo.Deleted(key)


HANDLERS: dict[str, Handler] = {"DeleteObjects": delete_objects}
