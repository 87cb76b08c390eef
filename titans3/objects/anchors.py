"""Rename anchors: the versions whose bytes other versions read (objects/rename.py).

An anchor lists its referrers (``extra["refs"]``, a superset of the versions
that reference it) and, once renamed away, is hidden from reads of its own
key.  :class:`Anchors` finds an anchor's fragments for a reference's read,
adds and releases referrers, frees a hidden anchor whose last referrer went,
and -- for GC -- drops referrers that cannot exist (:meth:`check_anchor`).
The rules and the crash states are the rename module's docstring.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from titans3.core.errors import DriveError, QuorumError
from titans3.drive.records import HIDDEN, REF, REFS, VersionRecord
from titans3.objects import handoff
from titans3.objects.buckets import BucketRecord
from titans3.objects.commit import Committer
from titans3.objects.context import StoreContext
from titans3.objects.lookup import Lookup, PerDrive
from titans3.objects.resolve import Resolved, write_quorum
from titans3.objects.versionid import timestamp_ns

log = logging.getLogger("titans3.objects.rename")

RENAME_WINDOW = 60.0  # s: a mark older than this whose destination did not land is rolled back


def is_ref(rec: VersionRecord) -> bool:
    return REF in rec.extra


def anchor_of(rec: VersionRecord, key: bytes) -> tuple[bytes, str]:
    """``(key, vid)`` of the version holding ``rec``'s bytes (itself unless a reference)."""
    ref = rec.extra.get(REF)
    return (bytes(ref[0]), str(ref[1])) if ref else (key, rec.vid)


def referrers(rec: VersionRecord) -> list[tuple[bytes, str]]:
    return [(bytes(k), str(v)) for k, v in rec.extra.get(REFS) or ()]


def set_referrers(rec: VersionRecord, refs: Sequence[tuple[bytes, str]]) -> None:
    if refs:
        rec.extra[REFS] = [[k, v] for k, v in refs]
    else:
        rec.extra.pop(REFS, None)


def _age(vid: str, now_ns: int) -> float:
    return (now_ns - timestamp_ns(vid)) / 1e9


class Anchors:
    def __init__(self, ctx: StoreContext, lookup: Lookup, committer: Committer, *,
                 window: float = RENAME_WINDOW) -> None:
        self.ctx = ctx
        self.lookup = lookup
        self.committer = committer
        self.window = window
        self.anchors_freed = 0

    async def anchor_holders(self, brec: BucketRecord, key: bytes, rec: VersionRecord) -> tuple[
        VersionRecord, dict[int, Any], bytes
    ]:
        """For a read of reference ``rec``: the anchor's record, its fragment
        holders (index -> drive) and its key."""
        akey, avid = anchor_of(rec, key)
        positions, per = await self.lookup.gather(brec.bucket_id, akey)
        holders: dict[int, Any] = {}
        arec: VersionRecord | None = None
        for j, recs in enumerate(per):
            for x in recs or ():
                if x.vid == avid and not x.tomb:
                    arec = arec or x
                    holders.setdefault(x.frag_index,
                                       handoff.holder(self.ctx, self.ctx.drives[positions[j]], x))
        if arec is None or len(holders) < arec.ec[0]:
            raise QuorumError("too few fragments of the renamed object's data are reachable")
        return arec, holders, akey

    async def anchor(self, brec: BucketRecord, akey: bytes, avid: str) -> tuple[
        list[int], PerDrive, Resolved | None
    ]:
        positions, per, resolved = await self.lookup.resolve(brec, akey, anchors=True)
        return positions, per, next((x for x in resolved if x.record.vid == avid), None)

    async def add_referrer(self, brec: BucketRecord, akey: bytes, avid: str,
                            entry: tuple[bytes, str]) -> bool:
        positions, per, a = await self.anchor(brec, akey, avid)
        if a is None:
            return False

        def add(x: VersionRecord) -> None:
            set_referrers(x, [*referrers(x), entry])

        w = write_quorum(a.record.ec[0], a.record.ec[1])
        return await self.committer.recommit(brec, akey, positions, per, avid, add) >= w

    async def release(self, brec: BucketRecord, akey: bytes, avid: str,
                      entry: tuple[bytes, str]) -> None:
        """``entry`` no longer references anchor ``akey@avid``: take it off the
        list, and free a hidden anchor left with no referrer.  Best effort: what
        fails here is GC's to finish (:meth:`check_anchor`)."""
        try:
            positions, per, a = await self.anchor(brec, akey, avid)
            if a is None:
                return
            left = [e for e in referrers(a.record) if e != entry]
            await self.apply_referrers(brec, akey, positions, per, a, left)
        except (QuorumError, DriveError) as e:
            log.info("rename: releasing %r@%s from %r failed (GC retries): %s", akey, avid,
                     entry[0], e)

    async def apply_referrers(
        self, brec: BucketRecord, akey: bytes, positions: list[int],
        per: PerDrive, a: Resolved, left: list[tuple[bytes, str]],
    ) -> None:
        rec = a.record
        if left == referrers(rec) and (left or not rec.extra.get(HIDDEN)):
            return
        if not left and rec.extra.get(HIDDEN):
            tomb = VersionRecord(vid=rec.vid, tomb=True)
            await self.committer.commit(brec, akey, positions, a.holders, lambda j: tomb, lambda j: [])
            self.anchors_freed += 1
            return

        def update(x: VersionRecord) -> None:
            set_referrers(x, left)

        await self.committer.recommit(brec, akey, positions, per, rec.vid, update)

    async def check_anchor(self, brec: BucketRecord, akey: bytes, a: Resolved,
                           positions: list[int], per: PerDrive) -> bool:
        """GC: drop referrers that cannot exist (never landed, or deleted) once
        older than the window; free the anchor when none is left.  True when
        something changed."""
        now = time.time_ns()
        rec = a.record
        keep: list[tuple[bytes, str]] = []
        for rk, rvid in referrers(rec):
            if _age(rvid, now) < self.window or await self.may_exist(brec, rk, rvid):
                keep.append((rk, rvid))
        if keep == referrers(rec) and (keep or not rec.extra.get(HIDDEN)):
            return False
        await self.apply_referrers(brec, akey, positions, per, a, keep)
        return True

    async def may_exist(self, brec: BucketRecord, key: bytes, vid: str) -> bool:
        """Whether version ``vid`` of ``key`` may have been acknowledged (the
        read rule's ``count + unseen >= W``); unsure answers count as yes."""
        try:
            positions, per = await self.lookup.gather(brec.bucket_id, key)
        except DriveError:
            return True
        unseen = sum(1 for p in per if p is None)
        holders = [x for recs in per for x in recs or () if x.vid == vid and not x.tomb]
        if not holders:
            return unseen >= write_quorum(self.ctx.scheme.k, self.ctx.scheme.m)
        k, m, _ = holders[0].ec
        return len(holders) + unseen >= write_quorum(k, m)
