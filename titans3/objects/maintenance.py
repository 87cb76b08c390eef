"""The object layer's face for the durability workers (``titans3.workers``).

Theory of operation
-------------------
Workers sit below the object layer (DESIGN §2: they are host machinery, like
the disk manager), so they never import it: the daemon hands them a
:class:`Maintenance`, which answers in plain values -- bucket ids, keys with
raw records, the fragment lengths a record implies, whether a key is complete,
repair outcomes -- and keeps every object-layer rule (placement, resolution,
stripe arithmetic, quorum) on this side of the line.

:meth:`Maintenance.placement_check` is the scrubber's cross-drive test: every
visible version must have its record, with the right fragment index, on every
placement drive.  To avoid checking each key once per drive, only the drive at
the lowest placement index that holds any record of the key runs it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgpack

from titans3.core.errors import DriveError, S3Error
from titans3.drive.protocol import DriveState
from titans3.drive.records import HIDDEN, MOVING, REF, REFS, VersionRecord
from titans3.objects import collect, handoff, keywalk, upload_remnants
from titans3.objects.multipart import PART_KEY_BYTES, PARTS, UPLOADS
from titans3.objects.repair import KeyState, ObjectRepair, RepairOutcome, streams_of

if TYPE_CHECKING:
    from titans3.objects.store import ObjectStore

log = logging.getLogger(__name__)


def _rename_state(rec: VersionRecord) -> bool:
    return any(f in rec.extra for f in (MOVING, HIDDEN, REFS))


@dataclass(frozen=True, slots=True)
class PlacementCheck:
    checked: bool  # False: another drive is responsible for this key
    missing: int = 0  # records absent (or with the wrong index) on online drives
    unreachable: int = 0  # placement drives that could not be asked


class Maintenance:
    def __init__(self, store: ObjectStore, **kw: float | int) -> None:
        self.ctx = store.context
        self.repairer = ObjectRepair(self.ctx, **kw)  # type: ignore[arg-type]
        self.store = store  # for the operations GC runs: aborting uploads, settling renames

    # ------------------------------------------------------------- repair
    async def repair(self, bucket_id: bytes, key: bytes, *,
                     only: Collection[int] | None = None, deep: bool = False) -> RepairOutcome:
        """Bring every version of the key to full strength (``objects/repair.py``);
        ``only``: rebuild just these placement positions (a refill)."""
        return await self.repairer.repair(bucket_id, key, only=only, deep=deep)

    async def quorum_for(self, bucket_id: bytes) -> tuple[int, int]:
        """``(k, W)`` of the bucket's scheme."""
        return await self.repairer.quorum_for(bucket_id)

    async def gather(self, bucket_id: bytes, key: bytes) -> KeyState:
        return await self.repairer.gather(bucket_id, key)

    # ------------------------------------------------------------- topology
    @property
    def drives(self) -> list:  # type: ignore[type-arg]
        return self.ctx.drives

    @property
    def healing(self) -> set[int]:
        return self.ctx.healing

    def slot(self, position: int) -> str:
        return self.ctx.slots[position]

    def placement(self, bucket_id: bytes, key: bytes) -> list[int]:
        return self.ctx.placement(bucket_id, key)

    async def bucket_ids(self) -> list[bytes]:
        """Every live bucket's id, in id order (a stable order for cursors)."""
        return sorted(b.bucket_id for b in await self.ctx.buckets.list())

    def walk_keys(
        self, bucket_id: bytes, *, start_after: bytes | None = None, skip: Collection[int] = ()
    ) -> AsyncIterator[keywalk.KeyRecords]:
        return keywalk.walk_keys(self.ctx.drives, bucket_id, start_after=start_after, skip=skip)

    # ------------------------------------------------------------- records
    def expected_streams(self, rec: VersionRecord) -> list[tuple[str, int, bool]]:
        """``(data id, fragment bytes, inline)`` this record's drive must hold."""
        if rec.dm or rec.tomb or REF in rec.extra:  # a rename's reference holds no data
            return []
        k, m, _ = rec.ec
        codec = self.ctx.codec(k, m)
        out = []
        for data_id, size in streams_of(rec):
            if not data_id:
                continue  # names no data on any drive
            n = codec.fragment_size(size) if rec.inline else self.ctx.layout(rec.ec, size).fragment_length()
            out.append((data_id, n, rec.inline))
        return out

    async def placement_check(self, bucket_id: bytes, key: bytes, position: int) -> PlacementCheck:
        """Records of every visible version on every placement drive (run by one drive per key)."""
        ks = await self.gather(bucket_id, key)
        holders = [j for j, recs in enumerate(ks.per) if recs and ks.positions[j] not in self.healing]
        if not holders or ks.positions[min(holders)] != position:
            return PlacementCheck(False)
        missing = unreachable = 0
        for j, pos in enumerate(ks.positions):
            if self.ctx.drives[pos].state != DriveState.ONLINE or ks.per[j] is None:
                unreachable += 1
                continue
            for r in ks.resolved:
                rec = r.record
                if not rec.dm and j >= rec.ec[0] + rec.ec[1]:
                    continue
                mine = next((x for x in ks.per[j] or () if x.vid == rec.vid and not x.tomb), None)
                if mine is None or (not rec.dm and mine.frag_index != j):
                    missing += 1
        return PlacementCheck(True, missing, unreachable)

    # ------------------------------------------------------------- GC
    def needs_collect(self, kr: keywalk.KeyRecords, bucket_id: bytes, *, k: int, w: int,
                      window: float, now_ns: int) -> bool:
        """Cheap pre-filter on a walked key's records: would :func:`collect.plan` act?"""
        per = [kr.per_drive.get(pos, []) if pos in kr.answered else None
               for pos in self.ctx.placement(bucket_id, kr.key)]
        if any(_rename_state(r) for recs in kr.per_drive.values() for r in recs):
            return True  # a rename mark to settle or an anchor whose referrers to check
        return bool(collect.plan(per, k=k, w=w, now_ns=now_ns, window=window))

    async def collect_key(self, bucket_id: bytes, key: bytes, *, window: float, now_ns: int) -> int:
        ks = await self.gather(bucket_id, key)
        done = await collect.collect_key(self.ctx, ks, window=window, now_ns=now_ns)
        return done + await self._renames(ks)

    async def _renames(self, ks: KeyState) -> int:
        """Settle stale rename marks and check anchors' referrers (objects/rename.py)."""
        renamer = self.store.renamer
        brec = next((b for b in await self.ctx.buckets.list() if b.bucket_id == ks.bucket_id),
                    None)
        if brec is None:
            return 0
        done = 0
        for r in ks.resolved:
            mv = r.record.extra.get(MOVING)
            if mv is not None and (time.time_ns() - int(mv[2])) / 1e9 >= renamer.window:
                done += await renamer.settle(brec, ks.key, r.record.vid)
            elif r.record.extra.get(HIDDEN) or r.record.extra.get(REFS):
                done += await self.store.anchors.check_anchor(brec, ks.key, r, ks.positions, ks.per)
        return done

    async def abort_stale_uploads(self, max_age: float) -> int:
        """Abort multipart uploads started more than ``max_age`` seconds ago."""
        names = {b.bucket_id: b.name for b in await self.ctx.buckets.list()}
        cutoff = time.time_ns() - int(max_age * 1e9)
        seen: set[bytes] = set()
        aborted = 0
        for d in self.ctx.drives:
            if d.state != DriveState.ONLINE:
                continue
            start: bytes | None = None
            while True:
                try:
                    page = await d.list_meta(UPLOADS, start_after=start, limit=1000)
                except DriveError:
                    break
                for k, raw in page:
                    if k in seen or len(k) != 24:
                        continue
                    seen.add(k)
                    doc = msgpack.unpackb(raw, raw=False)
                    name = names.get(k[:8])
                    if name is None or doc.get("t", 0) > cutoff:
                        continue
                    key = doc["key"].decode("utf-8", "surrogateescape")
                    try:
                        await self.store.abort_multipart(name, key, k[8:].hex())
                        aborted += 1
                    except S3Error as e:  # NoSuchUpload: a remnant below quorum
                        log.info("gc: upload %s of %s/%s not aborted: %s", k[8:].hex(), name, key, e)
                if len(page) < 1000:
                    break
                start = page[-1][0]
        return aborted

    async def collect_upload_remnants(self, window: float) -> int:
        """Drop upload records below write quorum older than ``window`` seconds
        (:func:`~titans3.objects.upload_remnants.drop_upload_remnant`); returns how many.  Uploads kept
        by handoff substitutes (``sub``) are left to their own rules."""
        buckets = {b.bucket_id: b for b in await self.ctx.buckets.list()}
        cutoff = time.time_ns() - int(window * 1e9)
        seen: set[bytes] = set()
        removed = 0
        for d in self.ctx.drives:
            if d.state != DriveState.ONLINE:
                continue
            start: bytes | None = None
            while True:
                try:
                    page = await d.list_meta(UPLOADS, start_after=start, limit=1000)
                except DriveError:
                    break
                for k, raw in page:
                    if k in seen or len(k) != 24:  # bucket id + upload id; longer: a substitute's row
                        continue
                    seen.add(k)
                    doc = msgpack.unpackb(raw, raw=False)
                    brec = buckets.get(k[:8])
                    if brec is None or doc.get("t", 0) > cutoff or doc.get("sub"):
                        continue
                    try:
                        removed += await upload_remnants.drop_upload_remnant(
                            self.ctx, brec, doc["key"], k[8:].hex())
                    except DriveError as e:
                        log.warning("gc: upload remnant %s: %s", k[8:].hex(), e)
                if len(page) < 1000:
                    break
                start = page[-1][0]
        return removed

    async def collect_part_remnants(self, window: float, positions: Collection[int]) -> int:
        """Part records of uploads no drive holds, on the drives at ``positions``
        (:func:`~titans3.objects.upload_remnants.drop_part_remnants`)."""
        return await upload_remnants.drop_part_remnants(self.ctx, window, positions)

    async def referenced_data(self, position: int) -> set[str] | None:
        """Every data id the drive's records and multipart part records name
        (None: the drive cannot list its buckets, so nothing may be judged orphan).

        Parts and hints first, then versions: Complete commits the version before it
        deletes the part records, so a data id moving from one to the other
        is seen at least once.  Buckets come from the drive itself, not the
        bucket table, which may not know every bucket this drive holds.
        """
        d = self.ctx.drives[position]
        list_buckets = getattr(d, "bucket_ids", None)
        if list_buckets is None:
            return None
        refs: set[str] = set()
        start: bytes | None = None
        while True:
            page = await d.list_meta(PARTS, start_after=start, limit=1000)
            for k, raw in page:
                doc = msgpack.unpackb(raw, raw=False)
                if isinstance(doc, dict) and isinstance(doc.get("data"), str):
                    refs.add(doc["data"])
                    tail = k[PART_KEY_BYTES:]  # a part a substitute keeps: its hinted data id
                    if tail.startswith(b"/h") and tail[2:].isdigit():
                        refs.add(handoff.hinted_id(doc["data"], int(tail[2:])))
            if len(page) < 1000:
                break
            start = page[-1][0]
        # Handed-off fragments are named by hints, not by this drive's records:
        # a primary down for longer than the commit window must still find them.
        start = None
        while True:
            page = await d.list_meta(handoff.HINTS, start_after=start, limit=1000)
            for hk, raw in page:
                rec = handoff.unpack_hint(hk, raw).record
                refs.update(handoff.hinted_id(i, rec.frag_index) for i in rec.data_ids())
            if len(page) < 1000:
                break
            start = page[-1][0]
        for bucket_id in await list_buckets():
            after: bytes | None = None
            while True:
                entries = await d.list_versions(bucket_id, start_after=after, limit=1000)
                for e in entries:
                    for rec in e.versions or ():
                        refs.update(rec.data_ids())
                if len(entries) < 1000:
                    break
                after = entries[-1].key
        return refs

