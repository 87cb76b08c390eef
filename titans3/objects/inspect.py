"""``object inspect``: one object's versions, EC scheme and the health of every fragment.

Theory of operation
-------------------
The operator's first tool when something is wrong, so it shows what the drives
hold, not what a GET would conclude: every visible version (newest first) with
its scheme and, per fragment index, the drive, host and health from
:func:`titans3.objects.repair.examine` (``ok``, ``missing``, ``corrupt``,
``stale``, ``offline``); plus the version ids some drive still holds that the
read rule ignores (remnants of failed writes or missed deletes, GC's work).
The default check reads fragment headers only; ``deep`` reads every block,
which also quarantines what it finds corrupt -- so a deep inspect that finds
damage queues the key for repair (``on_damage``), as a GET would.

The answer is a plain JSON-ready dict; the admin API returns it as is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from titans3.drive.records import STORAGE_CLASS
from titans3.objects.lockrules import LEGAL_HOLD, RETENTION
from titans3.objects.repair import OFFLINE, OK, ObjectRepair, examine, streams_of
from titans3.objects.resolve import s3_version_id
from titans3.objects.sse import SSE
from titans3.objects.validate import check_key

if TYPE_CHECKING:
    from titans3.objects.context import StoreContext


async def inspect_object(
    ctx: StoreContext, bucket: str, key: str, *, deep: bool = False,
    repairer: ObjectRepair | None = None,
    on_damage: Callable[[bytes, bytes], None] | None = None,
) -> dict[str, Any]:
    """Raises ``NoSuchBucket``; an unknown key gives an empty ``versions`` list."""
    brec = await ctx.buckets.get(bucket)
    kb = check_key(key)
    rep = repairer or ObjectRepair(ctx)
    ks = await rep.gather(brec.bucket_id, kb)
    placement = []
    for i, pos in enumerate(ks.positions):
        d = ctx.drives[pos]
        placement.append({
            "index": i, "position": pos, "drive_id": d.drive_id,
            "slot": ctx.slots[pos], "host": getattr(d, "host", ctx.host),
            "path": str(getattr(d, "root", "")), "state": d.state.value,
            "healing": pos in ctx.healing,
        })
    versions = []
    healthy = True
    damaged = False
    for n_ver, r in enumerate(ks.resolved):
        rec = r.record
        frags = await examine(ctx, ks, r, deep=deep)
        rows = []
        for f in frags:
            rows.append({
                "index": f.index, "drive_id": f.drive_id, "host": placement[f.index]["host"],
                "slot": placement[f.index]["slot"], "health": f.health, "detail": f.detail,
                "parity": (not rec.dm) and f.index >= rec.ec[0],
            })
            if f.health != OK:
                healthy = False
                if f.health != OFFLINE:
                    damaged = True
        k, m, seg = rec.ec
        versions.append({
            "version_id": s3_version_id(rec), "vid": rec.vid, "latest": n_ver == 0,
            "delete_marker": rec.dm, "size": rec.size, "etag": rec.etag,
            "mtime_ns": rec.mtime_ns, "holders": r.count, "readable": r.readable,
            "ec": None if rec.dm else {"k": k, "m": m, "segment_size": seg},
            "storage_class": None if rec.dm else rec.extra.get(STORAGE_CLASS, "STANDARD"),
            "inline": rec.inline, "parts": len(rec.parts),
            "streams": [] if rec.dm else [{"data_id": s, "size": z} for s, z in streams_of(rec)],
            "fragments": rows,
            "healthy_fragments": sum(1 for f in frags if f.health == OK),
            "fragments_total": len(frags),
            # Encryption mode (never a key) and object lock, for the operator.
            "encryption": {"S3": "SSE-S3", "KMS": "SSE-KMS", "C": "SSE-C"}.get((rec.extra.get(SSE) or {}).get("m", "")),
            "retention": rec.extra.get(RETENTION), "legal_hold": bool(rec.extra.get(LEGAL_HOLD)),
        })
    if damaged and on_damage is not None:
        on_damage(brec.bucket_id, kb)
    return {
        "bucket": bucket, "key": key, "bucket_id": brec.bucket_id.hex(),
        "deep": deep, "placement": placement, "versions": versions,
        "invisible_versions": ks.invisible, "healthy": healthy and bool(versions),
    }
