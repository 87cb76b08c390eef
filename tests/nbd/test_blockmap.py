"""The block map's durability rule against a model of the log and the extent objects.

A random mix of writes, zeroings, flushes (segments made durable),
materializations (extent objects rewritten), checkpoints (segments at or
below it deleted) and crashes (rebuild from the surviving segments, as
attach does).  After every crash, every block must read back its last
flushed value or a value written after it -- never an older one.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from titans3.nbd.blockmap import BLOCK, BlockMap
from titans3.nbd.logformat import Kind, Record

BPE = 4
EXTENTS = 3
SIZE = BPE * EXTENTS * BLOCK


def block_value(tag: int) -> bytes:
    return tag.to_bytes(4, "big") * (BLOCK // 4)


class Sim:
    """The world outside the map: extent objects, durable segments, what was flushed."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.map = BlockMap(SIZE, BPE * BLOCK)
        self.objects: dict[int, dict[int, bytes | None]] = {}  # extent -> block -> data
        self.segments: list[list[Record]] = []
        self.checkpoint = 0
        self.lsn = 0
        self.history: dict[int, list[tuple[int, bytes | None]]] = {}  # block -> [(lsn, value)]
        self.flushed: dict[int, int] = {}  # block -> lsn of the last value covered by a flush
        self.flights: list[tuple] = []

    def next_lsn(self) -> int:
        self.lsn += 1
        return self.lsn

    def write(self, block: int, tag: int) -> None:
        lsn = self.next_lsn()
        data = None if tag == 0 else block_value(tag)
        self.map.put(block, lsn, data)
        self.history.setdefault(block, []).append((lsn, data))

    def write_run(self, first: int, n: int, tag: int) -> None:
        """One aligned multi-block write (``put_run``, as the volume does)."""
        n = min(n, BPE * EXTENTS - first)
        lsn = self.next_lsn()
        values = [block_value(tag * 100 + i) for i in range(n)]
        self.map.put_run(first, lsn, memoryview(b"".join(values)))
        for i, v in enumerate(values):
            self.history.setdefault(first + i, []).append((lsn, v))

    def zero_extent(self, ext: int) -> None:
        lsn = self.next_lsn()
        self.map.zero_extent(ext, lsn)
        for b in range(ext * BPE, ext * BPE + BPE):
            self.history.setdefault(b, []).append((lsn, None))

    # A flush and a materialization each start, then finish later: other
    # operations (and crashes) happen while their object PUT is in flight.
    def flush_begin(self) -> None:
        recs = self.map.pending_records()
        covered = {b: h[-1][0] for b, h in self.history.items()}
        self.flights.append(("flush", recs, self.map.snapshot_pending(), covered))

    def materialize_begin(self, ext: int) -> None:
        # The volume runs one materialization of an extent at a time (a later
        # image landing first would be overwritten by the older one).
        if any(f[0] == "extent" and f[1].extent == ext for f in self.flights):
            return
        # Everything so far -- or, while a snapshot is being taken, up to its cut.
        upto = self.lsn if self.map.cut is None else self.map.cut
        self.flights.append(("extent", self.map.snapshot_extent(ext, upto)))

    def snapshot_begin(self) -> None:
        if self.map.cut is None:
            self.map.begin_cut(self.lsn)
            self.snapped: set[int] = set()

    def snapshot_end(self) -> None:
        """The extents materialized at the cut hold exactly the state at the cut."""
        cut = self.map.cut
        if cut is None:
            return
        for ext in self.snapped:
            for b in range(ext * BPE, ext * BPE + BPE):
                before = [v for lsn, v in self.history.get(b, []) if lsn <= cut]
                if before:
                    assert self.objects.get(ext, {}).get(b) == before[-1], ("snapshot", b, cut)
        self.map.end_cut()

    def finish(self, i: int) -> None:
        flight = self.flights.pop(i)
        if flight[0] == "flush":
            _, recs, snap, covered = flight
            if recs:
                self.segments.append(recs)
                self.map.logged(*snap, max(r.lsn for r in recs))
            for b, lsn in covered.items():
                self.flushed[b] = max(self.flushed.get(b, 0), lsn)
        else:
            image = flight[1]
            ext = image.extent
            base = {} if image.zeroed else dict(self.objects.get(ext, {}))
            for i, data in image.blocks.items():
                base[ext * BPE + i] = data
            self.objects[ext] = base
            self.map.complete_extent(image)
            if self.map.cut is not None and image.lsn == self.map.cut:
                self.snapped.add(ext)
            elif self.map.cut is not None:
                self.snapped.discard(ext)

    def save_checkpoint(self) -> None:
        self.checkpoint = max(self.checkpoint, self.map.checkpoint())
        self.segments = [s for s in self.segments if max(r.lsn for r in s) > self.checkpoint]

    def crash(self) -> None:
        self.flights.clear()  # in flight: never landed
        self.map.cut = None  # the snapshot failed with the process
        fresh = BlockMap(SIZE, BPE * BLOCK)
        fresh.replay([r for s in self.segments for r in s if r.lsn > self.checkpoint])
        self.map = fresh
        # What a reader sees now, block by block, must be flushed-or-newer.
        for b, h in self.history.items():
            got = fresh.lookup(b)
            if got is False:
                got = self.objects.get(b // BPE, {}).get(b, None)
            allowed = [v for lsn, v in h if lsn >= self.flushed.get(b, 0)]
            if b not in self.flushed:
                allowed.append(None)  # never flushed: the old (zero) content is fine too
            assert got in allowed, (b, got, h, self.flushed.get(b))
            # The surviving value becomes the new truth.
            self.history[b] = [(0, got)]
            self.flushed[b] = 0


@settings(max_examples=1500, deadline=None)
@given(st.integers(0, 2**32))
def test_replay_gives_every_block_its_last_flushed_value_or_newer(seed):
    rng = random.Random(seed)
    sim = Sim(rng)
    for _ in range(rng.randrange(5, 80)):
        op = rng.random()
        if op < 0.35:
            sim.write(rng.randrange(BPE * EXTENTS), rng.randrange(3))
        elif op < 0.45:
            sim.write_run(rng.randrange(BPE * EXTENTS), rng.randrange(1, 2 * BPE + 1), rng.randrange(1, 3))
        elif op < 0.5:
            sim.zero_extent(rng.randrange(EXTENTS))
        elif op < 0.6:
            sim.flush_begin()
        elif op < 0.7:
            sim.materialize_begin(rng.randrange(EXTENTS))
        elif op < 0.85 and sim.flights:
            sim.finish(rng.randrange(len(sim.flights)))
        elif op < 0.88:
            sim.save_checkpoint()
        elif op < 0.9:
            sim.snapshot_begin()
        elif op < 0.92:
            sim.snapshot_end()
        else:
            sim.crash()
    while sim.flights:
        sim.finish(0)
    sim.snapshot_end()
    sim.crash()


def test_pending_records_merge_runs_of_one_write():
    m = BlockMap(SIZE, BPE * BLOCK)
    m.put(0, 5, b"a" * BLOCK)
    m.put(1, 5, b"b" * BLOCK)
    m.put(2, 6, None)
    m.zero_extent(2, 7)
    recs = m.pending_records()
    assert [(r.lsn, r.kind, r.offset, r.length) for r in recs] == [
        (5, Kind.WRITE, 0, 2 * BLOCK), (6, Kind.ZERO, 2 * BLOCK, BLOCK), (7, Kind.ZERO, 8 * BLOCK, 4 * BLOCK)]
    assert recs[0].data == b"a" * BLOCK + b"b" * BLOCK


def test_a_flushed_write_overwritten_but_not_flushed_holds_the_checkpoint():
    m = BlockMap(SIZE, BPE * BLOCK)
    m.put(0, 1, b"x" * BLOCK)
    snap = m.snapshot_pending()
    m.logged(*snap, 1)
    assert m.checkpoint() == 0
    m.put(0, 2, b"y" * BLOCK)  # pending: the logged record (lsn 1) is still the durable value
    assert m.checkpoint() == 0
    snap = m.snapshot_pending()
    m.logged(*snap, 2)
    assert m.checkpoint() == 1


def _state(m: BlockMap) -> tuple:
    return ({b: (e.lsn, None if e.data is None else bytes(e.data), e.logged) for b, e in m.blocks.items()},
            list(m.pending), m.per_extent, m.data_bytes, m.shadow, {b: e.lsn for b, e in m.precut.items()})


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, BPE * EXTENTS - 1), st.integers(1, 2 * BPE), st.booleans(),
                          st.booleans()), max_size=12))
def test_a_run_write_leaves_the_map_as_block_by_block_writes_would(ops):
    """``put_run`` (its bulk path for new blocks, its loop over old ones) ==
    ``put`` of each block: entries, pending order, counts, shadows, a cut's keep."""
    bulk, single = BlockMap(SIZE, BPE * BLOCK), BlockMap(SIZE, BPE * BLOCK)
    for lsn, (first, n, flush, cut) in enumerate(ops, 1):
        n = min(n, BPE * EXTENTS - first)
        data = b"".join(block_value(lsn * 100 + i) for i in range(n))
        bulk.put_run(first, lsn, memoryview(data))
        for i in range(n):
            single.put(first + i, lsn, data[i * BLOCK : (i + 1) * BLOCK])
        for m in (bulk, single):
            if flush:
                m.logged(*m.snapshot_pending(), lsn)
            if cut and m.cut is None:
                m.begin_cut(lsn)
        assert _state(bulk) == _state(single)


def test_an_extent_image_lists_its_blocks_in_block_order_whatever_order_they_were_written():
    """Materializing a full extent joins ``image.blocks.values()`` as they are."""
    m = BlockMap(SIZE, BPE * BLOCK)
    for i in reversed(range(BPE)):
        m.put(BPE + i, 10 - i, None if i == 1 else block_value(i + 1))
    image = m.snapshot_extent(1, 100)
    assert image.full and list(image.blocks) == list(range(BPE))
    assert list(image.blocks.values()) == [block_value(1), None, block_value(3), block_value(4)]
