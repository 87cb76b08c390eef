"""A volume's in-memory index of written blocks: pure, no I/O.

Theory of operation
-------------------
Writes land here first, in 4 KiB blocks, each an :class:`Entry` with the
write's LSN, its data (``None`` for zeroes) and whether a durable log segment
holds it (*logged*) or not yet (*pending*).  A whole extent zeroed at once
(TRIM, WRITE_ZEROES, or replay of one) is one ``zeroed`` entry, not a
thousand.  Reads look here before the extent objects: a block entry newer
than its extent's ``zeroed`` entry wins, then ``zeroed``, then the object.

Entries leave the map when their extent is *materialized*: the extent object
is rewritten (or deleted) from its old content plus every entry up to the
materialization's LSN ``X`` (:meth:`snapshot_extent`, then
:meth:`complete_extent` once the object is durable).  An ``EXTENT`` marker at
``X`` then goes into the next log segment, so replay knows the object already
holds everything up to ``X``.  One materialization per extent runs at a time
(an older image landing after a newer one would undo it).

**The checkpoint.**  Log segments are deleted once every record in them is
dead; replay applies only records above the volume's checkpoint.  A record
is alive while it is the newest *durable* value of its block: a logged entry,
a logged ``zeroed`` entry, or a *shadow* -- a logged record whose block has
been overwritten by something not yet durable (a pending write, a pending
zeroing).  Dropping a shadow earlier would lose a flushed write if the daemon
died before the newer one was flushed.  :meth:`checkpoint` is therefore one
below the oldest live LSN, or the newest LSN ever logged when nothing is
alive.  A shadow dies when the block's newer value is logged or
materialized.

Invariant (tested against a model): after any sequence of writes, flushes
and materializations, replaying the log records above the checkpoint over
the extent objects gives, for every block, its last flushed value or a newer
one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from titans3.nbd.logformat import Kind, Record

BLOCK = 4096


@dataclass(slots=True)
class Entry:
    lsn: int
    data: bytes | memoryview | None  # None: the block reads as zeroes
    logged: bool = False


@dataclass(frozen=True, slots=True)
class ExtentImage:
    """What a materialization of one extent writes: taken at LSN ``lsn``."""

    extent: int
    lsn: int
    zeroed: bool  # the old object's content does not count (a zeroing precedes the blocks)
    blocks: dict[int, bytes | memoryview | None]  # block index within the extent -> data (None: zeroes), in order
    full: bool  # every block of the extent is in ``blocks``: the old content is not needed


class BlockMap:
    def __init__(self, size: int, extent_size: int) -> None:
        self.size = size
        self.extent_size = extent_size
        self.bpe = extent_size // BLOCK  # blocks per extent
        self.blocks: dict[int, Entry] = {}
        self.zeroed: dict[int, Entry] = {}  # extent -> entry (data None)
        self.shadow: dict[int, int] = {}  # block -> LSN of a logged record still needed
        self.zshadow: dict[int, int] = {}  # extent -> LSN of a logged zeroing still needed
        self.pending: dict[int, None] = {}  # blocks whose entry is not logged (ordered set)
        self.pending_zeroed: dict[int, None] = {}
        self.markers: dict[int, int] = {}  # extent -> LSN of a completed materialization not yet logged
        self.per_extent: dict[int, int] = {}  # extent -> number of block entries
        self.data_bytes = 0
        self.logged_lsn = 0  # the newest LSN a durable segment holds
        # A snapshot in progress: its cut, and the entries at or below it that
        # writes after the cut replaced (the snapshot's images still need them).
        self.cut: int | None = None
        self.precut: dict[int, Entry] = {}
        self.precut_zeroed: dict[int, Entry] = {}

    # ------------------------------------------------------------ geometry
    def extent_of(self, block: int) -> int:
        return block // self.bpe

    def blocks_in(self, extent: int) -> int:
        """Blocks of ``extent`` (the last extent may be short)."""
        start = extent * self.extent_size
        return max(0, min(self.extent_size, self.size - start)) // BLOCK

    def resize(self, size: int) -> None:
        self.size = size

    # ------------------------------------------------------------ writes
    def _supersede(self, block: int, old: Entry | None) -> None:
        if old is None:
            return
        if self.cut is not None and old.lsn <= self.cut and block not in self.precut:
            self.precut[block] = old
            if old.data is not None:
                self.data_bytes += len(old.data)  # still held, now by the snapshot
        if old.logged:
            self.shadow[block] = min(self.shadow.get(block, old.lsn), old.lsn)
        if old.data is not None:
            self.data_bytes -= len(old.data)

    def put(self, block: int, lsn: int, data: bytes | memoryview | None, *, logged: bool = False) -> None:
        """Block ``block`` now holds ``data`` (None: zeroes) as of ``lsn``."""
        old = self.blocks.get(block)
        self._supersede(block, old)
        if old is None:
            e = self.extent_of(block)
            self.per_extent[e] = self.per_extent.get(e, 0) + 1
        self.blocks[block] = Entry(lsn, data, logged)
        if data is not None:
            self.data_bytes += len(data)
        if logged:
            self.pending.pop(block, None)
        else:
            self.pending[block] = None

    def put_run(self, first: int, lsn: int, data: memoryview) -> None:
        """Blocks ``first..`` hold consecutive 4 KiB pieces of ``data`` as of
        ``lsn`` (pending): :meth:`put` for a whole aligned write, in one loop.
        The pieces are views of ``data``, which must not change."""
        blocks, pending, per_extent, bpe = self.blocks, self.pending, self.per_extent, self.bpe
        n = len(data) // BLOCK
        run = range(first, first + n)
        if blocks.keys().isdisjoint(run):
            # Nothing to supersede (a sequential writer's new blocks): the same
            # entries, made in bulk -- this loop was a fifth of the gateway's
            # CPU on sequential writes.
            blocks.update(zip(run, [Entry(lsn, data[o : o + BLOCK]) for o in range(0, n * BLOCK, BLOCK)],
                              strict=True))
            pending.update(dict.fromkeys(run))
            for e in range(first // bpe, (first + n - 1) // bpe + 1) if n else ():
                per_extent[e] = per_extent.get(e, 0) + min(first + n, (e + 1) * bpe) - max(first, e * bpe)
            self.data_bytes += n * BLOCK
            return
        for i in range(n):
            b = first + i
            old = blocks.get(b)
            if old is None:
                e = b // bpe
                per_extent[e] = per_extent.get(e, 0) + 1
            else:
                self._supersede(b, old)
            blocks[b] = Entry(lsn, data[i * BLOCK : (i + 1) * BLOCK])
            pending[b] = None
        self.data_bytes += len(data) - len(data) % BLOCK

    def zero_extent(self, extent: int, lsn: int, *, logged: bool = False) -> None:
        """All of ``extent`` reads as zeroes as of ``lsn``: its block entries go."""
        first = extent * self.bpe
        if self.per_extent.get(extent):
            for b in range(first, first + self.bpe):
                old = self.blocks.pop(b, None)
                if old is not None:
                    self._supersede(b, old)
                    self.pending.pop(b, None)
            self.per_extent.pop(extent, None)
        old = self.zeroed.get(extent)
        if old is not None and self.cut is not None and old.lsn <= self.cut:
            self.precut_zeroed.setdefault(extent, old)
        if old is not None and old.logged:
            self.zshadow[extent] = min(self.zshadow.get(extent, old.lsn), old.lsn)
        self.zeroed[extent] = Entry(lsn, None, logged)
        if logged:
            self.pending_zeroed.pop(extent, None)
        else:
            self.pending_zeroed[extent] = None

    # ------------------------------------------------------------ reads
    def lookup(self, block: int) -> bytes | memoryview | None | bool:
        """``bytes``: the block's data; ``None``: zeroes; ``False``: ask the extent object."""
        e = self.blocks.get(block)
        z = self.zeroed.get(self.extent_of(block))
        if e is not None and (z is None or e.lsn > z.lsn):
            return e.data
        if z is not None:
            return None
        return False

    def touched(self, extent: int) -> bool:
        return bool(self.per_extent.get(extent)) or extent in self.zeroed

    # ------------------------------------------------------------ flushing
    def pending_records(self) -> list[Record]:
        """Log records for everything not yet durable, in LSN order, runs merged."""
        items: list[tuple[int, int, Kind, int, bytes | memoryview | None]] = []  # lsn, block, kind, n, data
        for b in self.pending:
            e = self.blocks[b]
            items.append((e.lsn, b, Kind.ZERO if e.data is None else Kind.WRITE, 1, e.data))
        for ext in self.pending_zeroed:
            z = self.zeroed[ext]
            items.append((z.lsn, ext * self.bpe, Kind.ZERO, self.blocks_in(ext), None))
        items.sort(key=lambda t: (t[0], t[1]))
        records: list[Record] = []
        run: list[tuple[int, int, Kind, int, bytes | memoryview | None]] = []

        def close() -> None:
            if not run:
                return
            lsn, first, kind = run[0][0], run[0][1], run[0][2]
            n = sum(r[3] for r in run)
            data = b"".join(r[4] for r in run) if kind is Kind.WRITE else b""  # type: ignore[misc]
            records.append(Record(lsn, kind, first * BLOCK, n * BLOCK, data))
            run.clear()

        for item in items:
            if run and not (item[0] == run[-1][0] and item[2] == run[-1][2] and item[2] is not Kind.EXTENT
                            and item[1] == run[-1][1] + run[-1][3] and item[3] == 1 and run[-1][3] == 1):
                close()
            run.append(item)
        close()
        records += [Record(lsn, Kind.EXTENT, ext, 0) for ext, lsn in self.markers.items()]
        records.sort(key=lambda r: r.lsn)
        return records

    def snapshot_pending(self) -> tuple[list[tuple[int, Entry]], list[tuple[int, Entry]], dict[int, int]]:
        """What a flush is about to log (to confirm with :meth:`logged`)."""
        return ([(b, self.blocks[b]) for b in self.pending], [(x, self.zeroed[x]) for x in self.pending_zeroed],
                dict(self.markers))

    def logged(self, blocks: list[tuple[int, Entry]], zeroed: list[tuple[int, Entry]],
               markers: dict[int, int], last_lsn: int) -> None:
        """The segment holding the snapshot's records is durable."""
        for b, entry in blocks:
            entry.logged = True
            if self.blocks.get(b) is entry:
                self.pending.pop(b, None)
                self.shadow.pop(b, None)
            else:  # overwritten meanwhile by something not durable: this record is still needed
                self.shadow[b] = min(self.shadow.get(b, entry.lsn), entry.lsn)
        for ext, entry in zeroed:
            entry.logged = True
            if self.zeroed.get(ext) is entry:
                self.pending_zeroed.pop(ext, None)
                self.zshadow.pop(ext, None)
            else:
                self.zshadow[ext] = min(self.zshadow.get(ext, entry.lsn), entry.lsn)
        for ext, lsn in markers.items():
            if self.markers.get(ext) == lsn:
                del self.markers[ext]
        self.logged_lsn = max(self.logged_lsn, last_lsn)

    def checkpoint(self) -> int:
        """The highest LSN at or below which no log record is needed."""
        live = [e.lsn for e in self.blocks.values() if e.logged]
        live += [z.lsn for z in self.zeroed.values() if z.logged]
        live += self.shadow.values()
        live += self.zshadow.values()
        return min(live) - 1 if live else self.logged_lsn

    # ------------------------------------------------------------ materializing
    def begin_cut(self, cut: int) -> None:
        """A snapshot at ``cut`` starts: entries at or below it are kept until
        their extent is materialized at the cut, even if writes replace them."""
        self.cut = cut

    def end_cut(self) -> None:
        self.cut = None
        for e in self.precut.values():
            if e.data is not None:
                self.data_bytes -= len(e.data)
        self.precut.clear()
        self.precut_zeroed.clear()

    def snapshot_extent(self, extent: int, upto: int) -> ExtentImage:
        """What a materialization holding every write up to LSN ``upto`` writes
        (``upto`` is normally the newest LSN; a snapshot's cut holds it lower)."""
        z = self.zeroed.get(extent)
        if z is not None and z.lsn > upto:
            z = self.precut_zeroed.get(extent)  # a zeroing after the cut: not part of this image
        first = extent * self.bpe
        blocks: dict[int, bytes | memoryview | None] = {}
        precut = self.precut
        if self.per_extent.get(extent) or precut:
            for i in range(self.bpe):
                e = self.blocks.get(first + i)
                if (e is None or e.lsn > upto) and precut:
                    e = precut.get(first + i)
                if e is not None and e.lsn <= upto and (z is None or e.lsn > z.lsn):
                    blocks[i] = e.data
        return ExtentImage(extent, upto, z is not None, blocks, z is not None or len(blocks) >= self.blocks_in(extent))

    def complete_extent(self, image: ExtentImage) -> None:
        """The extent object now holds ``image``: entries at or below its LSN go."""
        ext, lsn = image.extent, image.lsn
        first = ext * self.bpe
        if self.per_extent.get(ext):
            left = 0
            blocks, pending = self.blocks, self.pending
            freed = 0
            for b in range(first, first + self.bpe):
                e = blocks.get(b)
                if e is None:
                    continue
                if e.lsn <= lsn:
                    del blocks[b]
                    pending.pop(b, None)
                    if e.data is not None:
                        freed += len(e.data)
                else:
                    left += 1
            self.data_bytes -= freed
            if left:
                self.per_extent[ext] = left
            else:
                self.per_extent.pop(ext, None)
        if self.shadow:
            for b in range(first, first + self.bpe):
                if self.shadow.get(b, lsn + 1) <= lsn:
                    del self.shadow[b]
        if self.precut:
            for b in range(first, first + self.bpe):
                e = self.precut.get(b)
                if e is not None and e.lsn <= lsn:
                    del self.precut[b]
                    if e.data is not None:
                        self.data_bytes -= len(e.data)
        pz = self.precut_zeroed.get(ext)
        if pz is not None and pz.lsn <= lsn:
            del self.precut_zeroed[ext]
        z = self.zeroed.get(ext)
        if z is not None and z.lsn <= lsn:
            del self.zeroed[ext]
            self.pending_zeroed.pop(ext, None)
        if self.zshadow.get(ext, lsn + 1) <= lsn:
            del self.zshadow[ext]
        self.markers[ext] = max(lsn, self.markers.get(ext, 0))

    # ------------------------------------------------------------ choosing work
    def full_extents(self) -> list[int]:
        """Extents every block of which is in the map (no old content needed)."""
        return [x for x, n in self.per_extent.items() if n >= self.blocks_in(x)]

    def by_density(self) -> list[int]:
        """Touched extents, most blocks first (the cheapest to fold per byte)."""
        touched = set(self.per_extent) | set(self.zeroed)
        return sorted(touched, key=lambda x: (-self.per_extent.get(x, self.bpe), x))

    def touched_extents(self) -> Iterator[int]:
        yield from set(self.per_extent) | set(self.zeroed)

    @property
    def entries(self) -> int:
        return len(self.blocks)

    @property
    def pending_count(self) -> int:
        return len(self.pending) + len(self.pending_zeroed) + len(self.markers)

    # ------------------------------------------------------------ replay
    def replay(self, records: list[Record]) -> None:
        """Rebuild the map from log records above the checkpoint, in LSN order."""
        for r in sorted(records, key=lambda r: r.lsn):
            if r.kind is Kind.EXTENT:
                self.complete_extent(ExtentImage(r.offset, r.lsn, False, {}, False))
                self.markers.pop(r.offset, None)
                continue
            first, n = r.offset // BLOCK, r.length // BLOCK
            if r.kind is Kind.ZERO:
                b = first
                while b < first + n:
                    ext = self.extent_of(b)
                    if b % self.bpe == 0 and first + n - b >= self.blocks_in(ext):
                        self.zero_extent(ext, r.lsn, logged=True)
                        b += self.bpe
                    else:
                        self.put(b, r.lsn, None, logged=True)
                        b += 1
            else:
                data = memoryview(r.data)
                for i in range(n):
                    self.put(first + i, r.lsn, bytes(data[i * BLOCK : (i + 1) * BLOCK]), logged=True)
            self.logged_lsn = max(self.logged_lsn, r.lsn)
        self.shadow.clear()  # replayed records are the durable state itself
        self.zshadow.clear()
