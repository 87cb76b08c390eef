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

``reissue`` is a rename of a key onto itself with new metadata (and
last-modified now): the metadata-only update of ``objects/metaupdate.py``.
In a versioned bucket its last step puts no delete marker on the key.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import trio

from titans3.core.errors import DriveError, NoSuchKey, OperationAborted, QuorumError
from titans3.drive.protocol import DriveState
from titans3.drive.records import HIDDEN, MOVING, REF, REFS, Part, VersionRecord
from titans3.objects.anchors import (  # noqa: F401 -- re-exported
    RENAME_WINDOW,
    Anchors,
    anchor_of,
    is_ref,
    referrers,
    set_referrers,
)
from titans3.objects.buckets import BucketRecord
from titans3.objects.commit import Committer
from titans3.objects.conditional import KeyLocks
from titans3.objects.context import StoreContext
from titans3.objects.lockrules import LOCK_CONFIG
from titans3.objects.lookup import DOUBTFUL, Lookup, PerDrive, object_info
from titans3.objects.multipart import COMPLETED_FROM
from titans3.objects.resolve import Resolved, write_quorum
from titans3.objects.sse import ENCRYPTION_CONFIG
from titans3.objects.tags import ACL, STAMP, TAGS, tags_of, with_tags
from titans3.objects.types import ObjectInfo, RenameResult, WriteCondition
from titans3.objects.validate import check_key
from titans3.objects.writes import Writes

log = logging.getLogger(__name__)

COMMIT_DEADLINE = 20.0  # s: a rename that has not committed its destination by then gives up
# What a reissue may find in the current version's ``extra``: anything else
# (encryption, storage class, retention, unknown fields) a reference would not carry.
REISSUABLE = frozenset({REF, REFS, TAGS, STAMP, ACL, COMPLETED_FROM})


class Renamer:
    """rename_object and its pending marks (anchors: ``objects/anchors.py``)."""

    def __init__(self, ctx: StoreContext, lookup: Lookup, committer: Committer, anchors: Anchors,
                 writes: Writes, key_locks: KeyLocks) -> None:
        self.ctx = ctx
        self.lookup = lookup
        self.committer = committer
        self.anchors = anchors
        self.writes = writes
        self.key_locks = key_locks
        self.settled = 0  # pending marks completed or rolled back by someone else

    @property
    def window(self) -> float:
        return self.anchors.window

    @window.setter
    def window(self, value: float) -> None:
        self.anchors.window = value

    # ------------------------------------------------------------ the operation
    async def rename_object(
        self, bucket: str, src_key: str, dst_key: str, *,
        condition: WriteCondition | None = None, source_condition: WriteCondition | None = None,
    ) -> RenameResult:
        brec = await self.ctx.buckets.get(bucket)
        skb, dkb = check_key(src_key), check_key(dst_key)
        async with self._locks(brec.bucket_id, skb, dkb):
            positions, per, r = await self._current(brec, skb)
            if r is None:
                raise NoSuchKey(Key=src_key)
            info = object_info(bucket, src_key, r)
            if source_condition is not None:
                source_condition.check(info, src_key)
            if skb == dkb:  # POSIX: renaming a name onto itself changes nothing
                return RenameResult(info, info, None)
            current_dst = await self.lookup.latest_info(brec, bucket, dst_key, dkb)
            if condition is not None:
                condition.check(current_dst, dst_key)
            return await self._rename(brec, bucket, skb, dkb, positions, per, r, info)

    async def reissue(
        self, bucket: str, key: str, meta: Mapping[str, str], *,
        check_source: Callable[[ObjectInfo], None] | None = None, acl: bytes | None = None,
    ) -> RenameResult | None:
        """A new current version of ``key`` with metadata ``meta`` and the
        current version's bytes, moving none (objects/metaupdate.py): a rename
        of the key onto itself, the new version a reference to the old one.
        None when the version carries what a reference cannot (encryption,
        storage class, retention; a bucket with object lock): copy it instead."""
        brec = await self.ctx.buckets.get(bucket)
        if LOCK_CONFIG in brec.config or ENCRYPTION_CONFIG in brec.config:
            return None  # the new version would need a retention / its encryption
        kb = check_key(key)
        async with self._locks(brec.bucket_id, kb, kb):
            positions, per, r = await self._current(brec, kb)
            if r is None:
                raise NoSuchKey(Key=key)
            info = object_info(bucket, key, r)
            if check_source is not None:
                check_source(info)
            if not r.record.extra.keys() <= REISSUABLE:
                return None
            return await self._rename(brec, bucket, kb, kb, positions, per, r, info, meta=meta,
                                      acl=acl)

    async def _rename(
        self, brec: BucketRecord, bucket: str, skb: bytes, dkb: bytes, positions: list[int],
        per: PerDrive, r: Resolved, info: ObjectInfo, *, meta: Mapping[str, str] | None = None,
        acl: bytes | None = None,
    ) -> RenameResult:
        rec = r.record
        akey, avid = anchor_of(rec, skb)
        w = write_quorum(rec.ec[0], rec.ec[1])
        dvid = self.ctx.clock.new_id()
        started = time.time_ns()
        entry = (dkb, dvid)

        def mark(x: VersionRecord) -> None:
            x.extra[MOVING] = [dkb, dvid, started]
            if not is_ref(x):
                set_referrers(x, [*referrers(x), entry])

        # 1. mark (and, for a chained rename, list the new referrer on the anchor)
        if await self.committer.recommit(brec, skb, positions, per, rec.vid, mark) < w:
            await self._undo(brec, skb, rec.vid, akey, avid, entry)
            raise QuorumError("too few drives took the rename mark")
        if is_ref(rec) and not await self.anchors.add_referrer(brec, akey, avid, entry):
            await self._undo(brec, skb, rec.vid, akey, avid, entry)
            raise QuorumError("too few drives took the new reference on the anchor")
        # 2. the destination's reference version
        try:
            with trio.fail_after(COMMIT_DEADLINE):
                await self._commit_reference(brec, dkb, rec, dvid, akey, avid, meta, acl)
        except (QuorumError, trio.TooSlowError):
            with trio.CancelScope(shield=True):
                await self._undo(brec, skb, rec.vid, akey, avid, entry)
            raise QuorumError("the rename's destination did not reach its write quorum") from None
        # 3. flip the source
        marker = await self._flip(brec, bucket, skb, rec.vid)
        # (None: overwritten or deleted in the instant since -- the rename still happened.)
        dst = await self.lookup.latest_info(brec, bucket, dkb.decode("utf-8", "surrogateescape"), dkb)
        return RenameResult(info, dst or info, marker)

    async def _commit_reference(
        self, brec: BucketRecord, dkb: bytes, rec: VersionRecord, dvid: str, akey: bytes,
        avid: str, meta: Mapping[str, str] | None = None, acl: bytes | None = None,
    ) -> None:
        """``meta`` given: a reissue -- new metadata (and ACL), last-modified now."""
        versioned = brec.versioning == "Enabled"
        now = time.time_ns()
        ref = [akey, avid, now if meta is not None else
               rec.extra[REF][2] if is_ref(rec) else rec.mtime_ns]
        extra = with_tags(None, tags_of(rec))
        extra[REF] = ref
        if acl is not None:
            extra[ACL] = acl
        parts = [Part(p.number, p.size, p.etag, "", dict(p.checksums)) for p in rec.parts]
        new_meta = dict(rec.meta if meta is None else meta)

        def make(j: int) -> VersionRecord:
            return VersionRecord(
                vid=dvid, mtime_ns=now, null=not versioned, size=rec.size, etag=rec.etag,
                ec=rec.ec, frag_index=j, parts=list(parts), meta=dict(new_meta),
                checksums=dict(rec.checksums), extra=dict(extra),
            )

        dpos = self.ctx.placement(brec.bucket_id, dkb)
        live = [j for j, p in enumerate(dpos) if self.ctx.drives[p].state == DriveState.ONLINE]
        # The destination's previous version (a purge frees it, below) may be a
        # reference too: note its anchor to release.
        _, dper, dres = await self.lookup.resolve(brec, dkb)
        replaced = [x.record for x in dres if x.record.null and not versioned]
        older = await self.committer.commit_or_rollback(brec, dkb, dpos, live, write_quorum(*rec.ec[:2]),
                                             make, lambda j: [])
        if not versioned and older:
            purge = VersionRecord(vid=dvid, tomb=True, null=True)
            await self.committer.commit(brec, dkb, dpos, older, lambda j: purge, lambda j: [])
            for old in replaced:
                if is_ref(old):
                    k, v = anchor_of(old, dkb)
                    await self.anchors.release(brec, k, v, (dkb, old.vid))

    async def _flip(self, brec: BucketRecord, bucket: str, skb: bytes, vid: str) -> str | None:
        """Step 3 for source version ``vid``; the delete marker's version id in a
        versioned bucket."""
        positions, per, resolved = await self.lookup.resolve(brec, skb, anchors=True)
        r = next((x for x in resolved if x.record.vid == vid), None)
        if r is None:
            return None
        rec = r.record
        mv = rec.extra.get(MOVING)
        w = write_quorum(rec.ec[0], rec.ec[1])
        if brec.versioning and mv is not None and bytes(mv[0]) == skb:
            # A reissue: the old version stays, non-current, with no delete marker.
            await self.committer.recommit(brec, skb, positions, per, vid, lambda x: x.extra.pop(MOVING, None))
            return None
        if brec.versioning:
            res = await self.writes.delete_object(bucket, skb.decode("utf-8", "surrogateescape"))
            await self.committer.recommit(brec, skb, positions, per, vid, lambda x: x.extra.pop(MOVING, None))
            return res.version_id
        if is_ref(rec):
            tomb = VersionRecord(vid=vid, tomb=True)
            if await self.committer.commit(brec, skb, positions, r.holders, lambda j: tomb, lambda j: []) < w:
                raise QuorumError("too few drives took the renamed reference's removal")
            akey, avid = anchor_of(rec, skb)
            await self.anchors.release(brec, akey, avid, (skb, vid))
            return None

        def hide(x: VersionRecord) -> None:
            x.extra[HIDDEN] = True
            x.extra.pop(MOVING, None)

        if await self.committer.recommit(brec, skb, positions, per, vid, hide) < w:
            raise QuorumError("too few drives took the rename's last step")
        if mv is not None:
            log.debug("renamed %r -> %r", skb, bytes(mv[0]))
        return None

    # ------------------------------------------------------------ pending marks
    async def _current(self, brec: BucketRecord, skb: bytes) -> tuple[
        list[int], PerDrive, Resolved | None
    ]:
        """The key's current data version, with a pending mark settled first."""
        for _ in range(3):
            # doubtful: as GET does, a newest version the silent drives decide is
            # a 503 -- renaming the version before it would move stale data.
            positions, per, resolved = await self.lookup.resolve(brec, skb, doubtful=True)
            if resolved and not resolved[0].certain:
                raise QuorumError(DOUBTFUL)
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
        positions, per, resolved = await self.lookup.resolve(brec, key, anchors=True)
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
        _, per = await self.lookup.gather(brec.bucket_id, key)
        holders = [x for recs in per for x in recs or () if x.vid == vid and not x.tomb]
        return bool(holders) and len(holders) >= write_quorum(holders[0].ec[0], holders[0].ec[1])

    async def _undo(self, brec: BucketRecord, skb: bytes, vid: str, akey: bytes, avid: str,
                    entry: tuple[bytes, str]) -> None:
        """Roll a mark back: the source as before, the anchor without ``entry``."""

        def unmark(x: VersionRecord) -> None:
            x.extra.pop(MOVING, None)
            if not is_ref(x):
                set_referrers(x, [e for e in referrers(x) if e != entry])

        try:
            positions, per, _ = await self.lookup.resolve(brec, skb, anchors=True)
            await self.committer.recommit(brec, skb, positions, per, vid, unmark)
            if akey != skb or avid != vid:
                await self.anchors.release(brec, akey, avid, entry)
        except (QuorumError, DriveError) as e:
            log.warning("rename: rolling back the mark on %r failed (settled later): %s", skb, e)

    # ------------------------------------------------------------ locking
    @contextlib.asynccontextmanager
    async def _locks(self, bucket_id: bytes, a: bytes, b: bytes) -> AsyncIterator[None]:
        """Both names' key locks, in one order (two renames never deadlock)."""
        first, second = sorted({a, b}) if a != b else (a, None)
        async with self.key_locks.hold((bucket_id, first)):
            if second is None:
                yield
                return
            async with self.key_locks.hold((bucket_id, second)):
                yield

    def statistics(self) -> dict[str, Any]:
        return {"settled": self.settled, "anchors_freed": self.anchors.anchors_freed}
