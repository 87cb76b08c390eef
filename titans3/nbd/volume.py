"""One attached, writable volume: the write path (docs/nbd.md, "Write path").

Theory of operation
-------------------
A write is applied to the :class:`~titans3.nbd.blockmap.BlockMap` and
acknowledged: nothing touches a disk.  Two things make it durable:

* **the log** -- a FLUSH (or a FUA write) turns everything not yet durable
  into one log segment object, written at the write quorum before the reply
  (:meth:`Volume.flush`).  Concurrent flushes share one segment (group
  commit); a small random write costs one 4 KiB record, not an extent.
* **materializing** -- the cleaner (:meth:`Volume.run`) rewrites extent
  objects from their old content plus the map's blocks, in the background:
  at once for extents written whole (sequential writes never pass through
  the log when no flush comes in between), by density when the map holds too
  much, and everything when the volume is idle.  Then the checkpoint moves
  up (a compare-and-set of the volume record) and dead log segments are
  deleted.

The rule the protocol sets holds by construction: a FLUSH reply waits for
the segment holding every write acknowledged before it; a FUA write's reply
waits for the segment holding it.  Replay at attach (:mod:`titans3.nbd.attach`)
rebuilds the map from the segments above the checkpoint.  Writes wait
(backpressure) while the map holds more than ``memory`` bytes.

The volume stops writing to the cluster once its lease is lost or about to
run out (``fence``): its requests then fail with EIO rather than risk a
second writer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import trio

from titans3.nbd import logformat
from titans3.nbd.backend import BackendError, ObjectBackend
from titans3.nbd.blockmap import BLOCK, BlockMap
from titans3.nbd.catalog import Catalog, Snapshot, VolumeExists, VolumeRecord
from titans3.nbd.extents import ExtentView, ExtentWriter
from titans3.nbd.pieces import allocation, merge_pieces, slice_extent, zeros

log = logging.getLogger(__name__)

IDLE_FOLD = 2.0  # seconds without writes before everything in the map is folded into extents
CHECKPOINT_EVERY = 1.0  # seconds between checkpoint updates while busy
MATERIALIZE_CONCURRENCY = 8
HOT = 1.0  # seconds an extent counts as being written (not folded early under memory pressure)


class VolumeFenced(BackendError):
    """The volume lost (or is about to lose) its writer lease: it writes no more."""


@dataclass(frozen=True, slots=True)
class VolumeStatistics:
    name: str
    size: int
    allocated: int
    reads: int
    writes: int
    flushes: int
    read_bytes: int
    written_bytes: int
    buffered_bytes: int  # data held in memory (not yet in extents)
    pending_records: int  # not yet durable
    log_segments: int
    extents_written: int
    checkpoint: int
    fenced: bool


class Volume:
    def __init__(self, record: VolumeRecord, backend: ObjectBackend, catalog: Catalog, view: ExtentView,
                 *, memory: int, segments: dict[str, tuple[int, str]] | None = None) -> None:
        self.record = record
        self.backend = backend
        self.catalog = catalog
        self.view = view
        # Snapshot cuts that prunes must respect: the record's, and one being
        # added (kept apart: a checkpoint replacing self.record must not drop it).
        self._new_cuts: set[str] = set()
        self.writer = ExtentWriter(view, lambda: [s.vid for s in self.record.snapshots] + list(self._new_cuts))
        self.map = BlockMap(record.size, record.extent_size)
        self.memory = memory
        self.volume_id = bytes.fromhex(record.id)
        self.segments: dict[str, tuple[int, str]] = dict(segments or {})  # log key -> (last LSN, version)
        self.counter = 0
        self.fenced: str | None = None  # the lease went to another host: writes stop for good
        self.fence_check: Callable[[], str | None] = lambda: None  # the lease is about to run out
        self._flush_lock = trio.Lock()
        self._durable = 0  # every LSN at or below is durable
        self._extent_locks: dict[int, trio.Lock] = {}
        self._room = trio.Condition()
        self._wake = trio.Event()
        self._cut: int | None = None  # a snapshot in progress: materialize nothing newer
        self._last_write = time.monotonic()
        self._last_checkpoint = 0.0
        self._rmw = trio.Lock()
        self._checkpoint_lock = trio.Lock()
        self._prefetching: set[int] = set()
        self._hot: dict[int, float] = {}  # extent -> when it was last written (sequential writers)
        self._nursery: trio.Nursery | None = None
        self.stats = {"reads": 0, "writes": 0, "flushes": 0, "read_bytes": 0, "written_bytes": 0,
                      "extents": 0}

    # ------------------------------------------------------------ LSNs
    @property
    def lsn(self) -> int:
        """The newest LSN: every operation at or below it is in the map."""
        return logformat.lsn_of(self.record.epoch, self.counter)

    def _next(self) -> int:
        self.counter += 1
        return self.lsn

    @property
    def size(self) -> int:
        return self.record.size

    def _guard(self) -> None:
        """Refuse to write to the cluster without a lease that has time left."""
        reason = self.fenced or self.fence_check()
        if reason is not None:
            raise VolumeFenced(reason)

    # ------------------------------------------------------------ writes
    async def _wait_room(self) -> None:
        while self.map.data_bytes >= self.memory:
            self._wake.set()
            async with self._room:
                await self._room.wait()
            self._guard()

    def _touched(self, first_block: int, last_block: int) -> None:
        now = self._last_write = time.monotonic()
        bpe = self.map.bpe
        for ext in range(first_block // bpe, last_block // bpe + 1):
            self._hot[ext] = now
            if self.map.per_extent.get(ext, 0) >= self.map.blocks_in(ext):
                self._wake.set()

    async def write(self, offset: int, data: bytes | memoryview, *, fua: bool = False) -> None:
        self._guard()
        await self._wait_room()
        n = len(data)
        view = memoryview(data)
        first, end = offset // BLOCK, -(-(offset + n) // BLOCK)
        head, tail = offset % BLOCK, (offset + n) % BLOCK
        if head or tail:
            await self._write_unaligned(offset, view)
        else:
            self.map.put_run(first, self._next(), view if isinstance(data, bytes) else memoryview(bytes(data)))
        self.stats["writes"] += 1
        self.stats["written_bytes"] += n
        self._touched(first, end - 1)
        if fua:
            await self.flush()

    async def _write_unaligned(self, offset: int, view: memoryview) -> None:
        """Partial blocks: read, merge, put -- again if a write raced the read."""
        async with self._rmw:
            first, end = offset // BLOCK, -(-(offset + len(view)) // BLOCK)
            while True:
                edges = {first, end - 1}
                before = {b: self.map.blocks.get(b) for b in edges}
                old = {b: await self._read_block(b) for b in edges}
                if all(self.map.blocks.get(b) is before[b] for b in edges):
                    break
            lsn = self._next()
            for b in range(first, end):
                lo, hi = max(offset, b * BLOCK), min(offset + len(view), (b + 1) * BLOCK)
                if lo == b * BLOCK and hi == (b + 1) * BLOCK:
                    self.map.put(b, lsn, bytes(view[lo - offset : hi - offset]))
                    continue
                buf = bytearray(old[b])
                buf[lo - b * BLOCK : hi - b * BLOCK] = view[lo - offset : hi - offset]
                self.map.put(b, lsn, bytes(buf))

    async def zero(self, offset: int, length: int, *, fua: bool = False, trim: bool = False) -> None:
        """WRITE_ZEROES (``trim=False``) or TRIM: whole extents become one map
        entry each; partial blocks are zeroed by read-merge-write (TRIM skips them)."""
        self._guard()
        end = offset + length
        first, last = -(-offset // BLOCK), end // BLOCK  # whole blocks [first, last)
        if not trim:
            for lo, hi in ((offset, min(end, first * BLOCK)), (max(offset, last * BLOCK), end)):
                if lo < hi:
                    await self._write_unaligned(lo, memoryview(bytes(hi - lo)))
        if first < last:
            lsn = self._next()
            bpe = self.map.bpe
            b = first
            while b < last:
                ext = b // bpe
                if not self.map.touched(ext) and not self.view.allocated(ext):
                    b = (ext + 1) * bpe  # reads as zeroes already
                elif b % bpe == 0 and last - b >= self.map.blocks_in(ext):
                    self.map.zero_extent(ext, lsn)
                    b += bpe
                else:
                    self.map.put(b, lsn, None)
                    b += 1
            self._wake.set()
        self.stats["writes"] += 1
        self._last_write = time.monotonic()
        if fua:
            await self.flush()

    # ------------------------------------------------------------ flush
    async def flush(self) -> None:
        """Every write acknowledged so far is durable at the write quorum when this returns."""
        target = self.lsn
        self.stats["flushes"] += 1
        async with self._flush_lock:
            if self._durable >= target or not self.map.pending_count:
                self._durable = max(self._durable, target)
                return
            self._guard()
            through = self.lsn
            # Extents written whole go to their objects, not the log: written
            # once instead of twice (sequential writers, nbdcopy --flush).
            full = self.map.full_extents()
            if full:
                await self._materialize_all(full)
            if not self.map.pending_count:
                self._durable = through
                return
            records = self.map.pending_records()
            snap = self.map.snapshot_pending()
            first, last = records[0].lsn, max(r.lsn for r in records)
            key = f"{logformat.segment_key(self.record.prefix, first)}-{last:016x}"
            vid = await self.backend.put(key, logformat.encode(self.volume_id, records))
            self.segments[key] = (last, vid)
            self.map.logged(*snap, last)
            self._durable = through

    # ------------------------------------------------------------ reads
    async def _read_block(self, block: int) -> bytes:
        got = self.map.lookup(block)
        if got is None:
            return bytes(BLOCK)
        if got is not False:
            return bytes(got)
        ext = self.map.extent_of(block)
        base = await self.view.read(ext)
        lo = (block - ext * self.map.bpe) * BLOCK
        piece = base[lo : lo + BLOCK] if base is not None else b""
        return piece + bytes(BLOCK - len(piece))

    async def read(self, offset: int, length: int) -> list[bytes | memoryview | int]:
        """The bytes at ``offset``: data pieces, and ints for runs of zeroes."""
        self.stats["reads"] += 1
        self.stats["read_bytes"] += length
        out: list[bytes | memoryview | int] = []
        es = self.record.extent_size
        pos, end = offset, offset + length
        while pos < end:
            ext = pos // es
            hi = min(end, (ext + 1) * es)
            out += await self._read_extent(ext, pos - ext * es, hi - ext * es)
            pos = hi
        self._readahead(offset, length)
        return merge_pieces(out)

    async def _read_extent(self, ext: int, lo: int, hi: int) -> list[bytes | memoryview | int]:
        base = await self.view.read(ext) if self.view.allocated(ext) else None
        return self._pieces(ext, lo, hi, base)

    def _pieces(self, ext: int, lo: int, hi: int, base: bytes | None) -> list[bytes | memoryview | int]:
        """Bytes [lo, hi) of extent ``ext``: the map's blocks over ``base``, the object's content."""
        if not self.map.touched(ext):
            return slice_extent(base, lo, hi)
        out: list[bytes | memoryview | int] = []
        first = ext * self.map.bpe
        b = lo // BLOCK
        pos = lo
        while pos < hi:
            bhi = min(hi, (b + 1) * BLOCK)
            got = self.map.lookup(first + b)
            if got is None:
                out.append(bhi - pos)
            elif got is False:
                out += slice_extent(base, pos, bhi)
            else:
                out.append(memoryview(got)[pos - b * BLOCK : bhi - b * BLOCK])
            pos = bhi
            b += 1
        return out

    def read_now(self, offset: int, length: int) -> list[bytes | memoryview | int] | None:
        """:meth:`read` without waiting: None unless every extent it needs is cached."""
        es = self.record.extent_size
        first, last = offset // es, (offset + length - 1) // es
        bases = []
        for ext in range(first, last + 1):
            if not self.view.allocated(ext):
                bases.append(None)
                continue
            base = self.view.cached_bytes(ext)
            if base is None:
                return None
            bases.append(base)
        self.stats["reads"] += 1
        self.stats["read_bytes"] += length
        out: list[bytes | memoryview | int] = []
        for i, ext in enumerate(range(first, last + 1)):
            lo, hi = max(offset, ext * es), min(offset + length, (ext + 1) * es)
            out += self._pieces(ext, lo - ext * es, hi - ext * es, bases[i])
        self._readahead(offset, length)
        return merge_pieces(out)

    def write_now(self, offset: int, data: bytes | memoryview) -> bool:
        """:meth:`write` (not FUA) without waiting: False when it would have to
        wait (room in memory, a partial block to read, the lease to check)."""
        n = len(data)
        if offset % BLOCK or n % BLOCK or self.map.data_bytes + n > self.memory or not isinstance(data, bytes):
            return False
        if self.fenced or self.fence_check():
            return False
        first = offset // BLOCK
        self.map.put_run(first, self._next(), memoryview(data))
        self.stats["writes"] += 1
        self.stats["written_bytes"] += n
        self._touched(first, first + n // BLOCK - 1)
        return True

    def _readahead(self, offset: int, length: int) -> None:
        """A read ending in the last quarter of an extent fetches the next two."""
        es = self.record.extent_size
        end = offset + length
        if self._nursery is None or end % es < es * 3 // 4 or length < 64 << 10:
            return
        for ext in (end // es + 1, end // es + 2):
            if ext * es < self.size and ext not in self._prefetching and not self.view.cached(ext):
                self._prefetching.add(ext)
                self._nursery.start_soon(self._prefetch, ext)

    async def _prefetch(self, ext: int) -> None:
        try:
            await self.view.read(ext)
        except Exception as e:  # noqa: BLE001 -- a prefetch is a hint; the real read reports errors
            log.debug("prefetch of extent %d failed: %s", ext, e)
        finally:
            self._prefetching.discard(ext)

    async def prefetch(self, offset: int, length: int) -> None:
        """NBD_CMD_CACHE: bring the extents of a range into the cache."""
        es = self.record.extent_size
        for ext in range(offset // es, -(-(offset + length) // es)):
            await self.view.read(ext)

    def block_status(self, offset: int, length: int) -> list[tuple[int, int]]:
        """``base:allocation`` extents from ``offset`` (whole extents: at least ``length``)."""
        return allocation(self.size, self.record.extent_size, offset, length,
                          lambda ext: not self.map.touched(ext) and not self.view.allocated(ext))

    # ------------------------------------------------------------ materializing
    def _lock(self, ext: int) -> trio.Lock:
        lock = self._extent_locks.get(ext)
        if lock is None:
            lock = self._extent_locks[ext] = trio.Lock()
        return lock

    async def materialize(self, ext: int) -> None:
        """Rewrite extent ``ext``'s object to hold every write up to now (or the snapshot cut)."""
        async with self._lock(ext):
            if not self.map.touched(ext):
                return
            self._guard()
            upto = self.lsn if self._cut is None else min(self.lsn, self._cut)
            image = self.map.snapshot_extent(ext, upto)
            if not image.blocks and not image.zeroed:
                return
            length = min(self.record.extent_size, self.size - ext * self.record.extent_size)
            if image.zeroed and not image.blocks:
                await self.writer.zero(ext)
            elif image.full and len(image.blocks) * BLOCK == length:
                # A full image lists its blocks in order (snapshot_extent): join them as they are.
                parts = list(image.blocks.values())
                if None in parts:
                    zero = zeros(BLOCK)
                    parts = [p if p is not None else zero for p in parts]
                data = b"".join(parts)
                if data == zeros(length):
                    await self.writer.zero(ext)
                else:
                    await self.writer.write(ext, data)
            else:
                buf = bytearray(length)
                if not image.full:
                    base = await self.view.read(ext)
                    if base:
                        buf[: min(len(base), length)] = base[:length]
                for i, data in image.blocks.items():
                    buf[i * BLOCK : (i + 1) * BLOCK] = data if data is not None else bytes(BLOCK)
                if buf == zeros(length):  # all zeroes: no object at all
                    await self.writer.zero(ext)
                else:
                    await self.writer.write(ext, bytes(buf))
            self.map.complete_extent(image)
            self.stats["extents"] += 1
        async with self._room:
            self._room.notify_all()

    async def _materialize_all(self, extents: list[int]) -> None:
        limiter = trio.CapacityLimiter(MATERIALIZE_CONCURRENCY)

        async def one(ext: int) -> None:
            async with limiter:
                await self.materialize(ext)

        try:
            async with trio.open_nursery() as nursery:
                for ext in extents:
                    nursery.start_soon(one, ext)
        except BaseExceptionGroup as group:
            raise backend_error_of(group) from None

    async def fold(self, *, until_empty: bool = False) -> None:
        """Materialize every extent the map touches (idle, snapshots; until the
        map is empty on detach, when no writes come any more)."""
        for _ in range(1 if self._cut is not None else 1_000_000 if until_empty else 3):
            idle = [x for x in self.map.by_density() if not self._lock(x).locked()]
            touched = idle or list(self.map.touched_extents())
            if not touched:
                return
            await self._materialize_all(touched)

    async def checkpoint(self, *, force: bool = False) -> None:
        """Move the volume's checkpoint up and delete the log segments below it."""
        now = time.monotonic()
        if not force and now - self._last_checkpoint < CHECKPOINT_EVERY:
            return
        async with self._checkpoint_lock:
            self._last_checkpoint = now
            ckpt = self.map.checkpoint()
            if ckpt > self.record.checkpoint:
                self._guard()
                sealed = {e: s for e, s in self.record.sealed.items() if s > ckpt}
                mine = self.record.id
                self._adopt(await self.catalog.update(
                    self.record.name,
                    lambda r: replace(r, checkpoint=max(r.checkpoint, ckpt), sealed=sealed) if r.id == mine
                    else None))
            for key in [k for k, (last, _) in self.segments.items() if last <= self.record.checkpoint]:
                self._guard()
                # A segment has one version: deleting it removes the key, leaving no marker.
                await self.backend.delete(key, version=self.segments[key][1])
                self.segments.pop(key, None)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The cleaner: materializes in the background and keeps the log short."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            while True:
                with trio.move_on_after(0.5):
                    await self._wake.wait()
                self._wake = trio.Event()
                if self.fenced is not None:
                    continue
                try:
                    await self._clean_once()
                except BackendError as e:
                    log.warning("volume %s: background write failed (will retry): %s", self.record.name, e)
                    await trio.sleep(1)
                except Exception:  # a bug here must not take the daemon down; the log keeps the data
                    log.exception("volume %s: cleaner failed (will retry)", self.record.name)
                    await trio.sleep(1)

    async def _clean_once(self) -> None:
        full = self.map.full_extents() + [x for x in self.map.zeroed if not self.map.per_extent.get(x)]
        if full:
            await self._materialize_all(full)
        now = time.monotonic()
        self._hot = {x: t for x, t in self._hot.items() if now - t < HOT}
        if self.map.data_bytes > self.memory * 3 // 4:
            # Too much in memory: fold partly written extents, densest first --
            # but not ones being written right now (a sequential writer will
            # fill them: folding them early would rewrite them twice), unless
            # writers are already waiting for room.
            want = self.memory // 2
            blocked = self.map.data_bytes >= self.memory
            order = [x for x in self.map.by_density() if blocked or x not in self._hot]
            while self.map.data_bytes > want and order:
                batch, order = order[:MATERIALIZE_CONCURRENCY * 2], order[MATERIALIZE_CONCURRENCY * 2:]
                await self._materialize_all(batch)
        if now - self._last_write > IDLE_FOLD and self.map.entries + len(self.map.zeroed):
            await self.fold()
        await self.checkpoint()

    async def close(self) -> None:
        """Detach cleanly: everything into extents, the log emptied."""
        if self.fenced is not None:
            return
        await self.flush()
        await self.fold(until_empty=True)
        await self.flush()  # the markers of the fold
        await self.checkpoint(force=True)

    # ------------------------------------------------------------ snapshots
    async def snapshot(self, name: str) -> VolumeRecord:
        """A snapshot holding every write acknowledged before this call.

        The map keeps, while the snapshot is taken, the entries at or below
        the cut that later writes replace (``BlockMap.begin_cut``); every
        extent touched at the cut is materialized at the cut; then a version
        id newer than all of those objects becomes the snapshot.  Writes go
        on meanwhile, and none of them is in the snapshot."""
        if self._cut is not None:
            raise VolumeExists(f"volume {self.record.name}: a snapshot is being taken already")
        self._cut = self.lsn
        self.map.begin_cut(self._cut)
        try:
            await self._materialize_all(sorted(self.map.touched_extents()))
            cut = self.backend.new_version_id()
            snap = Snapshot(name, cut, time.time_ns())
            self._new_cuts.add(cut)  # prunes see it from now on

            def add(r: VolumeRecord) -> VolumeRecord:
                if any(s.name == name for s in r.snapshots):
                    raise VolumeExists(f"volume {r.name} already has a snapshot {name!r}")
                return replace(r, snapshots=(*r.snapshots, snap))

            try:
                self._adopt(await self.catalog.update(self.record.name, add))
            finally:
                self._new_cuts.discard(cut)
            return self.record
        finally:
            self._cut = None
            self.map.end_cut()
            self._wake.set()

    def _adopt(self, record: VolumeRecord) -> None:
        """Take a record the catalogue returned -- unless a newer one is here
        already (two updates racing: the older answer must not win)."""
        if record.vid > self.record.vid:
            self.record = record

    def resize(self, record: VolumeRecord) -> None:
        self.record = replace(self.record, size=record.size, vid=record.vid)
        self.map.resize(record.size)

    def statistics(self) -> VolumeStatistics:
        s = self.stats
        return VolumeStatistics(
            self.record.name, self.size, self.view.own_allocated(), s["reads"], s["writes"], s["flushes"],
            s["read_bytes"], s["written_bytes"], self.map.data_bytes, self.map.pending_count,
            len(self.segments), s["extents"], self.record.checkpoint, self.fenced is not None)


def backend_error_of(group: BaseExceptionGroup) -> BaseException:
    """What a nursery of extent writes raises: its first :class:`BackendError`
    when every failure is one (callers handle that type: EIO, a retry, a
    detach that waits), else the group itself (a bug, or a cancellation)."""
    backend, rest = group.split(BackendError)
    if rest is not None or backend is None:
        return group
    leaf: BaseException = backend
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    return leaf
