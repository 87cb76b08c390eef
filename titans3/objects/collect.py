"""Garbage in the version lists: what GC may remove from a key, and removing it.

Theory of operation
-------------------
The write path frees old data itself (a null version's predecessors after it
reached quorum; versions on delete), but a crash can leave work undone, and a
drive that was away misses it.  What is left is of two kinds, both invisible
to readers already (:mod:`titans3.objects.resolve`):

* **remnants** -- a version held by fewer than ``k`` placement drives although
  *every* placement drive answered (so no read shows it): a failed or
  interrupted write, or the leftovers of a delete that a drive missed.  It can never have been
  acknowledged (or it was deleted), so its records and data go -- but only
  once it is older than the commit window, because a PUT that is committing
  right now looks exactly like this for a moment.
* **shadowed nulls** -- null versions older than the visible null version,
  once that one is held by at least ``W`` drives (it reached its write quorum;
  the purge that should have followed did not run).

:func:`plan` is the pure rule (records in, tombstones per drive out); it
refuses to decide anything while some placement drive is silent or healing,
because then "not held" cannot be told from "not asked".  :func:`collect_key`
applies a plan with ordinary tombstone commits, so drives free the data in the
same durable step as always.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from titans3.core.errors import DriveError
from titans3.drive.records import REFS, VersionRecord
from titans3.objects.repair import record_age
from titans3.objects.resolve import resolve_versions, write_quorum

if TYPE_CHECKING:
    from titans3.objects.context import StoreContext
    from titans3.objects.repair import KeyState

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Removal:
    index: int  # placement index of the drive
    tomb: VersionRecord  # the tombstone operation to commit there
    reason: str  # "remnant" | "shadowed-null"


def plan(
    per_drive: Sequence[Sequence[VersionRecord] | None], *, k: int, w: int, now_ns: int,
    window: float, m: int | None = None,
) -> list[Removal]:
    """Tombstones that remove garbage from a key (see module doc); pure."""
    if any(recs is None for recs in per_drive):
        return []
    resolved = resolve_versions(per_drive, k=k, w=w, anchors=True, m=m)  # rename anchors are kept
    visible = {r.record.vid for r in resolved}
    out: list[Removal] = []
    counts: dict[str, int] = {}
    for recs in per_drive:
        for r in recs or ():
            if not r.tomb:
                counts[r.vid] = counts.get(r.vid, 0) + 1
    for i, recs in enumerate(per_drive):
        for r in recs or ():
            if r.tomb or r.vid in visible:
                continue
            vw = write_quorum(r.ec[0], r.ec[1]) if not r.dm else w
            if counts[r.vid] < vw and record_age(r, now_ns) >= window:
                out.append(Removal(i, VersionRecord(vid=r.vid, tomb=True), "remnant"))
    newest_null = next((r for r in resolved if r.record.null), None)
    if newest_null is not None:
        rec = newest_null.record
        vw = w if rec.dm else write_quorum(rec.ec[0], rec.ec[1])
        if newest_null.count >= vw:
            purge = VersionRecord(vid=rec.vid, tomb=True, null=True)
            for i, recs in enumerate(per_drive):
                if any(r.null and not r.tomb and r.vid < rec.vid and not r.extra.get(REFS)
                       for r in recs or ()):
                    out.append(Removal(i, purge, "shadowed-null"))
    return out


async def collect_key(ctx: StoreContext, ks: KeyState, *, window: float, now_ns: int) -> int:
    """Apply :func:`plan` to one key; returns the tombstones committed."""
    per = [None if pos in ctx.healing else ks.per[j] for j, pos in enumerate(ks.positions)]
    done = 0
    for rm in plan(per, k=ks.k, w=ks.w, now_ns=now_ns, window=window, m=ks.m):
        d = ctx.drives[ks.positions[rm.index]]
        try:
            await d.commit_version(ks.bucket_id, ks.key, rm.tomb)
            done += 1
            log.info("gc: removed %s %s of %s/%r on %s", rm.reason, rm.tomb.vid,
                     ks.bucket_id.hex(), ks.key, d.drive_id)
        except DriveError as e:
            log.warning("gc: removing %s on %s failed: %s", rm.tomb.vid, d.drive_id, e)
    return done
