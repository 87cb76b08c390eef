"""Storage-class transitions: re-encoding one version into another EC scheme.

Theory of operation
-------------------
A lifecycle ``Transition`` (``workers/lifecycle.py``) moves a version to a
storage class the operator mapped to another scheme (``core/storageclass.py``).
The version keeps its id, ETag, size, metadata, checksums, tags, lock and SSE
state: only ``ec``, the data ids and ``extra["sc"]`` change.  The bytes moved
are the *stored* bytes -- for an encrypted version the ciphertext packages,
which are never decrypted (no key is needed, none is touched).

Crash safety is the commit path's (``objects/commit.py``):

1. the stored stream of the current encoding is decoded and re-encoded under a
   **new data id** into staging on the placement's first ``k' + m'`` drives --
   nothing visible, the old encoding untouched;
2. the new record (same vid, new ``ec`` and data ids, re-encode stamp
   ``extra["tr"]``) is committed per drive: one LMDB transaction promotes the
   new fragment and replaces the old record, freeing that drive's old fragment
   (``drive/records.py: merge_commit``);
3. once the new encoding holds its write quorum, the drives outside the new
   width that still hold the old encoding drop it (a tombstone of that vid on
   those drives only).

Killed anywhere, every drive holds the old encoding or the new one, and the
read rule (``objects/resolve.py``) reads the newest encoding with enough
fragments -- old or new, never neither, never a mix.  A version left mixed is
finished by repair (positions inside the new width, ``stale``) and by the next
transition call (drives outside it); staged fragments of an interrupted step 1
are GC's (uncommitted data older than the commit window).

Renamed objects (references and their anchors) and versions mid-rename are
not transitioned: their data is shared with another key's record.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import replace

import trio

from titans3.core import sse, storageclass
from titans3.core.errors import DriveError, InvalidRequest, QuorumError
from titans3.drive.protocol import Drive
from titans3.drive.records import (
    HIDDEN,
    MOVING,
    REF,
    REFS,
    STORAGE_CLASS,
    TRANSITIONED,
    VersionRecord,
)
from titans3.erasure.codec import ECScheme
from titans3.objects import handoff
from titans3.objects.buckets import BucketRecord
from titans3.objects.commit import Committer
from titans3.objects.conditional import KeyLocks
from titans3.objects.context import StoreContext
from titans3.objects.lookup import Lookup, pick
from titans3.objects.reader import read_stream
from titans3.objects.resolve import Resolved, same_encoding, write_quorum
from titans3.objects.sse import SSE
from titans3.objects.validate import check_key
from titans3.objects.writer import Written

log = logging.getLogger("titans3.objects.transition")


class Transitions:
    def __init__(self, ctx: StoreContext, lookup: Lookup, committer: Committer,
                 key_locks: KeyLocks) -> None:
        self.ctx = ctx
        self.lookup = lookup
        self.committer = committer
        self.key_locks = key_locks
        self.transitioned = 0  # versions re-encoded (status page counter)
        self.bytes_moved = 0

    async def transition_object(self, bucket: str, key: str, storage_class: str, *,
                                version_id: str | None = None) -> bool:
        """Re-encode the version (default: the current one) into ``storage_class``'s
        scheme; True if anything changed.  ``InvalidStorageClass`` for an
        unmapped class; ``InvalidRequest`` for a delete marker or a renamed object."""
        brec = await self.ctx.buckets.get(bucket)
        kb = check_key(key)
        target = self.ctx.scheme_of_class(brec, storage_class)
        async with self.key_locks.hold((brec.bucket_id, kb)):
            positions, per, resolved = await self.lookup.resolve(brec, kb)
            r, _ = pick(resolved, version_id)
            rec = r.record
            if rec.dm:
                raise InvalidRequest("A delete marker has no storage class.")
            if REF in rec.extra or rec.extra.get(REFS) or rec.extra.get(HIDDEN) or MOVING in rec.extra:
                raise InvalidRequest("A renamed object cannot change its storage class.")
            if not r.readable:
                raise QuorumError("too few fragments of this version are reachable")
            others = _other_encodings(per, rec)
            if tuple(rec.ec[:2]) == (target.k, target.m) and \
                    rec.extra.get(STORAGE_CLASS, storageclass.STANDARD) == storage_class:
                if not others:
                    return False
                # An earlier transition was interrupted: finish its last step.
                await self._drop_old(brec, kb, positions, others, rec, target)
                return True
            await self._reencode(brec, kb, positions, per, r, target, storage_class)
            self.transitioned += 1
            return True

    async def _reencode(self, brec: BucketRecord, kb: bytes, positions: list[int],
                        per: list, r: Resolved, target: ECScheme, storage_class: str) -> None:
        rec = r.record
        holders: dict[int, Drive] = {}
        for j, recs in enumerate(per):
            for x in recs or ():
                if x.vid == rec.vid and not x.tomb and same_encoding(x, rec):
                    holders.setdefault(x.frag_index,
                                       handoff.holder(self.ctx, self.ctx.drives[positions[j]], x))
        sealed = SSE in rec.extra
        streams = [(rec.data or "", rec.size)] if not rec.parts else \
            [(p.data_id, p.size) for p in rec.parts]
        staged: list[tuple[list[int], Written]] = []
        try:
            for data_id, size in streams:
                stored = sse.stored_size(size) if sealed else size
                body = self._stored_stream(rec, holders, data_id, stored)
                pos, _, written = await self.committer.stage(
                    brec, kb, body, stored, None, None, scheme=target,
                    inline_max=None if not rec.parts else 0)
                staged.append((pos, written))
                self.bytes_moved += stored
        except BaseException:
            with trio.CancelScope(shield=True):
                for pos, w in staged:
                    await self.committer.discard(pos, w)
            raise
        new_positions = positions[: target.n]
        ok = sorted(set.intersection(*(set(w.ok) for _, w in staged))) if staged else []
        stamp = self.ctx.clock.new_id()
        base = VersionRecord.from_dict(rec.to_dict())
        base.ec = (target.k, target.m, target.segment_size)
        base.extra[TRANSITIONED] = stamp
        if storage_class == storageclass.STANDARD:
            base.extra.pop(STORAGE_CLASS, None)
        else:
            base.extra[STORAGE_CLASS] = storage_class
        if rec.parts:
            base.parts = [replace(p, data_id=w.data_id) for p, (_, w) in zip(rec.parts, staged, strict=True)]
            base.inline = False
        else:
            w0 = staged[0][1]
            base.data = w0.data_id
            base.inline = w0.inline is not None

        def make(j: int) -> VersionRecord:
            return replace(base, frag_index=j, extra=dict(base.extra), meta=dict(base.meta),
                           checksums=dict(base.checksums))

        ids = [w.data_id for _, w in staged]
        w0 = staged[0][1]
        inline = w0.inline if not rec.parts else None
        landed: list[int] = []
        n = await self.committer.commit(brec, kb, new_positions, ok, make, lambda j: ids,
                                        inline, w0.data_id if inline is not None else None,
                                        landed_out=landed)
        need = write_quorum(target.k, target.m)
        if n < need:
            # The old encoding still holds elsewhere and stays readable (the read
            # rule picks an encoding with enough fragments); repair or the next
            # pass finishes.  Nothing is dropped.
            log.warning("transition of %r to %s landed on %d of %d drives", kb, storage_class, n, need)
            raise QuorumError(f"the new encoding landed on {n} of the {need} drives needed")
        _, per2, resolved = await self.lookup.resolve(brec, kb)
        cur = next((x.record for x in resolved if x.record.vid == rec.vid), None)
        if cur is not None and same_encoding(cur, make(0)):
            await self._drop_old(brec, kb, positions, _other_encodings(per2, cur), cur, target)
        log.info("transitioned %s/%r version %s to %s (%d+%d)", brec.name, kb, rec.vid,
                 storage_class, target.k, target.m)

    async def _drop_old(self, brec: BucketRecord, kb: bytes, positions: list[int],
                        others: list[int], rec: VersionRecord, target: ECScheme) -> None:
        """Drop the old encoding from drives outside the new width (inside it,
        repair rewrites them: they are ``stale`` to it)."""
        outside = [j for j in others if j >= target.n]
        if not outside:
            return
        tomb = VersionRecord(vid=rec.vid, tomb=True)
        await self.committer.commit(brec, kb, positions, outside, lambda j: tomb, lambda j: [])

    async def _stored_stream(self, rec: VersionRecord, holders: dict[int, Drive], data_id: str,
                             stored: int) -> AsyncIterator[bytes]:
        """The stream's stored bytes (ciphertext for an encrypted version), decoded
        from its current encoding."""
        k, m, _ = rec.ec
        codec = self.ctx.codec(k, m)
        if rec.inline:
            frags: dict[int, bytes] = {}
            for idx in sorted(holders):
                if len(frags) >= k:
                    break
                try:
                    frags[idx] = await holders[idx].read_fragment(data_id, 0, 1 << 62)
                except DriveError as e:
                    log.warning("inline fragment %d unreadable: %s", idx, e)
            if len(frags) < k:
                raise QuorumError("too few inline fragments readable")
            if stored:
                yield bytes(codec.decode(frags))[:stored]
            return
        if stored == 0:
            return
        layout = self.ctx.layout(rec.ec, stored)
        async for chunk in read_stream(holders, data_id, layout, codec, 0, stored - 1):
            yield chunk


def _other_encodings(per: list, rec: VersionRecord) -> list[int]:
    """Positions whose record of ``rec``'s version is another encoding."""
    out = []
    for j, recs in enumerate(per):
        for x in recs or ():
            if x.vid == rec.vid and not x.tomb and not same_encoding(x, rec):
                out.append(j)
                break
    return out

