"""Admin API calls on single objects (registered in :mod:`titans3.s3.admin`).

=======  ==========================  ================================================
method   path (under /titans3/admin/) what
=======  ==========================  ================================================
POST     v1/object/rename            ``?bucket=B&src=K&dst=K2[&noreplace=1]``: give an
                                     object a new name without copying its data
=======  ==========================  ================================================

S3 has no rename; this is the object layer's ``rename_object`` (the one the
FUSE mount uses) for operators and tests.  Errors are the store's S3 errors
(404 NoSuchKey, 412 PreconditionFailed with ``noreplace``, 503 SlowDown).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from titans3.core.errors import InvalidArgument, NotImplementedS3
from titans3.objects import WriteCondition
from titans3.s3.context import S3Context


def _arg(ctx: S3Context, name: str) -> str:
    value = ctx.query.get(name)
    if value is None or value == "":
        raise InvalidArgument(f"Missing query parameter {name!r}", ArgumentName=name)
    return value


async def _rename(ctx: S3Context) -> dict[str, Any]:
    store = getattr(ctx.admin, "store", None)
    if store is None:
        raise NotImplementedS3("Renaming objects is not available on this endpoint.")
    bucket, src, dst = _arg(ctx, "bucket"), _arg(ctx, "src"), _arg(ctx, "dst")
    noreplace = ctx.query.get("noreplace", "").lower() in ("1", "true", "yes")
    t0 = time.perf_counter()
    res = await store.rename_object(
        bucket, src, dst, condition=WriteCondition(if_none_match=True) if noreplace else None)
    return {"bucket": bucket, "src": src, "dst": dst, "size": res.info.size,
            "etag": res.info.etag, "version_id": res.info.version_id,
            "source_delete_marker": res.source_version_id,
            "seconds": round(time.perf_counter() - t0, 6)}


ROUTES: dict[tuple[str, str], Callable[[S3Context], Awaitable[dict[str, Any]]]] = {
    ("POST", "v1/object/rename"): _rename,
}
