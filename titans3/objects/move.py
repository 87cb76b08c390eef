"""Moving one key's fragments from the old ring's drives to the new ring's.

Theory of operation
-------------------
During a ring change a partition's fragment position ``j`` may name a new
drive (at most ``m`` positions per partition per epoch).  For every such
position :func:`move_key` copies, from the old drive to the new one, every
version record the new drive does not hold yet (by version id -- a version
written or deleted through the new ring since the change is already there and
wins) together with its data streams: fragment files are streamed across
``COPY_PIECE`` at a time (memory stays at one piece), inline fragments are
staged inline, and the record is committed with its data promoted in one
durable step, exactly as a PUT's commit.  Only then are the versions removed
from the old drive (a ``tomb`` per version, which frees its data): a reader
that still asks the old drive finds either the old copy or, after the commit,
the new one.

When the old drive cannot be read (down, or the fragment is bad), the fragment
is rebuilt from ``k`` other holders with the repairer's streaming
:func:`~titans3.objects.repair.rebuild_stream` instead.  Tombstones are never
copied; a version the old drive holds but whose other fragments were deleted
is copied anyway and left to the normal read rule (fewer than ``W`` holders:
ignored) and GC.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from titans3.core.errors import DriveError
from titans3.drive.protocol import Drive
from titans3.drive.records import VersionRecord
from titans3.objects.fragcopy import copy_fragment
from titans3.ring.builder import Ring
from titans3.ring.evolve import moved_positions

if TYPE_CHECKING:
    from titans3.objects.context import StoreContext

log = logging.getLogger(__name__)



@dataclass(slots=True)
class MoveOutcome:
    fragments: int = 0
    bytes: int = 0
    errors: list[str] = field(default_factory=list)


async def _rebuild(ctx: StoreContext, bucket_id: bytes, key: bytes, rec: VersionRecord,
                   dst: Drive, old_positions: list[int]) -> int:
    """Rebuild fragment ``rec.frag_index`` on ``dst`` from the other holders."""
    from titans3.objects.repair import rebuild_stream, streams_of

    sources: dict[int, Drive] = {}
    for pos in set(ctx.placement(bucket_id, key)) | set(old_positions):
        d = ctx.drives[pos]
        if d is dst:
            continue
        try:
            for r in await d.read_versions(bucket_id, key):
                if r.vid == rec.vid and not r.tomb and r.frag_index != rec.frag_index:
                    sources.setdefault(r.frag_index, d)
        except DriveError:
            continue
    k, m, _ = rec.ec
    codec = ctx.codec(k, m)
    total = 0
    for data_id, size in streams_of(rec):
        done, n = await rebuild_stream(codec, ctx.layout(rec.ec, size), data_id, sources,
                                       {rec.frag_index: dst}, inline=rec.inline)
        if rec.frag_index not in done:
            raise DriveError(dst.drive_id, f"rebuilding {data_id} failed")
        total += n
    return total


async def move_key(ctx: StoreContext, bucket_id: bytes, key: bytes, old: Ring, new: Ring) -> MoveOutcome:
    out = MoveOutcome()
    p = new.partition_of(bucket_id, key)
    pos_of = {s: i for i, s in enumerate(ctx.slots)}
    old_ids = [old.members[i].drive_id for i in old.table[p]]
    new_ids = [new.members[i].drive_id for i in new.table[p]]
    old_positions = [pos_of[d] for d in old_ids if d in pos_of]
    for j in moved_positions(old, new, p):
        if old_ids[j] not in pos_of or new_ids[j] not in pos_of:
            out.errors.append(f"position {j}: a drive of the ring is unknown here")
            continue
        src, dst = ctx.drives[pos_of[old_ids[j]]], ctx.drives[pos_of[new_ids[j]]]
        try:
            have = {r.vid for r in await dst.read_versions(bucket_id, key)}
        except DriveError as e:
            out.errors.append(f"{dst.drive_id}: {e}")
            continue
        try:
            src_recs: list[VersionRecord] | None = await src.read_versions(bucket_id, key)
        except DriveError as e:
            log.info("rebalance: %s unreadable (%s); rebuilding from other fragments", src.drive_id, e)
            src_recs = None
        if src_recs is None:  # rebuild what the others say this position must hold
            src_recs = []
            for pos in old_positions:
                if pos == pos_of[old_ids[j]]:
                    continue
                try:
                    for r in await ctx.drives[pos].read_versions(bucket_id, key):
                        if not r.tomb and all(r.vid != x.vid for x in src_recs):
                            src_recs.append(r)
                except DriveError:
                    continue
            src_recs = [_as_index(r, j) for r in src_recs]
            from_src = False
        else:
            from_src = True
        moved: list[VersionRecord] = []
        for rec in sorted(src_recs, key=lambda r: r.vid):
            if rec.tomb or rec.vid in have:
                continue
            try:
                ids = rec.data_ids() if not rec.dm else []
                nbytes = 0
                if from_src:
                    try:
                        for did in ids:
                            nbytes += await copy_fragment(src, dst, rec, did)
                    except DriveError as e:
                        log.info("rebalance: copy from %s failed (%s); rebuilding", src.drive_id, e)
                        nbytes = await _rebuild(ctx, bucket_id, key, rec, dst, old_positions)
                elif ids:
                    nbytes = await _rebuild(ctx, bucket_id, key, rec, dst, old_positions)
                await dst.commit_version(bucket_id, key, rec, promote=ids)
            except DriveError as e:
                out.errors.append(f"{key!r} {rec.vid} -> {dst.drive_id}: {e}")
                continue
            out.fragments += 1 if ids else 0
            out.bytes += nbytes
            moved.append(rec)
        if from_src and src.drive_id not in {ctx.drives[pos_of[d]].drive_id for d in new_ids
                                              if d in pos_of}:
            for rec in moved:  # the new drive holds them durably: free the old copies
                try:
                    await src.commit_version(bucket_id, key, VersionRecord(vid=rec.vid, tomb=True))
                except DriveError as e:
                    log.debug("rebalance: freeing %s on %s: %s", rec.vid, src.drive_id, e)
    return out


def _as_index(rec: VersionRecord, j: int) -> VersionRecord:
    from dataclasses import replace

    return replace(rec, frag_index=j)


async def copy_buckets(ctx: StoreContext, old: Ring, new: Ring) -> None:
    """Every bucket record onto the drives ``new`` has and ``old`` had not."""
    from titans3.objects.buckets import TABLE

    fresh = {m.drive_id for m in new.members} - {m.drive_id for m in old.members}
    if not fresh:
        return
    records = await ctx.buckets.list()
    for i, s in enumerate(ctx.slots):
        if s not in fresh:
            continue
        for rec in records:
            try:
                if await ctx.drives[i].get_meta(TABLE, rec.name.encode()) is None:
                    await ctx.drives[i].put_meta(TABLE, rec.name.encode(), rec.pack())
            except DriveError as e:
                log.warning("rebalance: bucket %s onto %s: %s", rec.name, s, e)
