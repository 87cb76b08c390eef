"""Repair of one object: every visible version back to ``k + m`` healthy fragments.

Theory of operation
-------------------
The unit of repair is a key.  :func:`gather` asks *every* placement drive for
the key's records -- healing drives too, because they are the ones to fill --
and resolves the visible versions with the read rule
(:mod:`titans3.objects.resolve`), counting healing drives as not answering (a
blank drive's "no record" is not evidence).  For every visible version,
:func:`examine` gives each fragment index ``i`` (held by placement position
``i``) a health:

* ``ok`` -- the drive has the record with fragment index ``i`` and every data
  stream (the object, or each multipart part) is there at its exact length;
* ``missing`` -- no record (the drive was offline during the PUT, or it is a
  blank replacement), or the record is there but a stream is gone (quarantined
  after a bad block, deleted);
* ``corrupt`` -- a read found a bad block (the drive quarantined the file);
* ``stale`` -- the drive holds only older versions of the key, a record naming
  another fragment index, or a stream of the wrong length;
* ``offline`` -- the drive cannot be asked now.

The cheap check reads fragment headers only; ``deep`` reads every block (what
the scrubber does), which is the only way to find a bad block before a
client does.

:meth:`ObjectRepair.repair` then rebuilds what is not ``ok`` on drives that are
online: per data stream it reads the same byte range from ``k`` healthy
holders, ``batch_bytes`` at a time, rebuilds the missing fragments of each
segment with ``Codec.reconstruct`` and appends them to a staging writer on each
target -- memory stays at one batch whatever the object size.  Each target
then commits the *same* version record with its own ``frag_index``, promoting
the rebuilt data ids in the same durable step (``merge_commit`` replaces a
record with the same version id; nothing is freed because the data ids are the
same).  Delete markers only need the record.

Invariants:

* Repair never creates a version: it only copies records of versions the read
  rule shows, so it cannot resurrect a deleted object or mix two versions.
* Versions younger than ``grace`` seconds are left alone (reported as
  deferred): their PUT may still be committing, and the PUT owns the staging
  file named after the data id until then.
* One repair per key at a time in this process (a per-key lock), so the heal
  queue, the scrubber and a refill never stage the same data id twice.
* A stream with fewer than ``k`` healthy fragments is *lost*: reported, never
  guessed at; the rest of the object is still repaired.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import trio

from titans3.core.errors import DriveError, FragmentCorrupt, FragmentMissing
from titans3.drive.protocol import Drive, DriveState, FragmentWriter
from titans3.drive.records import REF, VersionRecord
from titans3.erasure.codec import Codec
from titans3.erasure.stripe import Layout
from titans3.objects.resolve import Resolved, resolve_versions, same_encoding, write_quorum
from titans3.objects.sse import stored_size_of
from titans3.objects.versionid import timestamp_ns

if TYPE_CHECKING:
    from titans3.objects.context import StoreContext

log = logging.getLogger(__name__)

REPAIR_GRACE = 10.0  # seconds a new version is left to its own PUT
BATCH_BYTES = 4 << 20  # per fragment stream and read round
DEEP_READ = 4 << 20

OK, MISSING, CORRUPT, STALE, OFFLINE = "ok", "missing", "corrupt", "stale", "offline"
_RANK = {OK: 0, STALE: 1, MISSING: 2, CORRUPT: 3, OFFLINE: 4}  # the worst stream names a fragment


class TooFewFragments(DriveError):
    """Fewer than ``k`` healthy fragments of a stream could be read."""

    def __init__(self, message: str) -> None:
        super().__init__("-", message)


def streams_of(rec: VersionRecord) -> list[tuple[str, int]]:
    """``(data id, stored bytes)`` of every data stream of a data version (an
    encrypted stream stores more than its plaintext size, objects/sse.py)."""
    if rec.parts:
        return [(p.data_id, stored_size_of(rec, p.size)) for p in rec.parts]
    return [(rec.data or "", stored_size_of(rec, rec.size))]


def record_age(rec: VersionRecord, now_ns: int) -> float:
    born = rec.mtime_ns or timestamp_ns(rec.vid)
    return (now_ns - born) / 1e9


@dataclass(frozen=True, slots=True)
class FragmentState:
    index: int  # fragment index == placement position index
    position: int  # drive position in the store
    drive_id: str
    health: str
    detail: str = ""
    record_ok: bool = False  # the drive holds this version's record for this index
    bad_streams: frozenset[str] = frozenset()  # data ids to rebuild here


@dataclass(slots=True)
class KeyState:
    bucket_id: bytes
    key: bytes
    positions: list[int]  # placement: fragment index -> drive position
    per: list[list[VersionRecord] | None]  # every placement drive's records (None: no answer)
    resolved: list[Resolved]
    invisible: list[str]  # version ids some drive holds that the read rule ignores
    k: int
    w: int
    m: int | None = None  # the placement's parity (a delete marker's visibility)


@dataclass(slots=True)
class RepairOutcome:
    bucket_id: bytes
    key: bytes
    versions: int = 0  # visible versions examined
    fragments_rebuilt: int = 0  # data streams written onto a drive
    records_restored: int = 0  # version records written (with their streams)
    bytes_rebuilt: int = 0  # fragment bytes written
    unreachable: int = 0  # fragments that belong on a drive that is offline
    lost: int = 0  # streams with fewer than k healthy fragments
    deferred: bool = False  # try again later (young version, drive offline)
    errors: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.fragments_rebuilt or self.records_restored)

    @property
    def healthy(self) -> bool:
        return not (self.unreachable or self.lost or self.deferred or self.errors)


# ------------------------------------------------------------------ gathering
async def gather(ctx: StoreContext, bucket_id: bytes, key: bytes, *, k: int, w: int,
                 m: int | None = None) -> KeyState:
    """Every placement drive's records of ``key``, and the visible versions."""
    positions = ctx.placement(bucket_id, key)
    per: list[list[VersionRecord] | None] = [None] * len(positions)

    async def one(j: int, d: Drive) -> None:
        try:
            per[j] = await d.read_versions(bucket_id, key)
        except DriveError:
            per[j] = None

    async with trio.open_nursery() as nursery:
        for j, pos in enumerate(positions):
            if ctx.drives[pos].state == DriveState.ONLINE:
                nursery.start_soon(one, j, ctx.drives[pos])
    for_read = [None if pos in ctx.healing else per[j] for j, pos in enumerate(positions)]
    resolved = resolve_versions(for_read, k=k, w=w, anchors=True, m=m)  # rename anchors need repair too
    visible = {r.record.vid for r in resolved}
    seen = {x.vid for recs in per for x in recs or () if not x.tomb}
    return KeyState(bucket_id, key, positions, per, resolved, sorted(seen - visible), k, w, m)


async def _check_stream(
    d: Drive, data_id: str, expected: int, *, deep: bool, inline: bool
) -> tuple[str, str]:
    """(health, detail) of one data stream on one drive."""
    try:
        if inline or deep:
            got = 0
            while True:
                want = DEEP_READ if not inline else 1 << 62
                buf = await d.read_fragment(data_id, got, want)
                got += len(buf)
                if inline or len(buf) < want or got >= expected:
                    break
            size = got
        else:
            size = await d.fragment_size(data_id)
    except FragmentMissing:
        return MISSING, f"no fragment {data_id}"
    except FragmentCorrupt as e:
        return CORRUPT, str(e)
    except DriveError as e:
        return OFFLINE, str(e)
    if size != expected:
        return STALE, f"fragment {data_id} holds {size} bytes, expected {expected}"
    return OK, ""


async def examine(
    ctx: StoreContext, ks: KeyState, r: Resolved, *, deep: bool = False,
    only: Collection[int] | None = None,
) -> list[FragmentState]:
    """The health of every fragment of version ``r`` (see module doc); ``deep``
    reads every block, on the positions in ``only`` if given."""
    rec = r.record
    n = len(ks.positions) if rec.dm else rec.ec[0] + rec.ec[1]
    out: list[FragmentState | None] = [None] * n

    async def one(i: int) -> None:
        pos = ks.positions[i]
        d = ctx.drives[pos]
        recs = ks.per[i]
        deep_here = deep and (only is None or pos in only)
        if d.state != DriveState.ONLINE or recs is None:
            out[i] = FragmentState(i, pos, d.drive_id, OFFLINE, d.state.value)
            return
        mine = next((x for x in recs if x.vid == rec.vid and not x.tomb), None)
        every = frozenset() if rec.dm or REF in rec.extra else frozenset(s for s, _ in streams_of(rec))
        if mine is None:
            newest = max((x.vid for x in recs if not x.tomb), default=None)
            if newest is not None and newest < rec.vid:
                out[i] = FragmentState(i, pos, d.drive_id, STALE, f"holds only older version {newest}",
                                       bad_streams=every)
            else:
                out[i] = FragmentState(i, pos, d.drive_id, MISSING, "no record of this version",
                                       bad_streams=every)
            return
        if rec.dm:
            out[i] = FragmentState(i, pos, d.drive_id, OK, record_ok=True)
            return
        if mine.frag_index != i:
            out[i] = FragmentState(i, pos, d.drive_id, STALE,
                                   f"record names fragment {mine.frag_index}", bad_streams=every)
            return
        if not same_encoding(mine, rec):  # left in its old encoding by a re-encode (resolve.py)
            out[i] = FragmentState(i, pos, d.drive_id, STALE,
                                   f"holds encoding {mine.ec[0]}+{mine.ec[1]} of another re-encode",
                                   bad_streams=every)
            return
        if REF in rec.extra:  # a rename's reference: its data is the anchor's, repaired there
            out[i] = FragmentState(i, pos, d.drive_id, OK, record_ok=True)
            return
        codec = ctx.codec(rec.ec[0], rec.ec[1])
        worst, detail, bad = OK, "", set()
        for data_id, size in streams_of(rec):
            if rec.inline:
                expected = codec.fragment_size(size)
            else:
                expected = ctx.layout(rec.ec, size).fragment_length()
            h, why = await _check_stream(d, data_id, expected, deep=deep_here, inline=rec.inline)
            if h != OK:
                bad.add(data_id)
                if _RANK[h] > _RANK[worst]:
                    worst, detail = h, why
        out[i] = FragmentState(i, pos, d.drive_id, worst, detail, record_ok=True,
                               bad_streams=frozenset(bad))

    async with trio.open_nursery() as nursery:
        for i in range(min(n, len(ks.positions))):
            nursery.start_soon(one, i)
    return [f for f in out if f is not None]


# ------------------------------------------------------------------ rebuilding
async def _read_k(
    sources: dict[int, Drive], order: list[int], failed: set[int], data_id: str,
    off: int, length: int, k: int,
) -> dict[int, bytes]:
    """``length`` bytes at ``off`` of ``k`` source fragments (next source on failure)."""
    got: dict[int, bytes] = {}
    candidates = [i for i in order if i not in failed]
    while len(got) < k:
        batch, candidates = candidates[: k - len(got)], candidates[k - len(got) :]
        if not batch:
            raise TooFewFragments(f"only {len(got)} of the {k} fragments needed are readable")

        async def one(i: int) -> None:
            try:
                buf = await sources[i].read_fragment(data_id, off, length)
                if len(buf) != length:
                    raise DriveError(sources[i].drive_id, f"short read ({len(buf)} of {length})")
                got[i] = buf
            except DriveError as e:
                log.warning("repair: fragment %d of %s unreadable: %s", i, data_id, e)
                failed.add(i)

        async with trio.open_nursery() as nursery:
            for i in batch:
                nursery.start_soon(one, i)
    return got


async def _abort_all(writers: dict[int, FragmentWriter]) -> None:
    with trio.CancelScope(shield=True):
        for w in writers.values():
            try:
                await w.abort()
            except Exception as e:  # noqa: BLE001 -- best effort: staging GC catches leftovers
                log.debug("abort failed: %s", e)


async def rebuild_stream(
    codec: Codec, layout: Layout, data_id: str, sources: dict[int, Drive],
    targets: dict[int, Drive], *, inline: bool, batch_bytes: int = BATCH_BYTES,
) -> tuple[set[int], int]:
    """Stage fragments ``targets`` of one stream, rebuilt from ``sources``.

    Returns (target indexes staged, fragment bytes written).  A target whose
    drive fails is dropped; too few readable sources raises DriveError.
    """
    k = layout.k
    order = sorted(sources)  # data fragments first: cheapest to read and decode
    failed: set[int] = set()
    wanted = sorted(targets)
    if inline:
        frags: dict[int, bytes] = {}
        candidates = list(order)
        while len(frags) < k:
            if not candidates:
                raise TooFewFragments(f"only {len(frags)} of the {k} inline fragments are readable")
            i = candidates.pop(0)
            try:
                frags[i] = await sources[i].read_fragment(data_id, 0, 1 << 62)
            except DriveError as e:
                log.warning("repair: inline fragment %d of %s unreadable: %s", i, data_id, e)
        rebuilt = codec.reconstruct(frags, wanted)
        staged: set[int] = set()
        for i in wanted:
            try:
                await targets[i].put_inline(data_id, rebuilt[i])
                staged.add(i)
            except DriveError as e:
                log.warning("repair: staging inline %s on %s failed: %s", data_id, targets[i].drive_id, e)
        return staged, sum(len(rebuilt[i]) for i in staged)

    writers: dict[int, FragmentWriter] = {}
    for i in wanted:
        try:
            writers[i] = await targets[i].create_fragment(data_id, i)
        except DriveError as e:
            log.warning("repair: cannot stage %s on %s: %s", data_id, targets[i].drive_id, e)
    if not writers:
        return set(), 0
    written: dict[int, int] = dict.fromkeys(writers, 0)
    try:
        per_batch = max(1, batch_bytes // layout.segment_size)
        seg = 0
        while seg < layout.num_segments:
            end = min(layout.num_segments - 1, seg + per_batch - 1)
            off, length = layout.fragment_range(seg, end)
            frags = await _read_k(sources, order, failed, data_id, off, length, k)
            outs: dict[int, list[bytes]] = {i: [] for i in writers}
            pos = 0
            for s in range(seg, end + 1):
                flen = layout.segment_fragment_size(s)
                pieces = {i: memoryview(b)[pos : pos + flen] for i, b in frags.items()}
                pos += flen
                for i, frag in codec.reconstruct(pieces, list(writers)).items():
                    outs[i].append(frag)
            del frags

            async def put(i: int, w: FragmentWriter, chunk: bytes) -> None:
                try:
                    await w.write(chunk)
                except DriveError as e:
                    log.warning("repair: writing %s on %s failed: %s", data_id, targets[i].drive_id, e)
                    writers.pop(i, None)
                    await w.abort()

            async with trio.open_nursery() as nursery:
                for i, w in list(writers.items()):
                    chunk = b"".join(outs[i])
                    written[i] += len(chunk)
                    nursery.start_soon(put, i, w, chunk)
            if not writers:
                return set(), 0
            seg = end + 1
        staged = set()
        for i, w in list(writers.items()):
            try:
                await w.finish()
                staged.add(i)
            except DriveError as e:
                log.warning("repair: finishing %s on %s failed: %s", data_id, targets[i].drive_id, e)
                await w.abort()
        return staged, sum(written[i] for i in staged)
    except BaseException:
        await _abort_all(writers)
        raise


# ------------------------------------------------------------------ the repairer
class ObjectRepair:
    """Repairs keys over one store's drives (see module doc)."""

    def __init__(self, ctx: StoreContext, *, grace: float = REPAIR_GRACE,
                 batch_bytes: int = BATCH_BYTES) -> None:
        self.ctx = ctx
        self.grace = grace
        self.batch_bytes = batch_bytes
        self._locks: dict[tuple[bytes, bytes], tuple[trio.Lock, int]] = {}
        self._schemes: dict[bytes, tuple[int, int]] = {}
        # Fragments of a version held by spare drives for failed or healing
        # slots (objects/spares.py): asked only when the primaries are short.
        self.spare_sources: Callable[[KeyState, VersionRecord], Awaitable[dict[int, Drive]]] | None = None

    async def quorum_for(self, bucket_id: bytes) -> tuple[int, int]:
        """``(k, W)`` of the bucket's scheme (what the read rule uses for delete markers)."""
        km = self._schemes.get(bucket_id)
        if km is None:
            for b in await self.ctx.buckets.list():
                sch = self.ctx.scheme_for(b)
                self._schemes[b.bucket_id] = (sch.k, sch.m)
            km = self._schemes.get(bucket_id, (self.ctx.scheme.k, self.ctx.scheme.m))
        return km[0], write_quorum(*km)

    async def gather(self, bucket_id: bytes, key: bytes) -> KeyState:
        k, w = await self.quorum_for(bucket_id)
        m = self._schemes.get(bucket_id, (self.ctx.scheme.k, self.ctx.scheme.m))[1]
        return await gather(self.ctx, bucket_id, key, k=k, w=w, m=m)

    async def _lock(self, qk: tuple[bytes, bytes]) -> trio.Lock:
        lock, users = self._locks.get(qk, (trio.Lock(), 0))
        self._locks[qk] = (lock, users + 1)
        await lock.acquire()
        return lock

    def _unlock(self, qk: tuple[bytes, bytes], lock: trio.Lock) -> None:
        lock.release()
        _, users = self._locks[qk]
        if users <= 1:
            del self._locks[qk]
        else:
            self._locks[qk] = (lock, users - 1)

    @asynccontextmanager
    async def locked(self, bucket_id: bytes, key: bytes) -> AsyncIterator[None]:
        """Hold the key's repair lock (a spare rebuild, objects/spares.py)."""
        qk = (bucket_id, key)
        lock = await self._lock(qk)
        try:
            yield
        finally:
            self._unlock(qk, lock)

    async def repair(
        self, bucket_id: bytes, key: bytes, *, only: Collection[int] | None = None,
        deep: bool = False,
    ) -> RepairOutcome:
        """Bring every visible version of ``key`` to full redundancy.

        ``only``: repair onto these drive positions only (a refill).  ``deep``:
        read every block first (finds bad blocks the header check cannot).
        """
        qk = (bucket_id, key)
        lock = await self._lock(qk)
        try:
            return await self._repair(bucket_id, key, only, deep)
        finally:
            self._unlock(qk, lock)

    async def _repair(
        self, bucket_id: bytes, key: bytes, only: Collection[int] | None, deep: bool
    ) -> RepairOutcome:
        out = RepairOutcome(bucket_id, key)
        ks = await self.gather(bucket_id, key)
        now = time.time_ns()
        for r in ks.resolved:
            out.versions += 1
            if record_age(r.record, now) < self.grace:
                out.deferred = True
                continue
            frags = await examine(self.ctx, ks, r, deep=deep, only=only)
            await self._repair_version(ks, r, frags, only, out)
        return out

    async def _repair_version(
        self, ks: KeyState, r: Resolved, frags: Sequence[FragmentState],
        only: Collection[int] | None, out: RepairOutcome,
    ) -> None:
        rec = r.record
        mine = [f for f in frags if only is None or f.position in only]
        for f in mine:
            if f.health == OFFLINE:
                out.unreachable += 1
                out.deferred = True
        targets = [f for f in mine if f.health not in (OK, OFFLINE)]
        if not targets:
            return
        drives = self.ctx.drives
        if rec.dm or REF in rec.extra:  # a record, no data
            for f in targets:
                await self._commit(ks, f, rec, [], out)
            return
        k, m, _ = rec.ec
        codec = self.ctx.codec(k, m)
        staged: dict[int, list[str]] = {f.index: [] for f in targets}
        broken: set[int] = set()
        for data_id, size in streams_of(rec):
            need = {f.index: drives[f.position] for f in targets if data_id in f.bad_streams}
            if not need:
                continue
            sources = {
                f.index: drives[f.position] for f in frags
                if f.record_ok and f.health != OFFLINE and data_id not in f.bad_streams
            }
            if len(sources) < k and self.spare_sources is not None:
                spare = await self.spare_sources(ks, rec)
                sources.update({i: dv for i, dv in spare.items() if i not in sources and i not in need})
            if len(sources) < k:
                unreachable = sum(1 for f in frags if f.health == OFFLINE)
                if len(sources) + unreachable >= k:
                    out.deferred = True  # the fragments needed are on drives that are away
                else:
                    out.lost += 1
                    out.errors.append(f"{data_id}: {len(sources)} healthy fragments, {k} needed")
                broken.update(need)
                continue
            layout = self.ctx.layout(rec.ec, size)
            try:
                done, nbytes = await rebuild_stream(
                    codec, layout, data_id, sources, need, inline=rec.inline,
                    batch_bytes=self.batch_bytes,
                )
            except DriveError as e:
                out.errors.append(f"{data_id}: {e}")
                broken.update(need)
                continue
            out.bytes_rebuilt += nbytes
            for i in need:
                if i in done:
                    staged[i].append(data_id)
                else:
                    broken.add(i)
        for f in targets:
            ids = staged[f.index]
            if f.index in broken and not f.record_ok:
                # A record must not name data this drive does not have.
                if ids:
                    await self._discard(drives[f.position], ids)
                continue
            if ids or not f.record_ok:
                await self._commit(ks, f, rec, ids, out)

    async def _commit(
        self, ks: KeyState, f: FragmentState, rec: VersionRecord, ids: list[str], out: RepairOutcome
    ) -> None:
        d = self.ctx.drives[f.position]
        try:
            await d.commit_version(ks.bucket_id, ks.key, replace(rec, frag_index=f.index), promote=ids)
        except DriveError as e:
            out.errors.append(f"commit on {d.drive_id}: {e}")
            await self._discard(d, ids)
            return
        out.fragments_rebuilt += len(ids)
        if not f.record_ok:
            out.records_restored += 1
        log.info("repaired %s/%r version %s fragment %d on %s (%s)", ks.bucket_id.hex(), ks.key,
                 rec.vid, f.index, d.drive_id, f.health)

    @staticmethod
    async def _discard(d: Drive, ids: list[str]) -> None:
        if not ids:
            return
        try:
            await d.delete_data(ids)
        except DriveError as e:
            log.debug("discarding staged %s on %s: %s", ids, d.drive_id, e)
