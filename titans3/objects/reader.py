"""Streaming read of one erasure-coded data stream, by byte range.

Theory of operation
-------------------
A range maps to a run of segments (``titans3.erasure.stripe``); each segment's
fragment ``i`` sits at the same offset of every fragment stream, so a batch of
segments is one contiguous ``read_fragment`` per drive.  Only ``k`` drives are
read, data fragments (indexes ``0..k-1``) first because decoding them is
cheapest.  When a drive fails the read -- missing fragment, checksum error (the
drive has quarantined the file), or the drive is gone -- the batch is completed
from the next holder, and the stream notes that it needed reconstruction (the
heal-on-read signal).  Fewer than ``k`` usable fragments is ``QuorumError``.

Batches are a few segments (``batch_bytes``), so memory stays bounded and the
first byte goes out before the last is read.  Fragments of two versions never
mix: every fragment is addressed by its data id.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import trio

from titans3.core.errors import DriveError, QuorumError
from titans3.drive.protocol import Drive
from titans3.erasure.codec import Codec
from titans3.erasure.stripe import Layout, segments_for_range

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ReadStats:
    degraded: bool = False  # some fragment had to be replaced by parity
    bad_drives: set[str] | None = None


async def read_stream(
    holders: dict[int, Drive],
    data_id: str,
    layout: Layout,
    codec: Codec,
    first: int,
    last: int,
    *,
    batch_bytes: int = 4 << 20,
    stats: ReadStats | None = None,
) -> AsyncIterator[bytes]:
    """Yield bytes ``[first, last]`` (inclusive) of the stream.

    ``holders`` maps fragment index -> drive holding that fragment of this
    version.  ``stats`` (optional) is filled in as the read goes.
    """
    if last < first or layout.size == 0:
        return
    k = layout.k
    stats = stats or ReadStats()
    first_seg, last_seg, skip_head, take = segments_for_range(layout, first, last)
    per_batch = max(1, batch_bytes // layout.segment_size)
    # Data fragments first, then parity; a drive that failed once is not asked again.
    order = sorted(holders)
    failed: set[int] = set()

    seg = first_seg
    remaining_skip = skip_head
    remaining = take
    while seg <= last_seg:
        end_seg = min(last_seg, seg + per_batch - 1)
        off, length = layout.fragment_range(seg, end_seg)
        frags = await _read_batch(holders, order, failed, data_id, off, length, k, stats)
        # Slice each fragment buffer into per-segment pieces and decode.
        pos = 0
        for s in range(seg, end_seg + 1):
            flen = layout.last_fragment_size if s == layout.num_segments - 1 else layout.fragment_size
            pieces = {i: memoryview(buf)[pos : pos + flen] for i, buf in frags.items()}
            pos += flen
            data = codec.decode(pieces)
            mv = memoryview(data)
            if remaining_skip:
                mv = mv[remaining_skip:]
                remaining_skip = 0
            if len(mv) > remaining:
                mv = mv[:remaining]
            remaining -= len(mv)
            if len(mv):
                yield bytes(mv) if len(mv) != len(data) else data
        seg = end_seg + 1


async def _read_batch(
    holders: dict[int, Drive],
    order: Sequence[int],
    failed: set[int],
    data_id: str,
    off: int,
    length: int,
    k: int,
    stats: ReadStats,
) -> dict[int, bytes]:
    """``k`` fragments of one batch.  Reads ``k`` holders at once; a holder that
    fails is replaced by the next one, and one that is merely *slow* is hedged
    (:func:`hedge_after`): the next holder is read beside it and whichever
    ``k`` answer first win.  A straggler left behind is cancelled and not asked
    again for this stream, so a hung host costs one hedge delay, not a timeout."""
    got: dict[int, bytes] = {}
    candidates = [i for i in order if i not in failed]
    inflight: set[int] = set()
    t0 = trio.current_time()
    first_done: float | None = None
    progress = trio.Event()

    async def one(i: int) -> None:
        nonlocal first_done
        d = holders[i]
        try:
            buf = await d.read_fragment(data_id, off, length)
            if len(buf) != length:
                raise DriveError(d.drive_id, f"short fragment read ({len(buf)} of {length})")
            got[i] = buf
            if first_done is None:
                first_done = trio.current_time() - t0
        except DriveError as e:
            log.warning("fragment %d of %s unreadable on %s: %s", i, data_id, d.drive_id, e)
            failed.add(i)
            stats.degraded = True
            stats.bad_drives = (stats.bad_drives or set()) | {d.drive_id}
        finally:
            inflight.discard(i)
            progress.set()

    async with trio.open_nursery() as nursery:
        since = t0  # the hedge clock restarts after each hedge
        while len(got) < k:
            progress = trio.Event()
            while len(got) + len(inflight) < k and candidates:
                i = candidates.pop(0)
                inflight.add(i)
                nursery.start_soon(one, i)
            if not inflight:
                raise QuorumError(f"only {len(got)} of the {k} fragments needed are readable")
            with trio.move_on_at(since + hedge_after(first_done)) as hedge:
                await progress.wait()
            if hedge.cancelled_caught:
                if candidates:  # a holder is slow: read one more beside it
                    i = candidates.pop(0)
                    inflight.add(i)
                    nursery.start_soon(one, i)
                since = trio.current_time()
        for i in inflight:  # stragglers: cancelled below, skipped for the rest of the stream
            failed.add(i)
            log.info("fragment %d of %s: %s too slow, read around it", i, data_id,
                     holders[i].drive_id)
        nursery.cancel_scope.cancel()
    if any(i >= k for i in got):
        stats.degraded = True
    return got


HEDGE_MIN = 0.5  # seconds: below this a read is never hedged
HEDGE_FACTOR = 4.0
HEDGE_NONE_DONE = 2.0  # seconds with no fragment at all before hedging


def hedge_after(first_done: float | None) -> float:
    """How long a batch waits for a slow holder before reading one more: a
    multiple of the fastest answer this batch, never below ``HEDGE_MIN``."""
    if first_done is None:
        return HEDGE_NONE_DONE
    return max(HEDGE_MIN, HEDGE_FACTOR * first_done)
