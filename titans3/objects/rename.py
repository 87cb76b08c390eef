"""Rename: a new name for an object's bytes, moving no data.

Theory of operation
-------------------
Placement is by hash of the key, so the destination's records live on other
drives than the source's fragments.  Copying would move every byte; instead
the destination gets a **reference** version (``extra["ref"] = [anchor key,
anchor vid, source mtime]``) that names the source version -- the
**anchor** -- whose fragments stay where they are.  A reference carries the
source's size, ETag, checksums, metadata, tags and part sizes, so HEAD and
listings never leave the destination's drives; a GET resolves the anchor's
holders (one more metadata round) and reads its fragments.  A reference owns
no data id (``VersionRecord.data_ids``), so removing it frees nothing.

The anchor keeps a list of the versions that reference it
(``extra["refs"]``, a superset of the live ones) and, once renamed away,
becomes **hidden** (``extra["hid"]``): invisible to GET/HEAD/LIST/
ListObjectVersions of its own key, still repaired, scrubbed, rebalanced and
handed off like any version (``resolve_versions(anchors=True)``), spared by
the null purges of later writes to its key (``records.merge_commit``) and
freed -- a tombstone of its vid -- when its last referrer is gone.  A chained
rename (renaming a reference) references the original anchor directly, so
a read is never more than one hop.

Steps, each a quorum (``W``) commit, ordered so that a crash at any point
leaves the object readable under at least one name:

1. **mark**: the source version gets ``extra["mv"] = [dst key, dst vid,
   started]`` and the anchor lists ``[dst key, dst vid]`` among its
   references (for a plain source both are the same record, one commit);
   the source is still visible;
2. **reference**: the destination's reference version is committed (it is
   now visible; for a moment the object has both names, like a copy);
3. **flip**: the source version becomes a hidden anchor (its mark dropped);
   renaming a reference removes the old reference instead and takes it off
   the anchor's list.  In a versioned bucket the source version stays a
   visible non-current version and a delete marker goes on the source key
   (rename = a new version at the destination + a delete at the source).

Crash states (``docs/architecture.md``, "Rename"): after 1, the source is
visible and marked; whoever next touches it (a rename of it, a read after
``RENAME_WINDOW``, GC) *settles* the mark: it completes the flip when the
destination version reached ``W``, and otherwise -- once the window has
passed -- rolls the mark back (the destination remnant, if any, is below
``W`` and invisible; GC removes it).  After 2, settling completes the flip.
An anchor may list a referrer that never landed or was deleted since (a
crash between deleting a reference and updating its anchor): GC drops such
entries after the window and frees an anchor left with none.

A rename holds the per-key locks of both names on this host; across hosts a
concurrent rename of the same source finds the mark and gets
``OperationAborted`` (retry) while the other is in flight.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import trio

from titans3.core.errors import (
    DriveError,
    NoSuchKey,
    OperationAborted,
    QuorumError,
)
from titans3.drive.protocol import DriveState
from titans3.drive.records import HIDDEN, MOVING, REF, REFS, Part, VersionRecord
from titans3.objects import handoff
from titans3.objects.resolve import Resolved, write_quorum
from titans3.objects.tagging import tags_of, with_tags
from titans3.objects.types import ObjectInfo, RenameResult, WriteCondition
from titans3.objects.validate import check_key
from titans3.objects.versionid import timestamp_ns

if TYPE_CHECKING:
    from titans3.objects.buckets import BucketRecord
    from titans3.objects.store import ObjectStore

log = logging.getLogger(__name__)

RENAME_WINDOW = 60.0  # s: a mark older than this whose destination did not land is rolled back
COMMIT_DEADLINE = 20.0  # s: a rename that has not committed its destination by then gives up


def is_ref(rec: VersionRecord) -> bool:
    return REF in rec.extra


def anchor_of(rec: VersionRecord, key: bytes) -> tuple[bytes, str]:
    """``(key, vid)`` of the version holding ``rec``'s bytes (itself unless a reference)."""
    ref = rec.extra.get(REF)
    return (bytes(ref[0]), str(ref[1])) if ref else (key, rec.vid)


def referrers(rec: VersionRecord) -> list[tuple[bytes, str]]:
    return [(bytes(k), str(v)) for k, v in rec.extra.get(REFS) or ()]


def _set_referrers(rec: VersionRecord, refs: Sequence[tuple[bytes, str]]) -> None:
    if refs:
        rec.extra[REFS] = [[k, v] for k, v in refs]
    else:
        rec.extra.pop(REFS, None)


def _age(vid: str, now_ns: int) -> float:
    return (now_ns - timestamp_ns(vid)) / 1e9


class Renamer:
    """Renames and the anchor bookkeeping of one :class:`ObjectStore`."""

    def __init__(self, store: ObjectStore, *, window: float = RENAME_WINDOW) -> None:
        self.store = store
        self.window = window
        self.settled = 0  # pending marks completed or rolled back by someone else
        self.anchors_freed = 0

    # ------------------------------------------------------------ the operation
    async def rename(
        self, bucket: str, src_key: str, dst_key: str, *,
        condition: WriteCondition | None = None, source_condition: WriteCondition | None = None,
    ) -> RenameResult:
        st = self.store
        brec = await st.buckets.get(bucket)
        skb, dkb = check_key(src_key), check_key(dst_key)
        async with self._locks(brec.bucket_id, skb, dkb):
            positions, per, r = await self._current(brec, skb)
            if r is None:
                raise NoSuchKey(Key=src_key)
            info = st._info(bucket, src_key, r)
            if source_condition is not None:
                source_condition.check(info, src_key)
            if skb == dkb:  # POSIX: renaming a name onto itself changes nothing
                return RenameResult(info, info, None)
            current_dst = await st._latest_info(brec, bucket, dst_key, dkb)
            if condition is not None:
                condition.check(current_dst, dst_key)
            return await self._rename(brec, bucket, skb, dkb, positions, per, r, info)

    async def _rename(
        self, brec: BucketRecord, bucket: str, skb: bytes, dkb: bytes, positions: list[int],
        per: list[list[VersionRecord] | None], r: Resolved, info: ObjectInfo,
    ) -> RenameResult:
        st = self.store
        rec = r.record
        akey, avid = anchor_of(rec, skb)
        w = write_quorum(rec.ec[0], rec.ec[1])
        dvid = st.clock.new_id()
        started = time.time_ns()
        entry = (dkb, dvid)

        def mark(x: VersionRecord) -> None:
            x.extra[MOVING] = [dkb, dvid, started]
            if not is_ref(x):
                _set_referrers(x, [*referrers(x), entry])

        # 1. mark (and, for a chained rename, list the new referrer on the anchor)
        if await st._recommit(brec, skb, positions, per, rec.vid, mark) < w:
            await self._undo(brec, skb, rec.vid, akey, avid, entry)
            raise QuorumError("too few drives took the rename mark")
        if is_ref(rec) and not await self._add_referrer(brec, akey, avid, entry):
            await self._undo(brec, skb, rec.vid, akey, avid, entry)
            raise QuorumError("too few drives took the new reference on the anchor")
        # 2. the destination's reference version
        try:
            with trio.fail_after(COMMIT_DEADLINE):
                await self._commit_reference(brec, dkb, rec, dvid, akey, avid)
        except (QuorumError, trio.TooSlowError):
            with trio.CancelScope(shield=True):
                await self._undo(brec, skb, rec.vid, akey, avid, entry)
            raise QuorumError("the rename's destination did not reach its write quorum") from None
        # 3. flip the source
        marker = await self._flip(brec, bucket, skb, rec.vid)
        # (None: overwritten or deleted in the instant since -- the rename still happened.)
        dst = await st._latest_info(brec, bucket, dkb.decode("utf-8", "surrogateescape"), dkb)
        return RenameResult(info, dst or info, marker)

    async def _commit_reference(
        self, brec: BucketRecord, dkb: bytes, rec: VersionRecord, dvid: str, akey: bytes,
        avid: str,
    ) -> None:
        st = self.store
        versioned = brec.versioning == "Enabled"
        ref = [akey, avid, rec.extra[REF][2] if is_ref(rec) else rec.mtime_ns]
        extra = with_tags(None, tags_of(rec))
        extra[REF] = ref
        parts = [Part(p.number, p.size, p.etag, "", dict(p.checksums)) for p in rec.parts]
        now = time.time_ns()

        def make(j: int) -> VersionRecord:
            return VersionRecord(
                vid=dvid, mtime_ns=now, null=not versioned, size=rec.size, etag=rec.etag,
                ec=rec.ec, frag_index=j, parts=list(parts), meta=dict(rec.meta),
                checksums=dict(rec.checksums), extra=dict(extra),
            )

        dpos = st.placement(brec.bucket_id, dkb)
        live = [j for j, p in enumerate(dpos) if st.drives[p].state == DriveState.ONLINE]
        # The destination's previous version (a purge frees it, below) may be a
        # reference too: note its anchor to release.
        _, dper, dres = await st._resolve(brec, dkb)
        replaced = [x.record for x in dres if x.record.null and not versioned]
        older = await st._commit_or_rollback(brec, dkb, dpos, live, write_quorum(*rec.ec[:2]),
                                             make, lambda j: [])
        if not versioned and older:
            purge = VersionRecord(vid=dvid, tomb=True, null=True)
            await st._commit(brec, dkb, dpos, older, lambda j: purge, lambda j: [])
            for old in replaced:
                if is_ref(old):
                    k, v = anchor_of(old, dkb)
                    await self.release(brec, k, v, (dkb, old.vid))

    async def _flip(self, brec: BucketRecord, bucket: str, skb: bytes, vid: str) -> str | None:
        """Step 3 for source version ``vid``; the delete marker's version id in a
        versioned bucket."""
        st = self.store
        positions, per, resolved = await st._resolve(brec, skb, anchors=True)
        r = next((x for x in resolved if x.record.vid == vid), None)
        if r is None:
            return None
        rec = r.record
        mv = rec.extra.get(MOVING)
        w = write_quorum(rec.ec[0], rec.ec[1])
        if brec.versioning:
            res = await st.delete_object(bucket, skb.decode("utf-8", "surrogateescape"))
            await st._recommit(brec, skb, positions, per, vid, lambda x: x.extra.pop(MOVING, None))
            return res.version_id
        if is_ref(rec):
            tomb = VersionRecord(vid=vid, tomb=True)
            if await st._commit(brec, skb, positions, r.holders, lambda j: tomb, lambda j: []) < w:
                raise QuorumError("too few drives took the renamed reference's removal")
            akey, avid = anchor_of(rec, skb)
            await self.release(brec, akey, avid, (skb, vid))
            return None

        def hide(x: VersionRecord) -> None:
            x.extra[HIDDEN] = True
            x.extra.pop(MOVING, None)

        if await st._recommit(brec, skb, positions, per, vid, hide) < w:
            raise QuorumError("too few drives took the rename's last step")
        if mv is not None:
            log.debug("renamed %r -> %r", skb, bytes(mv[0]))
        return None

    # ------------------------------------------------------------ anchors
    async def anchor_holders(self, brec: BucketRecord, key: bytes, rec: VersionRecord) -> tuple[
        VersionRecord, dict[int, Any], bytes
    ]:
        """For a read of reference ``rec``: the anchor's record, its fragment
        holders (index -> drive) and its key."""
        st = self.store
        akey, avid = anchor_of(rec, key)
        positions, per = await st._gather(brec.bucket_id, akey)
        holders: dict[int, Any] = {}
        arec: VersionRecord | None = None
        for j, recs in enumerate(per):
            for x in recs or ():
                if x.vid == avid and not x.tomb:
                    arec = arec or x
                    holders.setdefault(x.frag_index,
                                       handoff.holder(st, st.drives[positions[j]], x))
        if arec is None or len(holders) < arec.ec[0]:
            raise QuorumError("too few fragments of the renamed object's data are reachable")
        return arec, holders, akey

    async def _anchor(self, brec: BucketRecord, akey: bytes, avid: str) -> tuple[
        list[int], list[list[VersionRecord] | None], Resolved | None
    ]:
        positions, per, resolved = await self.store._resolve(brec, akey, anchors=True)
        return positions, per, next((x for x in resolved if x.record.vid == avid), None)

    async def _add_referrer(self, brec: BucketRecord, akey: bytes, avid: str,
                            entry: tuple[bytes, str]) -> bool:
        positions, per, a = await self._anchor(brec, akey, avid)
        if a is None:
            return False

        def add(x: VersionRecord) -> None:
            _set_referrers(x, [*referrers(x), entry])

        w = write_quorum(a.record.ec[0], a.record.ec[1])
        return await self.store._recommit(brec, akey, positions, per, avid, add) >= w

    async def release(self, brec: BucketRecord, akey: bytes, avid: str,
                      entry: tuple[bytes, str]) -> None:
        """``entry`` no longer references anchor ``akey@avid``: take it off the
        list, and free a hidden anchor left with no referrer.  Best effort: what
        fails here is GC's to finish (:meth:`check_anchor`)."""
        try:
            positions, per, a = await self._anchor(brec, akey, avid)
            if a is None:
                return
            left = [e for e in referrers(a.record) if e != entry]
            await self._apply_referrers(brec, akey, positions, per, a, left)
        except (QuorumError, DriveError) as e:
            log.info("rename: releasing %r@%s from %r failed (GC retries): %s", akey, avid,
                     entry[0], e)

    async def _apply_referrers(
        self, brec: BucketRecord, akey: bytes, positions: list[int],
        per: list[list[VersionRecord] | None], a: Resolved, left: list[tuple[bytes, str]],
    ) -> None:
        st = self.store
        rec = a.record
        if left == referrers(rec) and (left or not rec.extra.get(HIDDEN)):
            return
        if not left and rec.extra.get(HIDDEN):
            tomb = VersionRecord(vid=rec.vid, tomb=True)
            await st._commit(brec, akey, positions, a.holders, lambda j: tomb, lambda j: [])
            self.anchors_freed += 1
            return

        def update(x: VersionRecord) -> None:
            _set_referrers(x, left)

        await st._recommit(brec, akey, positions, per, rec.vid, update)

    async def check_anchor(self, brec: BucketRecord, akey: bytes, a: Resolved,
                           positions: list[int], per: list[list[VersionRecord] | None]) -> bool:
        """GC: drop referrers that cannot exist (never landed, or deleted) once
        older than the window; free the anchor when none is left.  True when
        something changed."""
        now = time.time_ns()
        rec = a.record
        keep: list[tuple[bytes, str]] = []
        for rk, rvid in referrers(rec):
            if _age(rvid, now) < self.window or await self._may_exist(brec, rk, rvid):
                keep.append((rk, rvid))
        if keep == referrers(rec) and (keep or not rec.extra.get(HIDDEN)):
            return False
        await self._apply_referrers(brec, akey, positions, per, a, keep)
        return True

    async def _may_exist(self, brec: BucketRecord, key: bytes, vid: str) -> bool:
        """Whether version ``vid`` of ``key`` may have been acknowledged (the
        read rule's ``count + unseen >= W``); unsure answers count as yes."""
        st = self.store
        try:
            positions, per = await st._gather(brec.bucket_id, key)
        except DriveError:
            return True
        unseen = sum(1 for p in per if p is None)
        holders = [x for recs in per for x in recs or () if x.vid == vid and not x.tomb]
        if not holders:
            return unseen >= write_quorum(st.scheme.k, st.scheme.m)
        k, m, _ = holders[0].ec
        return len(holders) + unseen >= write_quorum(k, m)

    # ------------------------------------------------------------ pending marks
    async def _current(self, brec: BucketRecord, skb: bytes) -> tuple[
        list[int], list[list[VersionRecord] | None], Resolved | None
    ]:
        """The key's current data version, with a pending mark settled first."""
        st = self.store
        for _ in range(3):
            positions, per, resolved = await st._resolve(brec, skb)
            if not resolved or resolved[0].record.dm:
                return positions, per, None
            r = resolved[0]
            if MOVING not in r.record.extra:
                return positions, per, r
            if not await self.settle(brec, skb, r.record.vid, force=True):
                raise OperationAborted(Key=skb.decode("utf-8", "surrogateescape"))
        raise OperationAborted(Key=skb.decode("utf-8", "surrogateescape"))

    async def settle(self, brec: BucketRecord, key: bytes, vid: str, *, force: bool = False) -> bool:
        """Complete or roll back the pending mark on ``key@vid``; True when it
        is gone.  A mark younger than the window is left alone (its rename may
        be running) unless its destination already landed."""
        st = self.store
        positions, per, resolved = await st._resolve(brec, key, anchors=True)
        r = next((x for x in resolved if x.record.vid == vid), None)
        if r is None or MOVING not in r.record.extra:
            return True
        dkb, dvid, started = bytes(r.record.extra[MOVING][0]), str(r.record.extra[MOVING][1]), \
            int(r.record.extra[MOVING][2])
        landed = await self._landed(brec, dkb, dvid)
        if landed:
            await self._flip(brec, brec.name, key, vid)
        elif (time.time_ns() - started) / 1e9 >= self.window:
            akey, avid = anchor_of(r.record, key)
            await self._undo(brec, key, vid, akey, avid, (dkb, dvid))
        else:
            return False
        self.settled += 1
        log.info("rename: pending mark of %r -> %r %s", key, dkb,
                 "completed" if landed else "rolled back")
        return True

    async def _landed(self, brec: BucketRecord, key: bytes, vid: str) -> bool:
        _, per = await self.store._gather(brec.bucket_id, key)
        holders = [x for recs in per for x in recs or () if x.vid == vid and not x.tomb]
        return bool(holders) and len(holders) >= write_quorum(holders[0].ec[0], holders[0].ec[1])

    async def _undo(self, brec: BucketRecord, skb: bytes, vid: str, akey: bytes, avid: str,
                    entry: tuple[bytes, str]) -> None:
        """Roll a mark back: the source as before, the anchor without ``entry``."""
        st = self.store

        def unmark(x: VersionRecord) -> None:
            x.extra.pop(MOVING, None)
            if not is_ref(x):
                _set_referrers(x, [e for e in referrers(x) if e != entry])

        try:
            positions, per, _ = await st._resolve(brec, skb, anchors=True)
            await st._recommit(brec, skb, positions, per, vid, unmark)
            if akey != skb or avid != vid:
                await self.release(brec, akey, avid, entry)
        except (QuorumError, DriveError) as e:
            log.warning("rename: rolling back the mark on %r failed (settled later): %s", skb, e)

    # ------------------------------------------------------------ locking
    @contextlib.asynccontextmanager
    async def _locks(self, bucket_id: bytes, a: bytes, b: bytes) -> AsyncIterator[None]:
        """Both names' key locks, in one order (two renames never deadlock)."""
        first, second = sorted({a, b}) if a != b else (a, None)
        async with self.store.key_locks.hold((bucket_id, first)):
            if second is None:
                yield
                return
            async with self.store.key_locks.hold((bucket_id, second)):
                yield

    def statistics(self) -> dict[str, Any]:
        return {"settled": self.settled, "anchors_freed": self.anchors_freed}
