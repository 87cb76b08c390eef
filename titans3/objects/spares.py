"""Spare placements: a FAILED drive's fragments rebuilt on other drives (DESIGN §3, §7).

Theory of operation
-------------------
A drive that is *failed* (the health loop's verdict, or ``titanctl disk
drain``) may not come back for days; until a blank replacement is refilled,
every stripe it was in runs one fragment short.  :func:`rebuild_key` restores
that fragment of every visible version of a key on the key's **spare
drive**: the first drive of the ring's handoff sequence
(:meth:`Ring.handoffs_for`) *outside* the stripe that is online and not
healing -- the drive a PUT made while the primary is down hands the fragment
to (``objects/handoff.py``).  The rebuilt fragment is stored exactly like a
hinted write: data under :func:`hinted_id`, the primary's record in the spare
drive's ``hints`` table, promoted in one durable step.  Nothing new on disk,
and what already works for hints keeps working: GC keeps hinted data, and
when the slot's replacement has been refilled the handoff replayer finds the
primary holding the version and drops the hint -- placements move back to the
ring's primaries (docs/durability.md, "Spare placements").

A ring without drives outside the stripe (6 drives, EC 4+2) has no spare: a
second fragment on a live primary would not survive the loss of that drive,
so nothing is rebuilt and the tracker says so.

**Reads.**  For a placement drive that is FAILED, :func:`fill_failed`
collects the hinted records meant for its slot from the key's spare drives
and hands them to the read rule as a :class:`~titans3.objects.resolve.Partial`
answer: its records count as holders (their fragments are read from the
spare, :func:`titans3.objects.handoff.holder`), but the slot still counts as
*unseen* for the versions it lacks -- a spare that has not been rebuilt yet
(or a hint lost with another drive) can never make an acknowledged version
look unacknowledged.

Invariants: only versions the read rule shows are copied (never created), so
nothing deleted is resurrected; one rebuild per key at a time and never beside
a repair of it (the repairer's per-key lock); versions younger than the repair
grace are left to their PUT.
"""

from __future__ import annotations

import logging
import time
from contextlib import suppress
from dataclasses import replace
from typing import TYPE_CHECKING

import trio

from titans3.core.errors import DriveError
from titans3.drive.protocol import Drive, DriveState
from titans3.drive.records import REF, VersionRecord
from titans3.objects.hinted import (
    HINTS,
    HintedDrive,
    HintedRecord,
    hinted_id,
    key_hash,
    unpack_hint,
)
from titans3.objects.repair import (
    OFFLINE,
    KeyState,
    ObjectRepair,
    RepairOutcome,
    examine,
    rebuild_stream,
    record_age,
    streams_of,
)
from titans3.objects.resolve import Partial, Resolved, same_encoding

if TYPE_CHECKING:
    from titans3.objects.context import StoreContext

log = logging.getLogger(__name__)


def spare_drives(ctx: StoreContext, bucket_id: bytes, key: bytes, positions: list[int]) -> list[int]:
    """Positions of the key's drives outside its stripe, in handoff order."""
    inrow = set(positions)
    out = []
    for slot in ctx.ring.handoffs_for(bucket_id, key):
        pos = ctx._by_id.get(slot)
        if pos is not None and pos not in inrow:
            out.append(pos)
    return out


def spare_for(ctx: StoreContext, bucket_id: bytes, key: bytes, positions: list[int]) -> int | None:
    """The spare drive a failed primary's fragments of this key go to (None: no spare now)."""
    for pos in spare_drives(ctx, bucket_id, key, positions):
        if pos not in ctx.healing and ctx.drives[pos].state == DriveState.ONLINE:
            return pos
    return None


async def _hints_for(ctx: StoreContext, pos: int, bucket_id: bytes, key: bytes
                     ) -> list[tuple[str, VersionRecord]]:
    """(slot, record) of every hint the drive at ``pos`` holds for the key."""
    out = []
    for hk, raw in await ctx.drives[pos].list_meta(HINTS, prefix=key_hash(bucket_id, key), limit=1000):
        h = unpack_hint(hk, raw)
        if h.bucket_id == bucket_id and h.key == key:
            out.append((h.slot, h.record))
    return out


async def fill_failed(ctx: StoreContext, bucket_id: bytes, key: bytes, positions: list[int],
                      per: list[list[VersionRecord] | None]) -> None:
    """Give FAILED placement drives their spares' records (a Partial answer), in place."""
    failed = {ctx.slots[p]: j for j, p in enumerate(positions)
              if per[j] is None and ctx.drives[p].state == DriveState.FAILED}
    if not failed:
        return
    found: dict[int, dict[tuple[str, int], VersionRecord]] = {}

    async def one(pos: int) -> None:
        try:
            hints = await _hints_for(ctx, pos, bucket_id, key)
        except DriveError:
            return
        for slot, rec in hints:
            j = failed.get(slot)
            if j is not None and rec.frag_index == j:
                fields = {f: getattr(rec, f) for f in VersionRecord.__dataclass_fields__}
                found.setdefault(j, {})[(rec.vid, pos)] = HintedRecord(**fields, via=pos)

    async with trio.open_nursery() as nursery:
        for pos in spare_drives(ctx, bucket_id, key, positions):
            if pos not in ctx.healing and ctx.drives[pos].state == DriveState.ONLINE:
                nursery.start_soon(one, pos)
    for j, held in found.items():
        by_vid: dict[str, VersionRecord] = {}
        for (vid, _), rec in sorted(held.items(), key=lambda kv: kv[0]):
            by_vid.setdefault(vid, rec)
        per[j] = Partial(sorted(by_vid.values(), key=lambda r: r.vid, reverse=True))


async def sources_for(ctx: StoreContext, ks: KeyState, rec: VersionRecord) -> dict[int, Drive]:
    """Fragments of ``rec`` that spare drives hold for slots that are failed, away
    or healing: more sources for a repair or refill whose primaries are short."""
    want = {ctx.slots[p]: j for j, p in enumerate(ks.positions)
            if p in ctx.healing or ctx.drives[p].state != DriveState.ONLINE}
    out: dict[int, Drive] = {}
    if not want:
        return out
    for pos in spare_drives(ctx, ks.bucket_id, ks.key, ks.positions):
        if pos in ctx.healing or ctx.drives[pos].state != DriveState.ONLINE:
            continue
        try:
            hints = await _hints_for(ctx, pos, ks.bucket_id, ks.key)
        except DriveError:
            continue
        for slot, h in hints:
            j = want.get(slot)
            if j is not None and h.frag_index == j and h.vid == rec.vid and same_encoding(h, rec):
                out.setdefault(j, HintedDrive(ctx.drives[pos], j, slot))  # type: ignore[arg-type]
    return out


async def rebuild_key(ctx: StoreContext, repair: ObjectRepair, bucket_id: bytes, key: bytes,
                      failed: int) -> RepairOutcome:
    """Rebuild the FAILED drive ``failed``'s fragments of every visible version of
    the key on the key's spare drive (module doc)."""
    out = RepairOutcome(bucket_id, key)
    async with repair.locked(bucket_id, key):
        ks = await repair.gather(bucket_id, key)
        if failed not in ks.positions:
            return out
        j = ks.positions.index(failed)
        spare = spare_for(ctx, bucket_id, key, ks.positions)
        if spare is None:
            if spare_drives(ctx, bucket_id, key, ks.positions):
                out.deferred = True  # the spares are away: later
            else:
                out.errors.append("no drive outside the stripe to rebuild on")
            return out
        hd = HintedDrive(ctx.drives[spare], j, ctx.slots[failed])
        try:
            have = {(rec.vid, slot) for slot, rec in await _hints_for(ctx, spare, bucket_id, key)}
        except DriveError as e:
            out.deferred = True
            out.errors.append(f"hints on {hd.drive_id}: {e}")
            return out
        now = time.time_ns()
        for r in ks.resolved:
            rec = r.record
            out.versions += 1
            if (rec.vid, hd.slot) in have or (not rec.dm and j >= rec.ec[0] + rec.ec[1]):
                continue
            if record_age(rec, now) < repair.grace:
                out.deferred = True
                continue
            await _rebuild_version(ctx, ks, r, j, hd, out)
    return out


async def _rebuild_version(ctx: StoreContext, ks: KeyState, r: Resolved, j: int, hd: HintedDrive,
                           out: RepairOutcome) -> None:
    rec = r.record
    ids: list[str] = []
    if not (rec.dm or REF in rec.extra):
        k, m, _ = rec.ec
        frags = await examine(ctx, ks, r)
        for data_id, size in streams_of(rec):
            sources = {f.index: ctx.drives[f.position] for f in frags
                       if f.record_ok and f.health != OFFLINE and data_id not in f.bad_streams}
            if len(sources) < k:
                out.deferred = True  # repair's business first (or lost: the heal queue says so)
                out.errors.append(f"{data_id}: {len(sources)} healthy fragments, {k} needed")
                break
            try:
                done, nbytes = await rebuild_stream(ctx.codec(k, m), ctx.layout(rec.ec, size), data_id,
                                                    sources, {j: hd}, inline=rec.inline)  # type: ignore[dict-item]
            except DriveError as e:
                out.errors.append(f"{data_id}: {e}")
                break
            if j not in done:
                out.errors.append(f"{data_id}: staging on {hd.drive_id} failed")
                break
            ids.append(data_id)
            out.bytes_rebuilt += nbytes
        if len(ids) != len(streams_of(rec)):
            if ids:
                with suppress(DriveError):  # else GC takes it after the commit window
                    await hd.inner.delete_data([hinted_id(i, j) for i in ids])
            return
    try:
        await hd.commit_hint(ks.bucket_id, ks.key, replace(rec, frag_index=j))
    except DriveError as e:
        out.errors.append(f"hint on {hd.drive_id}: {e}")
        return
    out.fragments_rebuilt += len(ids)
    out.records_restored += 1
    log.info("spare: %s/%r version %s fragment %d of %s rebuilt on %s", ks.bucket_id.hex(),
             ks.key, rec.vid, j, hd.slot, hd.drive_id)
