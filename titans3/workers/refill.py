"""Refill of a replaced drive: a resumable per-drive tracker.

Theory of operation
-------------------
A blank replacement takes its predecessor's ring slot and is marked
*healing* (:mod:`titans3.disks.roster`): it takes new writes, but reads ignore
it until it holds everything its slot should.  The tracker for that drive
walks every key of every bucket as the *other* drives list it (the blank one
knows nothing), keeps the keys whose placement includes the drive, and asks
the object layer to repair each onto that drive alone.

* **Resumable.**  The cursor (bucket id, last key done) and the counters are
  checkpointed every few seconds in the drive's own ``workers`` meta table:
  a restart resumes; a second replacement of the slot is a new disk with no
  checkpoint, so it starts over -- as it must.
* **Skips, never starts over.**  A key that cannot be repaired now (a drive
  it needs is offline, its version is still committing) goes on a retry list;
  one that can never be repaired (*lost*: fewer than ``k`` healthy fragments
  elsewhere) is recorded and reported.  Neither stops the walk.
* **Done.**  After the walk the retry list is retried with backoff until only
  lost keys remain; then the healing flag is cleared (``on_done``) and reads
  count the drive again.  Keys a few at a time (``concurrency``) with a batch
  barrier, so the cursor is always "everything up to here is done".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgpack
import trio

from titans3.core.errors import DriveError
from titans3.workers.throttle import RateMeter

if TYPE_CHECKING:
    from titans3.workers.services import Services

log = logging.getLogger(__name__)

TABLE = "workers"
CHECKPOINT_KEY = b"refill"
CHECKPOINT_EVERY = 2.0
POLL = 2.0
RETRY_DELAYS = (2.0, 5.0, 15.0, 60.0)
MAX_REPORTED = 100  # failed keys kept for the report (the count is exact)
FORMAT = 1


def online(drive: Any) -> bool:
    return drive.state == "online"  # DriveState is a StrEnum


@dataclass(slots=True)
class RefillCursor:
    bucket: bytes | None = None
    key: bytes | None = None
    walked: bool = False  # the walk finished; only retries remain
    objects: int = 0  # keys examined
    repaired: int = 0  # keys where something was written onto the drive
    fragments: int = 0
    bytes: int = 0
    lost: list[tuple[bytes, bytes, str]] = field(default_factory=list)
    lost_count: int = 0
    retry: list[tuple[bytes, bytes]] = field(default_factory=list)
    started: float = 0.0
    finished: float | None = None

    def pack(self) -> bytes:
        return msgpack.packb(
            {"f": FORMAT, "bucket": self.bucket, "key": self.key, "walked": self.walked,
             "objects": self.objects, "repaired": self.repaired, "fragments": self.fragments,
             "bytes": self.bytes, "lost": [list(x) for x in self.lost],
             "lost_count": self.lost_count, "retry": [list(x) for x in self.retry],
             "started": self.started, "finished": self.finished},
            use_bin_type=True,
        )

    @classmethod
    def unpack(cls, raw: bytes) -> RefillCursor:
        d = msgpack.unpackb(raw, raw=False)
        if d.get("f") != FORMAT:
            raise ValueError(f"unknown refill checkpoint format {d.get('f')!r}")
        return cls(d["bucket"], d["key"], d["walked"], d["objects"], d["repaired"], d["fragments"],
                   d["bytes"], [tuple(x) for x in d["lost"]], d["lost_count"],  # type: ignore[misc]
                   [tuple(x) for x in d["retry"]], d["started"], d["finished"])  # type: ignore[misc]


@dataclass(frozen=True, slots=True)
class RefillDriveStatistics:
    position: int
    drive_id: str
    slot: str
    state: str  # walking | retrying | done | waiting | offline
    objects_checked: int
    objects_repaired: int
    fragments_rebuilt: int
    bytes_rebuilt: int
    lost: int
    lost_keys: tuple[str, ...]  # "bucket-id-hex/key: reason", at most MAX_REPORTED
    retry_pending: int
    cursor: str
    rate: float
    started: float
    finished: float | None
    error: str = ""


@dataclass(frozen=True, slots=True)
class RefillStatistics:
    state: str  # idle | refilling
    healing: tuple[int, ...]  # drive positions still marked healing
    objects_checked: int
    objects_repaired: int
    fragments_rebuilt: int
    bytes_rebuilt: int
    lost: int
    errors: int
    queue_depth: int  # keys waiting for a retry
    rate: float  # bytes/s, all refills
    eta_s: float | None
    drives: tuple[RefillDriveStatistics, ...]


class RefillTracker:
    """Refills one drive position (see module doc)."""

    def __init__(self, services: Services, position: int, *, concurrency: int = 4,
                 on_done: Callable[[int], None] | None = None) -> None:
        self.svc = services
        self.position = position
        self.concurrency = max(1, concurrency)
        self.on_done = on_done
        self.cur = RefillCursor()
        self.state = "starting"
        self.error = ""
        self.meter = RateMeter()

    @property
    def drive(self) -> Any:
        return self.svc.drives[self.position]

    async def _load(self) -> None:
        raw = await self.drive.get_meta(TABLE, CHECKPOINT_KEY)
        if raw is not None:
            try:
                cur = RefillCursor.unpack(raw)
                if cur.finished is None:  # a finished refill of this disk is history
                    self.cur = cur
                    log.info("refill of %s resumes after %d keys", self.drive.drive_id, cur.objects)
                    return
            except (ValueError, KeyError, msgpack.UnpackException) as e:
                log.warning("refill checkpoint of %s unreadable, starting over: %s",
                            self.drive.drive_id, e)
        self.cur = RefillCursor(started=time.time())

    async def _save(self) -> None:
        try:
            await self.drive.put_meta(TABLE, CHECKPOINT_KEY, self.cur.pack())
        except DriveError as e:
            log.warning("refill checkpoint of %s failed: %s", self.drive.drive_id, e)

    async def run(self) -> None:
        """Until the drive is refilled (returns) or fails (raises DriveError)."""
        await self._load()
        log.info("refilling drive %s (%s)", self.drive.drive_id, self.svc.slot(self.position))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._measure)
            try:
                if not self.cur.walked:
                    self.state = "walking"
                    await self._walk()
                    self.cur.walked = True
                    await self._save()
                await self._retry_until_clean()
            finally:
                with trio.CancelScope(shield=True):
                    await self._save()
            nursery.cancel_scope.cancel()
        self.cur.finished = time.time()
        await self._save()
        self.state = "done"
        log.info("refill of %s done: %d keys, %d repaired, %d bytes, %d lost",
                 self.drive.drive_id, self.cur.objects, self.cur.repaired, self.cur.bytes,
                 self.cur.lost_count)
        if self.on_done is not None:
            self.on_done(self.position)

    async def _measure(self) -> None:
        while True:
            self.meter.update(self.cur.bytes, trio.current_time())
            await trio.sleep(1.0)

    async def _walk(self) -> None:
        last_save = trio.current_time()
        batch: list[tuple[bytes, bytes]] = []

        async def flush() -> None:
            async with trio.open_nursery() as nursery:
                for bid, key in batch:
                    nursery.start_soon(self._one, bid, key)
            self.cur.bucket, self.cur.key = batch[-1]
            batch.clear()

        for bid in await self.svc.bucket_ids():
            if self.cur.bucket is not None and bid < self.cur.bucket:
                continue
            after = self.cur.key if self.cur.bucket == bid else None
            async for kr in self.svc.walk_keys(bid, start_after=after, skip={self.position}):
                if not online(self.drive):
                    raise DriveError(self.drive.drive_id, "went offline during the refill")
                if self.position not in self.svc.placement(bid, kr.key):
                    continue
                batch.append((bid, kr.key))
                if len(batch) >= self.concurrency:
                    await flush()
                    if trio.current_time() - last_save >= CHECKPOINT_EVERY:
                        await self._save()
                        last_save = trio.current_time()
            if batch:
                await flush()
            await self._save()

    async def _one(self, bid: bytes, key: bytes, *, retrying: bool = False) -> bool:
        """Repair one key onto the drive; True when nothing is left to do for it."""
        try:
            out = await self.svc.repair(bid, key, only={self.position})
        except Exception as e:  # noqa: BLE001 -- skip and retry later, never start over
            log.warning("refill: %s/%r failed: %s", bid.hex(), key, e)
            self.error = f"{type(e).__name__}: {e}"
            if not retrying:
                self.cur.objects += 1
                self.cur.retry.append((bid, key))
            return False
        if not retrying:
            self.cur.objects += 1
        self.cur.fragments += out.fragments_rebuilt
        self.cur.bytes += out.bytes_rebuilt
        if out.changed:
            self.cur.repaired += 1
        if out.lost:
            self.cur.lost_count += 1
            if len(self.cur.lost) < MAX_REPORTED:
                self.cur.lost.append((bid, key, "; ".join(out.errors)[:300]))
            log.error("refill of %s: %s/%r cannot be rebuilt: %s", self.drive.drive_id,
                      bid.hex(), key, "; ".join(out.errors))
            return True
        if out.deferred or out.errors:
            if not retrying:
                self.cur.retry.append((bid, key))
            return False
        return True

    async def _retry_until_clean(self) -> None:
        attempt = 0
        while self.cur.retry:
            self.state = "retrying"
            await trio.sleep(RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)])
            attempt += 1
            if not online(self.drive):
                raise DriveError(self.drive.drive_id, "went offline during the refill")
            still: list[tuple[bytes, bytes]] = []
            for bid, key in list(self.cur.retry):
                if not await self._one(bid, key, retrying=True):
                    still.append((bid, key))
            self.cur.retry = still
            await self._save()

    def statistics(self) -> RefillDriveStatistics:
        c = self.cur
        return RefillDriveStatistics(
            position=self.position, drive_id=self.drive.drive_id,
            slot=self.svc.slot(self.position), state=self.state,
            objects_checked=c.objects, objects_repaired=c.repaired, fragments_rebuilt=c.fragments,
            bytes_rebuilt=c.bytes, lost=c.lost_count,
            lost_keys=tuple(f"{b.hex()}/{k.decode('utf-8', 'replace')}: {why}" for b, k, why in c.lost),
            retry_pending=len(c.retry),
            cursor=f"{c.bucket.hex()}/{(c.key or b'').decode('utf-8', 'replace')}" if c.bucket else "",
            rate=round(self.meter.rate, 1) if self.state in ("walking", "retrying") else 0.0,
            started=c.started, finished=c.finished, error=self.error,
        )


class RefillManager:
    """Runs a tracker for every healing drive position; notices new ones."""

    def __init__(self, services: Services, *, concurrency: int = 4,
                 on_done: Callable[[int], None] | None = None) -> None:
        self.svc = services
        self.concurrency = concurrency
        self.on_done = on_done
        self.trackers: dict[int, RefillTracker] = {}
        self._running: set[int] = set()
        self._kick = trio.Event()
        self.errors = 0

    def start(self, position: int) -> None:
        """A drive was replaced (the disk manager's call): mark it healing and refill it."""
        self.svc.healing.add(position)
        self._kick.set()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            task_status.started()
            while True:
                for pos in sorted(self.svc.healing):
                    if pos in self._running:
                        continue
                    if not online(self.svc.drives[pos]):
                        continue
                    self._running.add(pos)
                    nursery.start_soon(self._track, pos)
                self._kick = trio.Event()
                with trio.move_on_after(POLL):
                    await self._kick.wait()

    async def _track(self, pos: int) -> None:
        t = RefillTracker(self.svc, pos, concurrency=self.concurrency, on_done=self._done)
        self.trackers[pos] = t
        try:
            await t.run()
        except DriveError as e:
            self.errors += 1
            t.state = "offline"
            t.error = str(e)
            log.warning("refill of %s paused: %s", t.drive.drive_id, e)
        except Exception as e:  # noqa: BLE001 -- a refill must not take the host down
            self.errors += 1
            t.state = "waiting"
            t.error = f"{type(e).__name__}: {e}"
            log.exception("refill of %s failed; will retry", t.drive.drive_id)
            await trio.sleep(30)
        finally:
            self._running.discard(pos)

    def _done(self, pos: int) -> None:
        if self.on_done is not None:
            self.on_done(pos)
        self.svc.healing.discard(pos)

    def statistics(self) -> RefillStatistics:
        drives = tuple(t.statistics() for _, t in sorted(self.trackers.items()))
        active = [d for d in drives if d.state in ("walking", "retrying")]
        rate = sum(d.rate for d in active)
        return RefillStatistics(
            state="refilling" if active else "idle",
            healing=tuple(sorted(self.svc.healing)),
            objects_checked=sum(d.objects_checked for d in drives),
            objects_repaired=sum(d.objects_repaired for d in drives),
            fragments_rebuilt=sum(d.fragments_rebuilt for d in drives),
            bytes_rebuilt=sum(d.bytes_rebuilt for d in drives),
            lost=sum(d.lost for d in drives),
            errors=self.errors,
            queue_depth=sum(d.retry_pending for d in drives),
            rate=round(rate, 1),
            eta_s=None,
            drives=drives,
        )
