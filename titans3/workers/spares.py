"""Rebuilding a FAILED drive's fragments on spare drives, without waiting for a new disk.

Theory of operation
-------------------
Every ``POLL`` seconds the manager looks at this host's drives: a drive that
is *failed* (not merely offline: a pulled cable or a restart is handled by
handoff and the heal queue) gets a tracker, which walks every key of every
bucket as the other drives list it, keeps the keys whose placement includes
the failed drive, and asks the object layer to rebuild that drive's fragment
of each on the key's spare drive (``objects/spares.py``), ``concurrency``
keys at a time.  Keys that cannot be done now (a spare away, a version still
committing, too few healthy fragments until the heal queue repairs them) are
retried with backoff; keys whose ring has no drive outside the stripe are
counted as ``no_spare``.  The tracker is *done* when only those remain.

A tracker stops when its position no longer holds the failed drive (the slot
was replaced: the refill takes over, and the handoff replayer moves the spare
copies back once the refill is done).  Progress lives in memory: after a
restart the walk runs again, and the fragments already on a spare are
skipped by a hint lookup, so it costs a key listing, not a rebuild.
Statistics have the refill's shape, per failed drive.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from titans3.workers.throttle import RateMeter

if TYPE_CHECKING:
    from titans3.workers.services import Services

log = logging.getLogger(__name__)

POLL = 2.0
RETRY_DELAYS = (2.0, 5.0, 15.0, 60.0)
NO_SPARE = "no drive outside the stripe"


def failed(drive: Any) -> bool:
    return drive.state == "failed"  # DriveState is a StrEnum


@dataclass(frozen=True, slots=True)
class SpareDriveStatistics:
    position: int
    drive_id: str
    slot: str
    state: str  # walking | retrying | done | stopped
    objects_checked: int
    objects_rebuilt: int
    fragments_rebuilt: int
    bytes_rebuilt: int
    no_spare: int  # keys whose ring has no drive outside the stripe
    retry_pending: int
    rate: float
    started: float
    finished: float | None
    error: str = ""


@dataclass(frozen=True, slots=True)
class SpareStatistics:
    state: str  # idle | rebuilding
    objects_checked: int
    objects_rebuilt: int
    fragments_rebuilt: int
    bytes_rebuilt: int
    queue_depth: int
    rate: float
    drives: tuple[SpareDriveStatistics, ...]


class SpareTracker:
    """Rebuilds one failed drive's fragments on spares (see module doc)."""

    def __init__(self, svc: Services, position: int, *, concurrency: int = 4) -> None:
        self.svc = svc
        self.position = position
        self.drive_id = svc.drives[position].drive_id
        self.concurrency = max(1, concurrency)
        self.state = "walking"
        self.error = ""
        self.objects = self.rebuilt = self.fragments = self.bytes = self.no_spare = 0
        self.retry: list[tuple[bytes, bytes]] = []
        self.started = time.time()
        self.finished: float | None = None
        self.meter = RateMeter()

    def still_failed(self) -> bool:
        d = self.svc.drives[self.position]
        return d.drive_id == self.drive_id and failed(d)

    async def run(self) -> None:
        log.info("rebuilding failed drive %s (%s) on spare drives", self.drive_id,
                 self.svc.slot(self.position))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._measure)
            try:
                await self._walk()
                await self._retry()
            finally:
                nursery.cancel_scope.cancel()
        if not self.still_failed():
            self.state = "stopped"
            log.info("spare rebuild of %s stopped: the slot was replaced", self.drive_id)
            return
        self.finished = time.time()
        self.state = "done"
        log.info("spare rebuild of %s done: %d keys, %d rebuilt, %d bytes, %d without a spare",
                 self.drive_id, self.objects, self.rebuilt, self.bytes, self.no_spare)

    async def _measure(self) -> None:
        while True:
            self.meter.update(self.bytes, trio.current_time())
            await trio.sleep(1.0)

    async def _walk(self) -> None:
        batch: list[tuple[bytes, bytes]] = []

        async def flush() -> None:
            async with trio.open_nursery() as nursery:
                for bid, key in batch:
                    nursery.start_soon(self._one, bid, key)
            batch.clear()

        for bid in await self.svc.bucket_ids():
            async for kr in self.svc.walk_keys(bid, skip={self.position}):
                if not self.still_failed():
                    return
                if self.position not in self.svc.placement(bid, kr.key):
                    continue
                batch.append((bid, kr.key))
                if len(batch) >= self.concurrency:
                    await flush()
            if batch:
                await flush()

    async def _one(self, bid: bytes, key: bytes, *, retrying: bool = False) -> bool:
        """Rebuild one key; True when nothing is left to do for it."""
        if not retrying:
            self.objects += 1
        try:
            out = await self.svc.rebuild_on_spare(bid, key, self.position)
        except Exception as e:  # noqa: BLE001 -- retry later, never stop the walk
            log.warning("spare rebuild: %s/%r failed: %s", bid.hex(), key, e)
            self.error = f"{type(e).__name__}: {e}"
            if not retrying:
                self.retry.append((bid, key))
            return False
        self.fragments += out.fragments_rebuilt
        self.bytes += out.bytes_rebuilt
        if out.changed:
            self.rebuilt += 1
        if any(NO_SPARE in e for e in out.errors):
            self.no_spare += 1
            return True
        if out.deferred or out.errors:
            if out.errors:
                self.error = "; ".join(out.errors)[:300]
            if not retrying:
                self.retry.append((bid, key))
            return False
        return True

    async def _retry(self) -> None:
        attempt = 0
        while self.retry and self.still_failed():
            self.state = "retrying"
            await trio.sleep(RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)])
            attempt += 1
            self.retry = [(b, k) for b, k in list(self.retry)
                          if not await self._one(b, k, retrying=True)]

    def statistics(self) -> SpareDriveStatistics:
        return SpareDriveStatistics(
            position=self.position, drive_id=self.drive_id, slot=self.svc.slot(self.position),
            state=self.state, objects_checked=self.objects, objects_rebuilt=self.rebuilt,
            fragments_rebuilt=self.fragments, bytes_rebuilt=self.bytes, no_spare=self.no_spare,
            retry_pending=len(self.retry),
            rate=round(self.meter.rate, 1) if self.state in ("walking", "retrying") else 0.0,
            started=self.started, finished=self.finished, error=self.error,
        )


class SpareRebuilder:
    """Runs a tracker for every failed drive among ``positions`` (this host's)."""

    def __init__(self, svc: Services, positions: Collection[int], *, concurrency: int = 4) -> None:
        self.svc = svc
        self.positions = list(positions)
        self.concurrency = concurrency
        self.trackers: dict[str, SpareTracker] = {}  # by failed drive id

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            task_status.started()
            while True:
                for pos in self.positions:
                    d = self.svc.drives[pos]
                    if pos in self.svc.healing or not failed(d) or d.drive_id in self.trackers:
                        continue
                    t = self.trackers[d.drive_id] = SpareTracker(self.svc, pos,
                                                                 concurrency=self.concurrency)
                    nursery.start_soon(self._track, t)
                await trio.sleep(POLL)

    async def _track(self, t: SpareTracker) -> None:
        try:
            await t.run()
        except Exception as e:  # noqa: BLE001 -- a rebuild must not take the host down
            t.state, t.error = "stopped", f"{type(e).__name__}: {e}"
            log.exception("spare rebuild of %s failed", t.drive_id)
            await trio.sleep(30)
            if t.still_failed():
                self.trackers.pop(t.drive_id, None)  # the next poll starts it again

    def statistics(self) -> SpareStatistics:
        drives = tuple(t.statistics() for t in self.trackers.values())
        active = [d for d in drives if d.state in ("walking", "retrying")]
        return SpareStatistics(
            state="rebuilding" if active else "idle",
            objects_checked=sum(d.objects_checked for d in drives),
            objects_rebuilt=sum(d.objects_rebuilt for d in drives),
            fragments_rebuilt=sum(d.fragments_rebuilt for d in drives),
            bytes_rebuilt=sum(d.bytes_rebuilt for d in drives),
            queue_depth=sum(d.retry_pending for d in drives),
            rate=round(sum(d.rate for d in active), 1),
            drives=drives,
        )
