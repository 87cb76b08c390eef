"""Admin API calls for the lifecycle worker (registered in :mod:`titans3.s3.admin`).

=======  ==========================  ================================================
method   path (under /titans3/admin/) what
=======  ==========================  ================================================
GET      v1/lifecycle/status         the worker's ``statistics()``
POST     v1/lifecycle/start          start a pass now
=======  ==========================  ================================================
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from titans3.core.errors import NotImplementedS3
from titans3.s3.context import S3Context


def _worker(ctx: S3Context) -> Any:
    worker = (getattr(ctx.admin, "workers", None) or {}).get("lifecycle")
    if worker is None:
        raise NotImplementedS3("The lifecycle worker is not running on this node.")
    return worker


async def _status(ctx: S3Context) -> dict[str, Any]:
    return {"lifecycle": asdict(_worker(ctx).statistics())}


async def _start(ctx: S3Context) -> dict[str, Any]:
    _worker(ctx).start_pass()
    return {"message": "lifecycle pass started"}


ROUTES: dict[tuple[str, str], Callable[[S3Context], Awaitable[dict[str, Any]]]] = {
    ("GET", "v1/lifecycle/status"): _status,
    ("POST", "v1/lifecycle/start"): _start,
}
