"""The scrubber: read every fragment, throttled; find damage before clients do.

Theory of operation
-------------------
A *pass* walks, for each of this host's drives at once, every version record
the drive holds (bucket by bucket in bucket-id order, keys in binary order)
and reads every fragment stream the record names, end to end.  The drive
verifies each block's xxh3 on the way (a bad block quarantines the file and
raises ``FragmentCorrupt``), so reading *is* the check; the length must also
match what the record implies.  For each key the drive at the lowest placement
index holding it also checks that every placement drive has the record of
every visible version (``placement_check``).  Whatever is wrong queues the key
for repair (:class:`~titans3.workers.healqueue.HealQueue`, waiting for room:
the scrubber is the producer that may be slowed down).

* **Throttled.**  All drives draw from one token bucket of ``rate`` bytes/s
  (``0`` = unthrottled), changeable at run time (:meth:`Scrubber.set_rate`).
* **Checkpointed per drive.**  Every few seconds each drive's cursor and
  counters go into that drive's ``workers`` meta table; a restarted daemon
  resumes the pass where the checkpoint says (re-reading at most a few seconds
  of work), and a replaced disk naturally starts fresh.
* **Scheduled.**  A pass starts ``interval`` seconds after the last one
  finished (a brand-new drive counts as just scrubbed), or at once on
  :meth:`Scrubber.start_pass`.  A drive that goes offline mid-pass keeps its
  cursor and is retried; the pass completes when every drive finished it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgpack
import trio

from titans3.core.errors import DriveError, DriveOffline, FragmentCorrupt, FragmentMissing
from titans3.workers.throttle import PacedMeter, RateMeter, TokenBucket, throttle

if TYPE_CHECKING:
    from titans3.workers.healqueue import HealQueue
    from titans3.workers.services import Services

log = logging.getLogger(__name__)

TABLE = "workers"
CHECKPOINT_KEY = b"scrub"
CHECKPOINT_EVERY = 5.0  # seconds
PAGE = 100
RETRY_OFFLINE = 30.0  # seconds before an unfinished drive is tried again
FORMAT = 1


@dataclass(slots=True)
class DriveCursor:
    """One drive's progress through the current pass (persisted)."""

    running: bool = False
    pass_no: int = 0
    bucket: bytes | None = None  # every bucket before this one is done
    key: bytes | None = None  # ... and every key up to this one in it
    bytes: int = 0
    objects: int = 0
    fragments: int = 0
    corrupt: int = 0
    missing: int = 0
    records_missing: int = 0
    queued: int = 0
    owned: int = 0  # keys whose cross-drive check this drive ran (each key counts once)
    started: float = 0.0
    finished: float | None = None

    def pack(self) -> bytes:
        return msgpack.packb(
            {"f": FORMAT, "running": self.running, "pass": self.pass_no, "bucket": self.bucket,
             "key": self.key, "bytes": self.bytes, "objects": self.objects,
             "fragments": self.fragments, "corrupt": self.corrupt, "missing": self.missing,
             "records_missing": self.records_missing, "queued": self.queued,
             "owned": self.owned, "started": self.started, "finished": self.finished},
            use_bin_type=True,
        )

    @classmethod
    def unpack(cls, raw: bytes) -> DriveCursor:
        d = msgpack.unpackb(raw, raw=False)
        if d.get("f") != FORMAT:
            raise ValueError(f"unknown scrub checkpoint format {d.get('f')!r}")
        return cls(d["running"], d["pass"], d["bucket"], d["key"], d["bytes"], d["objects"],
                   d["fragments"], d["corrupt"], d["missing"], d["records_missing"], d["queued"],
                   d.get("owned", 0), d["started"], d["finished"])


@dataclass(frozen=True, slots=True)
class DriveScrubStatistics:
    position: int
    drive_id: str
    state: str  # scrubbing | done | waiting | offline | idle
    pass_no: int
    bytes_scanned: int
    keys_scanned: int  # keys this drive holds records of, done this pass
    fragments_checked: int
    corrupt: int
    missing: int
    resumed_from_keys: int  # objects already done when this process resumed the pass
    cursor: str  # "bucket-id-hex/key" of the last key done
    error: str = ""


@dataclass(frozen=True, slots=True)
class ScrubberStatistics:
    state: str  # idle | running
    rate_limit: int  # bytes/s, 0 = unthrottled
    rate: float  # bytes/s measured
    passes_completed: int  # by this process
    pass_started: float | None  # unix time of the current / last pass
    last_pass_finished: float | None
    next_pass_due: float | None
    bytes_scanned: int  # this pass, all drives, including resumed progress
    bytes_total: int  # estimate of what a pass reads (drive bytes stored)
    objects_checked: int  # distinct keys fully checked this pass
    fragments_checked: int
    corrupt: int
    missing: int
    records_missing: int
    queued_for_repair: int
    errors: int
    queue_depth: int
    eta_s: float | None
    drives: tuple[DriveScrubStatistics, ...] = field(default_factory=tuple)


class Scrubber:
    def __init__(
        self, services: Services, queue: HealQueue, *, positions: list[int], rate: int,
        interval: float, checkpoint_every: float = CHECKPOINT_EVERY,
    ) -> None:
        self.svc = services
        self.queue = queue
        self.positions = list(positions)
        self.interval = interval
        self.checkpoint_every = checkpoint_every
        self.bucket = TokenBucket(rate)
        self.meter = RateMeter()  # unthrottled passes: whatever the drives give
        self.paced = PacedMeter(self.bucket)  # throttled passes: never above the limit
        self.cursors: dict[int, DriveCursor] = {}
        self._resumed: dict[int, int] = {}
        self._states: dict[int, str] = dict.fromkeys(self.positions, "idle")
        self._errors_by: dict[int, str] = {}
        self._disk: dict[int, int] = {}  # position -> id() of the drive object its cursor is for
        self._kick = trio.Event()
        self._start_requested = False
        self._running = False
        self.passes_completed = 0
        self.errors = 0
        self._pass_done = trio.Event()

    # ------------------------------------------------------------ control
    def set_rate(self, rate: int) -> None:
        if rate < 0:
            raise ValueError("scrub rate must be >= 0 bytes/s (0 = unthrottled)")
        self.bucket.set_rate(rate, trio.current_time())
        log.info("scrub rate set to %s bytes/s", rate or "unlimited")

    def start_pass(self) -> bool:
        """Start a full pass now; False if one is already running."""
        if self._running:
            return False
        self._start_requested = True
        self._kick.set()
        return True

    @property
    def running(self) -> bool:
        return self._running

    async def wait_pass(self) -> None:
        """Until the current (or next) pass completes."""
        await self._pass_done.wait()

    # ------------------------------------------------------------ persistence
    async def _load(self, p: int) -> None:
        d = self.svc.drives[p]
        try:
            raw = await d.get_meta(TABLE, CHECKPOINT_KEY)
        except DriveError as e:
            self._states[p] = "offline"
            self._errors_by[p] = str(e)
            return
        cur = None
        if raw is not None:
            try:
                cur = DriveCursor.unpack(raw)
            except (ValueError, KeyError, msgpack.UnpackException) as e:
                log.warning("scrub checkpoint on %s unreadable, starting over: %s", d.drive_id, e)
        if cur is None:
            # A new drive holds only fresh writes: count it as just scrubbed.
            cur = DriveCursor(finished=time.time())
        self.cursors[p] = cur
        self._disk[p] = id(d)
        if cur.running:
            self._resumed[p] = cur.objects
            log.info("scrub of %s resumes pass %d after %d objects", d.drive_id, cur.pass_no,
                     cur.objects)

    async def _save(self, p: int) -> None:
        try:
            await self.svc.drives[p].put_meta(TABLE, CHECKPOINT_KEY, self.cursors[p].pack())
        except DriveError as e:
            log.warning("scrub checkpoint on %s failed: %s", self.svc.drives[p].drive_id, e)

    # ------------------------------------------------------------ scheduling
    def _online(self, p: int) -> bool:
        return self.svc.drives[p].state == "online"  # DriveState is a StrEnum

    def _due(self) -> float | None:
        done = [c.finished for c in self.cursors.values() if c.finished is not None]
        if not done:
            return None
        return min(done) + self.interval

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        for p in self.positions:
            await self._load(p)
        task_status.started()
        while True:
            # A drive that is away keeps its cursor; its part of the pass resumes
            # when it is back, without holding up the others.
            resume = [p for p, c in self.cursors.items() if c.running and self._online(p)]
            due = self._due()
            if resume or self._start_requested or (due is not None and time.time() >= due):
                await self._run_pass(fresh=not resume)
                continue
            self._kick = trio.Event()
            wait = 60.0 if due is None else min(60.0, max(0.1, due - time.time()))
            with trio.move_on_after(wait):
                await self._kick.wait()

    async def _run_pass(self, *, fresh: bool) -> None:
        self._start_requested = False
        self._running = True
        if self._pass_done.is_set():
            self._pass_done = trio.Event()
        # A resumed pass keeps the drives that already finished it as they are.
        for p in list(self.cursors) if fresh else []:
            old = self.cursors[p]
            self.cursors[p] = DriveCursor(True, old.pass_no + 1, started=time.time())
            self._disk[p] = id(self.svc.drives[p])
            self._resumed.pop(p, None)
            await self._save(p)
        for p in self.positions:  # drives that could not be read at start-up
            if p not in self.cursors:
                await self._load(p)
                if p in self.cursors and not self.cursors[p].running:
                    old = self.cursors[p]
                    self.cursors[p] = DriveCursor(True, old.pass_no + 1, started=time.time())
        self.meter.reset()
        self.bucket.restart(trio.current_time())
        try:
            while True:
                async with trio.open_nursery() as outer:
                    outer.start_soon(self._measure)
                    async with trio.open_nursery() as nursery:
                        for p, c in self.cursors.items():
                            if c.running and self._online(p):
                                nursery.start_soon(self._scrub_drive, p)
                            elif c.running:
                                self._states[p] = "offline"
                    outer.cancel_scope.cancel()
                if any(c.running and self._online(p) for p, c in self.cursors.items()):
                    await trio.sleep(RETRY_OFFLINE)  # interrupted (e.g. no quorum): try again
                else:
                    break
        finally:
            self._running = False
        self.passes_completed += 1
        self._pass_done.set()
        log.info("scrub pass complete: %d objects, %d bytes, %d corrupt, %d missing fragments",
                 sum(c.objects for c in self.cursors.values()),
                 sum(c.bytes for c in self.cursors.values()),
                 sum(c.corrupt for c in self.cursors.values()),
                 sum(c.missing for c in self.cursors.values()))

    async def _measure(self) -> None:
        while True:
            self.meter.update(sum(c.bytes for c in self.cursors.values()), trio.current_time())
            await trio.sleep(1.0)

    # ------------------------------------------------------------ one drive
    async def _scrub_drive(self, p: int) -> None:
        d = self.svc.drives[p]
        if self._disk.get(p) != id(d):  # the disk manager put a new disk in this slot
            await self._load(p)
            if not self.cursors[p].running:
                return
        cur = self.cursors[p]
        self._states[p] = "scrubbing"
        self._errors_by.pop(p, None)
        last_save = trio.current_time()
        try:
            for bid in await self.svc.bucket_ids():
                if cur.bucket is not None and bid < cur.bucket:
                    continue
                after = cur.key if cur.bucket == bid else None
                while True:
                    page = await d.list_versions(bid, start_after=after, limit=PAGE)
                    for e in page:
                        await self._scrub_key(p, d, bid, e.key, e.versions or [])
                        cur.bucket, cur.key = bid, e.key
                        cur.objects += 1
                        if trio.current_time() - last_save >= self.checkpoint_every:
                            await self._save(p)
                            last_save = trio.current_time()
                    if len(page) < PAGE:
                        break
                    after = page[-1].key
            cur.running = False
            cur.finished = time.time()
            self._states[p] = "done"
        except DriveError as e:  # the drive went away: keep the cursor, retry later
            log.warning("scrub of %s interrupted: %s", d.drive_id, e)
            self._states[p] = "offline" if isinstance(e, DriveOffline) else "waiting"
            self._errors_by[p] = str(e)
            self.errors += 1
        except Exception as e:  # noqa: BLE001 -- e.g. the bucket table has no quorum now
            log.warning("scrub of %s interrupted: %s", d.drive_id, e)
            self._states[p] = "waiting"
            self._errors_by[p] = str(e)
            self.errors += 1
        finally:
            with trio.CancelScope(shield=True):
                await self._save(p)

    def _chunk(self) -> int:
        rate = self.bucket.rate
        return 4 << 20 if rate <= 0 or rate >= 16 << 20 else 256 << 10

    async def _scrub_key(self, p: int, d: Any, bid: bytes, key: bytes, versions: list[Any]) -> None:
        cur = self.cursors[p]
        damaged = False
        for rec in versions:
            for data_id, length, inline in self.svc.expected_streams(rec):
                try:
                    got = await self._read_through(cur, d, data_id, length, inline)
                    if got != length:
                        log.warning("scrub: %s on %s holds %d bytes, record says %d",
                                    data_id, d.drive_id, got, length)
                        cur.missing += 1
                        damaged = True
                except FragmentCorrupt as e:
                    log.warning("scrub: %s", e)
                    cur.corrupt += 1
                    damaged = True
                except FragmentMissing:
                    cur.missing += 1
                    damaged = True
                cur.fragments += 1
        check = await self.svc.placement_check(bid, key, p)
        cur.owned += 1 if check.checked else 0
        if check.missing:
            cur.records_missing += check.missing
            damaged = True
        if damaged:
            await self.queue.put(bid, key, "scrub")
            cur.queued += 1

    async def _read_through(
        self, cur: DriveCursor, d: Any, data_id: str, length: int, inline: bool
    ) -> int:
        """Read a whole stream (the drive verifies every block); returns its length."""
        if inline:
            await throttle(self.bucket, max(1, length))
            epoch = self.bucket.epoch
            buf = await d.read_fragment(data_id, 0, 1 << 62)
            cur.bytes += len(buf)
            self.paced.admitted(epoch, len(buf))
            return len(buf)
        off = 0
        while off < length:
            n = min(self._chunk(), length - off)
            await throttle(self.bucket, n)
            epoch = self.bucket.epoch
            buf = await d.read_fragment(data_id, off, n)
            off += len(buf)
            cur.bytes += len(buf)
            self.paced.admitted(epoch, len(buf))
            if len(buf) < n:
                break
        return off

    # ------------------------------------------------------------ statistics
    def statistics(self) -> ScrubberStatistics:
        drives = []
        for p in self.positions:
            c = self.cursors.get(p)
            d = self.svc.drives[p]
            st = self._states.get(p, "idle")
            if c is not None and not c.running and st == "scrubbing":
                st = "done"
            drives.append(DriveScrubStatistics(
                position=p, drive_id=d.drive_id, state=st,
                pass_no=c.pass_no if c else 0, bytes_scanned=c.bytes if c else 0,
                keys_scanned=c.objects if c else 0, fragments_checked=c.fragments if c else 0,
                corrupt=c.corrupt if c else 0, missing=c.missing if c else 0,
                resumed_from_keys=self._resumed.get(p, 0),
                cursor=(f"{c.bucket.hex()}/{(c.key or b'').decode('utf-8', 'replace')}"
                        if c and c.bucket else ""),
                error=self._errors_by.get(p, ""),
            ))
        cs = list(self.cursors.values())
        total = self._bytes_total()
        scanned = sum(c.bytes for c in cs)
        started = [c.started for c in cs if c.started]
        finished = [c.finished for c in cs if c.finished is not None]
        running = self._running or any(c.running for c in cs)
        now = trio.current_time()
        throttled = self.bucket.rate > 0
        rate = self.paced.rate(now) if throttled else self.meter.rate
        eta = self.paced.eta(total - scanned, now) if throttled else self.meter.eta(total - scanned)
        return ScrubberStatistics(
            state="running" if running else "idle",
            rate_limit=int(self.bucket.rate),
            rate=round(rate, 1) if running else 0.0,
            passes_completed=self.passes_completed,
            pass_started=min(started) if started else None,
            last_pass_finished=max(finished) if finished and not running else None,
            next_pass_due=None if running else self._due(),
            bytes_scanned=scanned,
            bytes_total=total,
            objects_checked=sum(c.owned for c in cs),
            fragments_checked=sum(c.fragments for c in cs),
            corrupt=sum(c.corrupt for c in cs),
            missing=sum(c.missing for c in cs),
            records_missing=sum(c.records_missing for c in cs),
            queued_for_repair=sum(c.queued for c in cs),
            errors=self.errors,
            queue_depth=len(self.queue.core),
            eta_s=round(eta, 1) if running and eta is not None else None,
            drives=tuple(drives),
        )

    def _bytes_total(self) -> int:
        total = 0
        for p in self.positions:
            stats = getattr(self.svc.drives[p], "statistics", None)
            if stats is not None:
                total += int(getattr(stats(), "bytes_stored", 0))
        return total
