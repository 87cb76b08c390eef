"""Two-phase writes: staging a stream, committing per-drive records, rolling back.

Theory of operation
-------------------
:meth:`Committer.stage` erasure-codes a body into staging on the placement's drives
(substituting handoff drives for down primaries when asked); nothing is
visible yet.  ``commit`` asks every drive that staged a fragment to promote it
and merge the version record in one durable step.  ``commit_or_rollback``
acknowledges only when the write quorum landed (or the handoff rule in
:mod:`titans3.objects.handoff` is met) and otherwise removes the partial
commits.  An acknowledged write that missed some of its drives (and left no
hint for them) is reported to ``on_partial_write``, the repair queue, so the
missed fragments come back without waiting for a scrub; if even the rollback cannot run, readers ignore a version held by
fewer than k drives and show one held by k or more, whoever answers
(:mod:`titans3.objects.resolve`; a read queues it for repair).  Staging and the
commit of a write do not wait for a drive that is merely slow beyond a
bounded cutoff once ``W`` drives finished (:mod:`titans3.objects.stragglers`);
such a write is a partial write too.  Older null versions are
purged only after their successor is safe (``purge_older_nulls``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import suppress
from functools import partial

import trio

from titans3.core import sse
from titans3.core.errors import DriveError, DriveFull, QuorumError, S3Error, StorageFull
from titans3.drive.protocol import Drive, DriveState
from titans3.drive.records import VersionRecord
from titans3.erasure.codec import ECScheme
from titans3.objects import handoff
from titans3.objects.buckets import BucketRecord
from titans3.objects.bufwriter import WholeBody, write_buffer
from titans3.objects.context import StoreContext
from titans3.objects.resolve import write_quorum
from titans3.objects.sse import EncryptState, encrypt_body
from titans3.objects.stragglers import Backlog, Cutoff, Phases
from titans3.objects.validate import check_content_md5
from titans3.objects.writer import Written, write_stream

log = logging.getLogger("titans3.objects.store")


class Committer:
    """Staging, committing and rolling back writes on a key's drives.

    ``later(fn, *args)`` runs after-acknowledgement work in the store's
    background nursery (the purge of replaced null versions)."""

    def __init__(self, ctx: StoreContext, later: Callable[..., None]) -> None:
        self.ctx = ctx
        self._later = later
        self.partial_writes = 0
        # Called with (bucket_id, key) after a write acknowledged on fewer than
        # all of its drives (a drive died mid-stream, a host was away without a
        # handoff drive): the missed fragments are repair's to restore.
        self.on_partial_write: Callable[[bytes, bytes], None] | None = None
        # Slow drives (objects/stragglers.py): the policy, and where a
        # straggler's call goes on once the write stopped waiting for it (the
        # store's background nursery's start_soon, None while it is not running).
        self.cutoff = Cutoff()
        self.spawner: Callable[[], Callable[..., None] | None] = lambda: None
        self.stragglers = 0  # drives a write went on without (status page)
        self.backlog = Backlog()

    def phases(self, ids: Callable[[int], str] | None = None) -> Phases:
        return Phases(self.spawner(), self.cutoff, ids, self.backlog)

    def skip_backlogged(self, drives: list[Drive | None], w: int) -> list[Drive | None]:
        """Leave out drives still busy with a cut-off call, while ``w`` others remain."""
        busy = [j for j, d in enumerate(drives) if d is not None and self.backlog.busy(d.drive_id)]
        if not busy or sum(d is not None for d in drives) - len(busy) < w:
            return drives
        return [None if j in busy else d for j, d in enumerate(drives)]

    async def stage(
        self,
        brec: BucketRecord,
        key: bytes,
        body: AsyncIterator[bytes],
        size: int | None,
        content_md5: str | None,
        on_data: Callable[[memoryview], None] | None,
        *,
        inline_max: int | None = None,
        hinted: bool = False,
        override: Mapping[int, Drive] | None = None,
        stream_key: bytes | None = None,
        scheme: ECScheme | None = None,
        md5: bool = True,
    ) -> tuple[list[int], ECScheme, Written]:
        """``override``: fragment index -> the drive that takes it instead of the
        placement's (a multipart upload's substitutes, objects/multipart.py).
        ``stream_key``: encrypt the body first (``objects/sse.py``); the result's
        ``size`` and ``md5`` are then the plaintext's.  ``scheme``: another
        than the bucket's (a storage class); it takes the placement's first
        ``k + m`` drives."""
        sch = scheme or self.ctx.scheme_for(brec)
        positions = self.ctx.placement(brec.bucket_id, key)[: sch.n]
        drives: list[Drive | None] = [
            self.ctx.drives[p] if self.ctx.drives[p].state == DriveState.ONLINE else None for p in positions
        ]
        for j, d in (override or {}).items():
            drives[j] = d if d.state == DriveState.ONLINE else None
        drives = self.skip_backlogged(drives, write_quorum(sch.k, sch.m))
        if hinted:  # hinted handoff for down primaries (objects/handoff.py)
            drives = handoff.substitute(self.ctx, brec.bucket_id, key, positions, drives, sch.k, sch.m)
        state: EncryptState | None = None
        if stream_key is not None:
            state = EncryptState()
            body = encrypt_body(body, stream_key, on_data, state)
            on_data = None
            size = None if size is None else sse.stored_size(size)
        imax = self.ctx.inline_max if inline_max is None else inline_max
        staged = drives
        phases = self.phases(lambda j: staged[j].drive_id)  # type: ignore[union-attr]
        async with self.ctx.admission.hold(sch, size, inline_max=imax):  # objects/admission.py
            if isinstance(body, WholeBody) and on_data is None and size in (None, len(body.data)):
                # already in memory, not encrypted: one call per drive (objects/bufwriter.py)
                written = await write_buffer(
                    body.data, drives, sch, self.ctx.codec(sch.k, sch.m), phases=phases,
                    write_quorum=write_quorum(sch.k, sch.m), inline_max=imax, hash_md5=md5)
            else:
                written = await write_stream(
                    body, drives, sch, self.ctx.codec(sch.k, sch.m), phases=phases,
                    write_quorum=write_quorum(sch.k, sch.m), inline_max=imax,
                    expected_size=size, on_data=on_data, hash_md5=state is None and md5,
                )
        self.stragglers += len(phases.cut)
        if state is not None:
            written.size, written.md5 = state.size, state.md5
        if not md5:  # no ETag for callers that never show one (objects/extents.py)
            written.md5 = b""
        handoff.register(self.ctx, written.data_id, drives)
        if content_md5 is not None:
            try:
                check_content_md5(content_md5, written.md5)
            except S3Error:
                await self.discard(positions, written)
                raise
        return positions, sch, written

    async def discard(self, positions: list[int], written: Written) -> None:
        """Drop staged data that will never be committed."""
        if written.inline is not None:
            return
        async def one(pos: int) -> None:
            with suppress(DriveError):
                await self.ctx.drives[pos].delete_data([written.data_id])
        async with trio.open_nursery() as nursery:
            for j in written.ok:
                nursery.start_soon(one, positions[j])

    async def commit(
        self, brec: BucketRecord, key: bytes, positions: list[int], ok: Sequence[int],
        make: Callable[[int], VersionRecord], promote: Callable[[int], list[str]],
        inline: list[bytes] | None = None, data_id: str | None = None,
        older_nulls: list[int] | None = None, landed_out: list[int] | None = None,
        full_out: list[int] | None = None, quorum: int | None = None,
    ) -> int:
        """Commit per-drive records on ``ok`` positions; returns how many landed.
        Positions still holding older null versions are added to ``older_nulls``,
        the positions that landed to ``landed_out``, those refused for space to
        ``full_out``.  ``quorum``: stop waiting for slow drives once that many
        landed and the cutoff passed (their commits still land, later)."""
        landed: list[int] = [] if landed_out is None else landed_out

        async def one(j: int) -> bool:
            rec = make(j)
            hd = handoff.pending(self.ctx, rec, j)
            d = hd if hd is not None else self.ctx.drives[positions[j]]
            try:
                if inline is not None and data_id is not None:
                    await d.put_inline(data_id, inline[j])
                if hd is not None:  # a fragment staged on a handoff drive: store the hint
                    await hd.commit_hint(brec.bucket_id, key, rec)
                    landed.append(j)
                    return True
                older = await d.commit_version(brec.bucket_id, key, rec, promote=promote(j))
                landed.append(j)
                if older and older_nulls is not None:
                    older_nulls.append(j)
                return True
            except DriveError as e:
                log.warning("commit on %s failed: %s", d.drive_id, e)
                if isinstance(e, DriveFull) and full_out is not None:
                    full_out.append(j)
                return False

        if quorum is None:
            async with trio.open_nursery() as nursery:
                for j in ok:
                    nursery.start_soon(one, j)
            return len(landed)
        cut = await self.phases(lambda j: self.ctx.drives[positions[j]].drive_id).gather(
            {j: partial(one, j) for j in ok}, quorum)
        self.stragglers += len(cut)
        # A commit still running lands later and counts for nothing here.
        return sum(1 for j in landed if j not in cut)

    async def commit_or_rollback(
        self, brec: BucketRecord, key: bytes, positions: list[int], ok: Sequence[int], w: int,
        make: Callable[[int], VersionRecord], promote: Callable[[int], list[str]],
        inline: list[bytes] | None = None, data_id: str | None = None,
    ) -> list[int]:
        """Returns the positions that still hold older null versions."""
        older: list[int] = []
        landed: list[int] = []
        full: list[int] = []
        n = await self.commit(brec, key, positions, ok, make, promote, inline, data_id, older,
                              landed, full, quorum=w)
        landed = landed[:n]  # not the stragglers' commits that land later
        if await handoff.settle(self.ctx, brec.bucket_id, key, make(0), positions, landed, n >= w):
            if n < len(positions):  # hints count as landed: their replay restores them
                self.partial_writes += 1
                if self.on_partial_write is not None:
                    self.on_partial_write(brec.bucket_id, key)
            return older
        vid = make(0).vid
        tomb = VersionRecord(vid=vid, tomb=True)
        await self.commit(brec, key, positions, ok, lambda j: tomb, lambda j: [])
        # Short of W because drives had no room: they are there, 507.  (W landed
        # yet not acknowledged -- handoff's durability rule refused it -- is a 503.)
        if n < w <= n + len(full):
            raise StorageFull()
        raise QuorumError(f"only {n} of the {w} drives needed committed the write")

    def purge_older_nulls(
        self, brec: BucketRecord, key: bytes, positions: list[int], vid: str, where: Sequence[int]
    ) -> None:
        """After a null version reached quorum: free the older ones, in the background."""
        if not where:
            return
        purge = VersionRecord(vid=vid, tomb=True, null=True)

        async def run() -> None:
            await self.commit(brec, key, positions, where, lambda j: purge, lambda j: [])

        self._later(run)

    async def recommit(
        self, brec: BucketRecord, key: bytes, positions: list[int],
        per: Sequence[Sequence[VersionRecord] | None], vid: str,
        mutate: Callable[[VersionRecord], object],
    ) -> int:
        """Re-commit version ``vid`` on every drive holding it, changed by
        ``mutate`` and stamped (``extra["mu"]``) so readers take the new copy
        (objects/tagging.py); returns how many drives took it."""
        stamp = self.ctx.clock.new_id()
        updated: dict[int, VersionRecord] = {}
        for j, recs in enumerate(per):
            for rec in recs or ():
                if rec.vid == vid and not rec.tomb:
                    new = VersionRecord.from_dict(rec.to_dict())
                    mutate(new)
                    new.extra["mu"] = stamp
                    updated[j] = new
        return await self.commit(brec, key, positions, sorted(updated),
                                  lambda j: updated[j], lambda j: [])

