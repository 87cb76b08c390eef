"""The repair worker: drains the heal queue, a few keys at a time.

Theory of operation
-------------------
``concurrency`` tasks each take the next due key from the
:class:`~titans3.workers.healqueue.HealQueue` and ask the object layer to
repair it (every visible version, streaming segment by segment; see
:mod:`titans3.objects.repair`).  The outcome decides the entry's fate:

* repaired, or nothing to do -- done;
* *lost* (a stream with fewer than ``k`` healthy fragments) -- done, and
  counted: retrying cannot help, and the operator must see it;
* deferred (a drive it belongs on is offline, the version is still inside its
  commit grace) -- back into the queue, without using up an attempt;
* failed with an error -- back into the queue with backoff.

The queue itself is persisted; this worker only counts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from titans3.workers.throttle import RateMeter

if TYPE_CHECKING:
    from titans3.workers.healqueue import HealQueue
    from titans3.workers.services import Services

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RepairStatistics:
    state: str  # idle | repairing
    concurrency: int
    objects_checked: int  # keys taken from the queue
    objects_repaired: int  # keys where something was rebuilt or restored
    fragments_rebuilt: int
    records_restored: int
    bytes_rebuilt: int
    lost: int  # streams that could not be rebuilt (fewer than k healthy fragments)
    deferred: int
    errors: int
    queue_depth: int
    in_flight: int
    rate: float  # fragment bytes rebuilt per second
    eta_s: float | None  # for the queue at the current key rate
    last_error: str


class RepairWorker:
    def __init__(self, services: Services, queue: HealQueue, *, concurrency: int = 4) -> None:
        self.svc = services
        self.queue = queue
        self.concurrency = max(1, concurrency)
        self.checked = self.repaired = self.rebuilt = self.restored = 0
        self.bytes = self.lost = self.deferred = self.errors = 0
        self.last_error = ""
        self._active = 0
        self.meter = RateMeter()
        self.key_meter = RateMeter(half_life=30.0)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(self.concurrency):
                nursery.start_soon(self._consume)
            nursery.start_soon(self._measure)
            task_status.started()

    async def _measure(self) -> None:
        while True:
            now = trio.current_time()
            self.meter.update(self.bytes, now)
            self.key_meter.update(self.checked, now)
            await trio.sleep(1.0)

    async def _consume(self) -> None:
        while True:
            entry = await self.queue.get()
            self._active += 1
            retry = True
            deferred = False
            try:
                out = await self.svc.repair(entry.bucket_id, entry.key)
                self.checked += 1
                self.rebuilt += out.fragments_rebuilt
                self.restored += out.records_restored
                self.bytes += out.bytes_rebuilt
                self.repaired += 1 if out.changed else 0
                self.lost += out.lost
                if out.lost:
                    log.error("repair of %s/%r: %d stream(s) lost: %s", entry.bucket_id.hex(),
                              entry.key, out.lost, "; ".join(out.errors))
                    retry = False
                elif out.errors:
                    self.errors += 1
                    self.last_error = out.errors[-1]
                elif out.deferred:
                    self.deferred += 1
                    deferred = True
                else:
                    retry = False
            except Exception as e:  # noqa: BLE001 -- one key must never stop the worker
                self.errors += 1
                self.last_error = f"{type(e).__name__}: {e}"
                log.warning("repair of %s/%r failed: %s", entry.bucket_id.hex(), entry.key, e)
            finally:
                self._active -= 1
                self.queue.finish(entry, retry=retry, deferred=deferred)

    def statistics(self) -> RepairStatistics:
        depth = len(self.queue.core)
        eta = self.key_meter.eta(depth)
        return RepairStatistics(
            state="repairing" if self._active else "idle",
            concurrency=self.concurrency,
            objects_checked=self.checked,
            objects_repaired=self.repaired,
            fragments_rebuilt=self.rebuilt,
            records_restored=self.restored,
            bytes_rebuilt=self.bytes,
            lost=self.lost,
            deferred=self.deferred,
            errors=self.errors,
            queue_depth=depth,
            in_flight=self._active,
            rate=round(self.meter.rate, 1),
            eta_s=round(eta, 1) if eta is not None else None,
            last_error=self.last_error,
        )
