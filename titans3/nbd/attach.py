"""Opening volumes: extent views through clone chains, and replay of the write log.

Theory of operation
-------------------
*Views.*  A volume's :class:`~titans3.nbd.extents.ExtentView` is its own
extents' versions (current, or at a snapshot's cut) over its parent's view at
the clone's cut, down the chain of clones (:func:`open_view`).  Parents are
found by name and checked by id: a volume is never deleted while a clone
depends on it (the service refuses), so a mismatch is corruption, reported
and never silently read as zeroes.

*Replay* (:func:`attach`), under the writer lease:

1. list the log segments and read them all;
2. keep the records above the checkpoint that count: those of the current
   epoch, and those of older epochs up to where that epoch was sealed --
   records a fenced-off writer got in after another host took over never
   count;
3. bump the epoch and seal every epoch replayed (one compare-and-set of the
   volume record): this writer's LSNs now sort after everything before it;
4. rebuild the block map from the records, in LSN order.

Attach costs one read of the log, which the checkpoint keeps short (the
cleaner folds an idle volume completely, and a clean detach empties it).
"""

from __future__ import annotations

import logging
from dataclasses import replace

import trio

from titans3.nbd import logformat
from titans3.nbd.backend import BackendError, ObjectBackend
from titans3.nbd.cache import ExtentCache
from titans3.nbd.catalog import Catalog, VolumeRecord
from titans3.nbd.extents import ExtentView, sources_at
from titans3.nbd.volume import Volume

log = logging.getLogger(__name__)

READ_CONCURRENCY = 8


async def open_view(backend: ObjectBackend, cache: ExtentCache, catalog: Catalog, record: VolumeRecord,
                    cut: str | None) -> ExtentView:
    """The extents of ``record`` at ``cut`` (None: now), through its clone chain."""
    parent: ExtentView | None = None
    if record.parent_id:
        prec = await catalog.find(record.parent_name)
        if prec is None or prec.id != record.parent_id:
            raise BackendError(f"volume {record.name}: its parent {record.parent_name} "
                               f"({record.parent_id}) is missing")
        parent = await open_view(backend, cache, catalog, prec, record.parent_vid)
    own = await sources_at(backend, record.prefix, cut)
    return ExtentView(backend, cache, record.prefix, record.extent_size, own, parent)


def counts(record: VolumeRecord, lsn: int) -> bool:
    """Whether a log record with ``lsn`` is part of the volume's durable state."""
    if lsn <= record.checkpoint:
        return False
    epoch = logformat.epoch_of(lsn)
    if epoch >= record.epoch:
        return True
    return lsn <= record.sealed.get(epoch, -1)


async def read_log(backend: ObjectBackend, record: VolumeRecord) -> tuple[list[logformat.Record],
                                                                        dict[str, tuple[int, str]]]:
    """Every record of the volume's log that counts, and its segments (key -> last LSN, version)."""
    listed = await backend.keys(record.prefix + "log/")
    volume_id = bytes.fromhex(record.id)
    records: list[logformat.Record] = []
    segments: dict[str, tuple[int, str]] = {}
    limiter = trio.CapacityLimiter(READ_CONCURRENCY)

    async def one(key: str, vid: str) -> None:
        async with limiter:
            raw = await backend.get(key, version=vid)
        if raw is None:
            return
        recs = logformat.decode(raw, volume_id)
        segments[key] = (max(r.lsn for r in recs), vid)
        records.extend(r for r in recs if counts(record, r.lsn))

    async with trio.open_nursery() as nursery:
        for v in listed:
            nursery.start_soon(one, v.key, v.version_id)
    return records, segments


async def attach(backend: ObjectBackend, cache: ExtentCache, catalog: Catalog, name: str,
                 *, memory: int) -> Volume:
    """Open volume ``name`` for writing (the caller holds its lease)."""
    record = await catalog.get(name)
    records, segments = await read_log(backend, record)
    sealed = dict(record.sealed)
    for r in records:
        e = logformat.epoch_of(r.lsn)
        if e <= record.epoch:
            sealed[e] = max(sealed.get(e, 0), r.lsn)
    sealed = {e: s for e, s in sealed.items() if s > record.checkpoint}
    before = record

    def bump(r: VolumeRecord) -> VolumeRecord | None:
        if r.id != before.id:
            raise BackendError(f"volume {name} was replaced while attaching")
        return replace(r, epoch=max(r.epoch, before.epoch) + 1, sealed=sealed)

    record = await catalog.update(name, bump)
    view = await open_view(backend, cache, catalog, record, None)
    volume = Volume(record, backend, catalog, view, memory=memory, segments=segments)
    volume.map.replay(records)
    volume.map.logged_lsn = max([record.checkpoint, *(last for last, _ in segments.values())])
    if records:
        log.info("volume %s: replayed %d log records from %d segments (%d blocks in memory)",
                 name, len(records), len(segments), volume.map.entries)
    return volume
