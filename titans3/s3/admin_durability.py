"""Admin API calls for the durability workers (registered in :mod:`titans3.s3.admin`).

=======  ==========================  ================================================
method   path (under /titans3/admin/) what
=======  ==========================  ================================================
POST     v1/scrub/start              start a full scrub pass now
PUT      v1/scrub/rate               ``?bytes_per_second=N`` (0 = unthrottled)
GET      v1/repair/status            every worker's ``statistics()`` + healing drives
POST     v1/repair/object            ``?bucket=B&key=K``: queue one object for repair
POST     v1/gc/start                 start a GC pass now
GET      v1/object/inspect           ``?bucket=B&key=K[&deep=1]``: versions, EC, fragments
=======  ==========================  ================================================

The backend (``ctx.admin``) is the daemon's ``Host``: ``host.workers`` holds
the workers by name (:data:`titans3.runtime.WORKER_NAMES`),
``host.store`` the object store.  An endpoint whose workers are not running
answers 501 like any other unimplemented call.  Answers are JSON documents
built from the workers' frozen statistics records.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, is_dataclass
from typing import Any

from titans3.core.errors import InvalidArgument, NotImplementedS3
from titans3.s3.context import S3Context

WORKERS = ("scrubber", "heal-queue", "repair", "refill", "spares", "gc", "handoff", "lifecycle")


def _workers(ctx: S3Context) -> dict[str, Any]:
    workers = getattr(ctx.admin, "workers", None)
    if not workers or "scrubber" not in workers:
        raise NotImplementedS3("The durability workers are not running on this node.")
    return workers


def _doc(stats: Any) -> dict[str, Any]:
    return asdict(stats) if is_dataclass(stats) else dict(stats)


def _arg(ctx: S3Context, name: str) -> str:
    value = ctx.query.get(name)
    if value is None or value == "":
        raise InvalidArgument(f"Missing query parameter {name!r}", ArgumentName=name)
    return value


def _flag(ctx: S3Context, name: str) -> bool:
    return ctx.query.get(name, "").lower() in ("1", "true", "yes")


async def _status(ctx: S3Context) -> dict[str, Any]:
    workers = _workers(ctx)
    store = ctx.admin.store
    return {
        "host": store.host,
        "time": time.time(),
        "healing": [
            {"position": p, "slot": store.slots[p], "drive_id": store.drives[p].drive_id}
            for p in sorted(store.healing)
        ],
        "degraded_reads": store.degraded_reads,
        "partial_writes": store.partial_writes,
        "workers": {name: _doc(workers[name].statistics()) for name in WORKERS if name in workers},
    }


async def _scrub_start(ctx: S3Context) -> dict[str, Any]:
    scrubber = _workers(ctx)["scrubber"]
    started = scrubber.start_pass()
    return {"started": started,
            "message": "scrub pass started" if started else "a scrub pass is already running",
            "scrubber": _doc(scrubber.statistics())}


async def _scrub_rate(ctx: S3Context) -> dict[str, Any]:
    scrubber = _workers(ctx)["scrubber"]
    raw = _arg(ctx, "bytes_per_second")
    try:
        rate = int(raw)
        if rate < 0:
            raise ValueError
    except ValueError:
        raise InvalidArgument("bytes_per_second must be an integer >= 0 (0 = unthrottled)",
                              ArgumentName="bytes_per_second", ArgumentValue=raw) from None
    scrubber.set_rate(rate)
    return {"rate_limit": rate}


async def _gc_start(ctx: S3Context) -> dict[str, Any]:
    gc = _workers(ctx)["gc"]
    return {"started": gc.start_pass()}


async def _repair_object(ctx: S3Context) -> dict[str, Any]:
    queue = _workers(ctx)["heal-queue"]
    store = ctx.admin.store
    bucket, key = _arg(ctx, "bucket"), _arg(ctx, "key")
    brec = await store.buckets.get(bucket)
    queued = queue.push_nowait(brec.bucket_id, key.encode("utf-8", "surrogateescape"), "admin")
    return {"queued": queued, "bucket": bucket, "key": key}


async def _inspect(ctx: S3Context) -> dict[str, Any]:
    workers = getattr(ctx.admin, "workers", None) or {}
    queue = workers.get("heal-queue")
    store = getattr(ctx.admin, "store", None)
    if store is None:
        raise NotImplementedS3("Object inspection is not available on this endpoint.")
    on_damage = (lambda b, k: queue.push_nowait(b, k, "inspect")) if queue is not None else None
    return await store.inspect_object(_arg(ctx, "bucket"), _arg(ctx, "key"),
                                      deep=_flag(ctx, "deep"), on_damage=on_damage)


ROUTES: dict[tuple[str, str], Callable[[S3Context], Awaitable[dict[str, Any]]]] = {
    ("POST", "v1/scrub/start"): _scrub_start,
    ("PUT", "v1/scrub/rate"): _scrub_rate,
    ("GET", "v1/repair/status"): _status,
    ("POST", "v1/repair/object"): _repair_object,
    ("POST", "v1/gc/start"): _gc_start,
    ("GET", "v1/object/inspect"): _inspect,
}
