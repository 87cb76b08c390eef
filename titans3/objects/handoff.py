"""Hinted handoff: writing while a primary drive is down (DESIGN §3, §7).

Theory of operation
-------------------
A PUT whose placement has a drive that is not online stages that fragment on
a *handoff drive* instead: the first drive of the ring's deterministic
sequence (:meth:`Ring.handoffs_for`) that is online, is not a drive this stripe
already uses as a handoff, and is not the down primary itself.  The spare
drives outside the stripe come first; a ring with no spare drive (6 drives, EC
4+2) doubles the fragment up on a live primary.

On the handoff drive the fragment lives under its own data id
(:func:`hinted_id`, so it never collides with the drive's own fragment of the
same stripe), and the version record the primary should have goes into the
``hints`` meta table (:func:`hint_key`), *not* into the drive's version lists:
the handoff drive's own listings and records stay exactly what its placement
says.  Staged data is promoted in the same durable ``put_meta`` step.

**Durability rule.**  Counting fragments alone would let three live drives
"hold" six fragments.  A write that used handoff drives is acknowledged when
(a) the landed fragments sit on at least ``k`` distinct drives and (b) losing
any one of those drives still leaves ``k`` fragments
(``landed - max per drive >= k``).  Without doubling this is exactly
``W = k + 1`` distinct drives; with doubling it keeps the same margin (one
more drive may fail).  Handoff is only tried when at least ``k`` primaries, and a
strict majority of the stripe, are online, so the minority side of a partition
still refuses writes and the two halves of an even split never both write.

**Reads.**  A primary that answered but lacks a version some other primary
has (it was down during the write and the hint has not been replayed yet)
gets the hinted records of that version merged in (:func:`merge_hints`), as
:class:`HintedRecord` -- a record that knows where its fragment really is.
:func:`holder` turns it into a reader for that fragment.  The hint lookup only
runs when the primaries disagree, so a healthy cluster pays nothing.

**Replay** (:func:`replay_drive`, run by ``titans3.workers.handoff``): for
every hint on a local drive whose primary is online again, copy the fragment
(or inline blob) to the primary under the original data id, commit the record
there, then delete the hint and the handoff copy.  A primary that already
holds the version only loses the hint.  Each step is idempotent, so a crash
between steps at worst repeats work.

**Listings** see the drives' pages only, where a hinted write is on fewer
than ``W`` primaries; a key that comes out of the merge with no visible
version is resolved again with its hints (``Catalog.relist``, objects/catalog.py), so a listing right
after a partition heals shows every acknowledged key before replay.

Known gaps: GC's remnant rule does not consult hints (it only matters in the
short window after a primary is back and before replay, and GC also waits for
the commit window).  Multipart uploads do not use handoff.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from titans3.core.errors import DriveError
from titans3.drive.protocol import Drive, DriveState
from titans3.drive.records import VersionRecord
from titans3.objects.fragcopy import copy_fragment
from titans3.objects.hinted import (  # noqa: F401 -- re-exported: the hint format's old home
    HINTS,
    Hint,
    HintedDrive,
    HintedRecord,
    hint_key,
    hinted_id,
    key_hash,
    pack_hint,
    unpack_hint,
)

if TYPE_CHECKING:
    from titans3.objects.context import StoreContext

log = logging.getLogger(__name__)

_PENDING_MAX = 4096  # staged-but-not-committed handoff plans kept per store


# ------------------------------------------------------------------ writing
def substitute(
    ctx: StoreContext, bucket_id: bytes, key: bytes, positions: Sequence[int],
    drives: list[Drive | None], k: int, m: int,
) -> list[Drive | None]:
    """Put a handoff drive where a primary is down, if the result can be durable."""
    down = [j for j, d in enumerate(drives) if d is None]
    live = len(drives) - len(down)
    # At least k primaries, and a strict majority of the stripe: two sides of a
    # partition can never both write (2+2 split 2|2 refuses on both sides).
    if not down or m == 0 or live < k or live <= len(drives) // 2:
        return drives
    used: set[int] = set()
    load = {positions[j]: 1 for j, d in enumerate(drives) if d is not None}
    out = list(drives)
    for j in down:
        for slot in ctx.ring.handoffs_for(bucket_id, key):
            pos = ctx._by_id.get(slot)
            if pos is None or pos == positions[j] or pos in used or pos in ctx.healing:
                continue
            if ctx.drives[pos].state != DriveState.ONLINE:
                continue
            used.add(pos)
            load[pos] = load.get(pos, 0) + 1
            out[j] = HintedDrive(ctx.drives[pos], j, ctx.slots[positions[j]])
            break
    counts = list(load.values())
    if len(counts) < k or sum(counts) - max(counts) < k:
        return drives  # no durable layout: fall back (the write needs W primaries)
    return out


def register(ctx: StoreContext, data_id: str, drives: Sequence[Drive | None]) -> None:
    plan = {j: d for j, d in enumerate(drives) if isinstance(d, HintedDrive)}
    if not plan:
        return
    pending: dict[str, dict[int, HintedDrive]] = ctx.handoffs
    pending[data_id] = plan
    while len(pending) > _PENDING_MAX:
        pending.pop(next(iter(pending)))


def pending(ctx: StoreContext, rec: VersionRecord, j: int) -> HintedDrive | None:
    """The handoff drive fragment ``j`` of ``rec`` was staged on, if any: plans
    are keyed by data id (a PUT) or by version id (a multipart Complete)."""
    plan = ctx.handoffs.get(rec.data or rec.vid)
    return plan.get(j) if plan else None


async def settle(
    ctx: StoreContext, bucket_id: bytes, key: bytes, rec: VersionRecord,
    positions: Sequence[int], landed: Sequence[int], quorum: bool,
) -> bool:
    """Whether a commit is acknowledged: ``quorum`` (W commits landed) for a
    write without handoff; for one with handoff also the durability rule
    (module doc).  Forgets the write's plan; a write that is not acknowledged
    loses the hints it left (the caller rolls back the primaries)."""
    plan = ctx.handoffs.pop(rec.data or rec.vid, None)
    if not plan:
        return quorum
    load: dict[int, int] = {}
    for j in landed:
        hd = plan.get(j)
        where = id(hd.inner) if hd is not None else id(ctx.drives[positions[j]])
        load[where] = load.get(where, 0) + 1
    counts = list(load.values()) or [0]
    k = rec.ec[0]
    if quorum and len(load) >= k and sum(counts) - max(counts) >= k:
        return True
    tomb = VersionRecord(vid=rec.vid, tomb=True)

    async def drop(hd: HintedDrive) -> None:
        try:
            await hd.commit_hint(bucket_id, key, tomb)
        except DriveError as e:
            log.warning("handoff: dropping hint of %s on %s failed: %s", rec.vid, hd.drive_id, e)

    async with trio.open_nursery() as nursery:
        for j in landed:
            if j in plan:
                nursery.start_soon(drop, plan[j])
    return False


# ------------------------------------------------------------------ reading
async def merge_hints(
    ctx: StoreContext, bucket_id: bytes, key: bytes, positions: Sequence[int],
    per: list[list[VersionRecord] | None],
) -> None:
    """Add hinted records to primaries that answered without them (in place)."""
    answered = [set(r.vid for r in recs if not r.tomb) for recs in per if recs is not None]
    if not answered or all(a == answered[0] for a in answered):
        return
    want = {ctx.slots[p]: j for j, p in enumerate(positions)}
    found: list[tuple[int, bytes, bytes]] = []
    prefix = key_hash(bucket_id, key)

    async def one(pos: int) -> None:
        try:
            for hk, raw in await ctx.drives[pos].list_meta(HINTS, prefix=prefix, limit=1000):
                found.append((pos, hk, raw))
        except DriveError:
            pass

    async with trio.open_nursery() as nursery:
        for slot in ctx.ring.handoffs_for(bucket_id, key):
            pos = ctx._by_id.get(slot)
            if pos is not None and pos not in ctx.healing and \
                    ctx.drives[pos].state == DriveState.ONLINE:
                nursery.start_soon(one, pos)
    for pos, hk, raw in found:
        h = unpack_hint(hk, raw)
        j = want.get(h.slot)
        if j is None or per[j] is None or h.bucket_id != bucket_id or h.key != key:
            continue
        recs = per[j]
        assert recs is not None
        if any(r.vid == h.record.vid for r in recs):
            continue
        fields = {f: getattr(h.record, f) for f in VersionRecord.__dataclass_fields__}
        recs.append(HintedRecord(**fields, via=pos))


def holder(ctx: StoreContext, default: Drive, rec: VersionRecord) -> Any:
    """Where to read ``rec``'s fragment: the handoff drive for a hinted record."""
    if isinstance(rec, HintedRecord) and rec.via >= 0:
        return HintedDrive(ctx.drives[rec.via], rec.frag_index, "")
    return default


# ------------------------------------------------------------------ replay
@dataclass(slots=True)
class ReplayResult:
    moved: int = 0
    bytes_moved: int = 0
    pending: int = 0  # hints whose primary is still down
    errors: int = 0
    held: int = 0  # hints left on the drive after the pass


async def replay_drive(ctx: StoreContext, position: int, *, limit: int = 1000) -> ReplayResult:
    """Move the hints held by the drive at ``position`` to their primaries."""
    out = ReplayResult()
    src = ctx.drives[position]
    start: bytes | None = None
    while True:
        try:
            page = await src.list_meta(HINTS, start_after=start, limit=limit)
        except DriveError as e:
            log.warning("handoff: cannot list hints on %s: %s", src.drive_id, e)
            out.errors += 1
            return out
        for hk, raw in page:
            if not await _replay_one(ctx, src, unpack_hint(hk, raw), out):
                out.held += 1
        if len(page) < limit:
            return out
        start = page[-1][0]


async def _replay_one(ctx: StoreContext, src: Drive, h: Hint, out: ReplayResult) -> bool:
    """True when the hint is gone (moved, or the primary already had it)."""
    pos = ctx._by_id.get(h.slot)
    if pos is None:
        out.pending += 1  # the slot left the ring: the rebalancer's business
        return False
    dst = ctx.drives[pos]
    if dst.state != DriveState.ONLINE or pos in ctx.healing:
        out.pending += 1
        return False
    rec = h.record
    hd = HintedDrive(src, rec.frag_index, h.slot)
    try:
        have = await dst.read_versions(h.bucket_id, h.key)
        if not any(r.vid == rec.vid for r in have):
            out.bytes_moved += await _copy(hd, dst, rec)
            await dst.commit_version(h.bucket_id, h.key, rec, promote=rec.data_ids())
        await src.put_meta(HINTS, h.hkey, None)
        await src.delete_data([hinted_id(i, rec.frag_index) for i in rec.data_ids()])
        out.moved += 1
        log.info("handoff: %s/%r %s fragment %d moved from %s to %s", h.bucket_id.hex(), h.key,
                 rec.vid, rec.frag_index, src.drive_id, dst.drive_id)
        return True
    except DriveError as e:
        out.errors += 1
        log.warning("handoff: replay of %s to %s failed: %s", rec.vid, dst.drive_id, e)
        return False


async def _copy(src: HintedDrive, dst: Drive, rec: VersionRecord) -> int:
    total = 0
    for data_id in rec.data_ids():
        total += await copy_fragment(src, dst, rec, data_id)  # type: ignore[arg-type] -- a Drive view
    return total


async def count_hints(drive: Drive) -> int:
    n, start = 0, None
    while True:
        page = await drive.list_meta(HINTS, start_after=start, limit=1000)
        n += len(page)
        if len(page) < 1000:
            return n
        start = page[-1][0]
