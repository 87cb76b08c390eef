"""The heal queue: objects waiting for repair, persisted and bounded (MinIO's MRF).

Theory of operation
-------------------
Anything that notices an object below full redundancy -- a GET that needed
parity or met a bad block (``ObjectStore.on_degraded``), the scrubber, a deep
``object inspect`` -- puts ``(bucket id, key)`` here; the repair worker takes
entries out and repairs *every* version of that key, so the key is the unit
and duplicates collapse into one entry.

* **Bounded.**  At most ``capacity`` keys.  A push from the read path never
  waits: when the queue is full the entry is dropped and counted (the scrubber
  will find the object again).  Producers that can wait (the scrubber) use
  :meth:`HealQueue.put`, which blocks until there is room -- backpressure
  instead of loss.
* **Retry with backoff.**  An entry whose repair failed goes back with a
  ``not_before`` time; after ``MAX_ATTEMPTS`` failures it is dropped and
  counted.
* **Deferred is not failed.**  A repair that could not finish because a drive
  it needs is away (a host is down) or the version is younger than the commit
  grace is *deferred*: it comes back every ``DEFER_RETRY`` seconds without
  using up attempts, for at most ``DEFER_MAX_AGE`` (then the scrubber's
  placement check is the safety net).  :meth:`HealQueue.wake_deferred` makes
  every waiting entry due at once -- called when a peer host comes back, so a
  host that missed writes while it was down gets them within seconds.
* **A key re-reported while it is being repaired** is marked and re-armed when
  the repair finishes, so news that arrived mid-repair is not lost.
* **Persisted.**  The whole queue (at most ``capacity`` small entries) is
  rewritten atomically to ``path`` at most once a second while it changes, and
  once more at shutdown; a crash loses at most the last second of reports,
  which the scrubber covers.  :class:`HealQueueCore` is the pure part (values
  and a clock in, decisions out); :class:`HealQueue` adds trio and the file.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import msgpack
import trio

from titans3.core.crypto import write_atomic

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
BACKOFF = (5.0, 15.0, 60.0, 300.0)  # seconds before retry n (last value repeats)
DEFER_RETRY = 15.0  # seconds between tries of a deferred entry
DEFER_MAX_AGE = 86400.0  # a deferred entry older than this is dropped (the scrubber finds it)
PERSIST_EVERY = 1.0
FORMAT = 1

QueueKey = tuple[bytes, bytes]  # (bucket id, object key)


@dataclass(slots=True)
class HealEntry:
    bucket_id: bytes
    key: bytes
    source: str = "read"  # read | scrub | inspect | admin
    attempts: int = 0
    not_before: float = 0.0  # wall-clock seconds
    queued: float = 0.0
    in_flight: bool = False
    again: bool = False  # reported again while in flight

    @property
    def qkey(self) -> QueueKey:
        return (self.bucket_id, self.key)

    def pack(self) -> list[object]:
        return [self.bucket_id, self.key, self.source, self.attempts, self.not_before, self.queued]

    @classmethod
    def unpack(cls, raw: list[object]) -> HealEntry:
        b, k, src, att, nb, q = raw
        return cls(bytes(b), bytes(k), str(src), int(att), float(nb), float(q))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class HealQueueStatistics:
    state: str
    queue_depth: int
    in_flight: int
    capacity: int
    pushed: int
    dropped_full: int  # reports lost because the queue was full
    dropped_attempts: int  # entries given up after MAX_ATTEMPTS
    done: int
    oldest_age_s: float


class HealQueueCore:
    """The queue's rules, without I/O.  ``now`` is wall-clock seconds."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("heal queue capacity must be >= 1")
        self.capacity = capacity
        self.entries: OrderedDict[QueueKey, HealEntry] = OrderedDict()
        self.pushed = self.dropped_full = self.dropped_attempts = self.done_count = 0
        self.version = 0  # bumped on every change (persistence watches it)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def full(self) -> bool:
        return len(self.entries) >= self.capacity

    def push(self, bucket_id: bytes, key: bytes, source: str, now: float, delay: float = 0.0) -> bool:
        """Queue a key, due in ``delay`` seconds; False if it was dropped because
        the queue is full."""
        due = now + delay
        cur = self.entries.get((bucket_id, key))
        if cur is not None:
            if cur.in_flight:
                cur.again = True
            else:
                cur.not_before = min(cur.not_before, due)
            self.version += 1
            return True
        if self.full:
            self.dropped_full += 1
            return False
        self.entries[(bucket_id, key)] = HealEntry(bucket_id, key, source, 0, due, now)
        self.pushed += 1
        self.version += 1
        return True

    def take(self, now: float) -> HealEntry | None:
        """The oldest entry that is due, marked in flight (None if none is due)."""
        for e in self.entries.values():
            if not e.in_flight and e.not_before <= now:
                e.in_flight = True
                e.again = False
                self.version += 1
                return e
        return None

    def next_due(self) -> float | None:
        due = [e.not_before for e in self.entries.values() if not e.in_flight]
        return min(due) if due else None

    def finish(self, entry: HealEntry, now: float, *, retry: bool, deferred: bool = False) -> None:
        """The repair of ``entry`` ended: remove it, or (``retry``) re-arm it later;
        ``deferred`` re-arms without counting an attempt (see the module notes)."""
        e = self.entries.get(entry.qkey)
        if e is None:
            return
        e.in_flight = False
        self.version += 1
        if e.again:
            e.again = False
            e.attempts = 0
            e.not_before = now
            return
        if not retry:
            del self.entries[e.qkey]
            self.done_count += 1
            return
        if deferred:
            if now - e.queued > DEFER_MAX_AGE:
                del self.entries[e.qkey]
                self.dropped_attempts += 1
            else:
                e.not_before = now + DEFER_RETRY
            return
        e.attempts += 1
        if e.attempts >= MAX_ATTEMPTS:
            del self.entries[e.qkey]
            self.dropped_attempts += 1
            return
        e.not_before = now + BACKOFF[min(e.attempts - 1, len(BACKOFF) - 1)]

    def wake_deferred(self, now: float) -> int:
        """Make every waiting entry due now; returns how many were waiting."""
        n = 0
        for e in self.entries.values():
            if not e.in_flight and e.not_before > now:
                e.not_before = now
                n += 1
        if n:
            self.version += 1
        return n

    def in_flight(self) -> int:
        return sum(1 for e in self.entries.values() if e.in_flight)

    def oldest_age(self, now: float) -> float:
        if not self.entries:
            return 0.0
        return max(0.0, now - min(e.queued for e in self.entries.values()))

    # ---------------------------------------------------------- persistence
    def dump(self) -> bytes:
        return msgpack.packb(
            {"format": FORMAT, "entries": [e.pack() for e in self.entries.values()]},
            use_bin_type=True,
        )

    def load(self, raw: bytes) -> int:
        doc = msgpack.unpackb(raw, raw=False)
        if doc.get("format") != FORMAT:
            raise ValueError(f"unknown heal queue format {doc.get('format')!r}")
        n = 0
        for item in doc.get("entries", []):
            e = HealEntry.unpack(item)
            if e.qkey not in self.entries and not self.full:
                self.entries[e.qkey] = e
                n += 1
        return n


class HealQueue:
    """:class:`HealQueueCore` with waiting, a wake-up for the consumer and a file."""

    def __init__(self, path: Path | None, capacity: int) -> None:
        self.path = path
        self.core = HealQueueCore(capacity)
        self._changed = trio.Event()  # something was pushed or finished
        self._persisted = -1
        self._persist_lock = trio.Lock()
        self.loaded = 0
        if path is not None and path.exists():
            try:
                self.loaded = self.core.load(path.read_bytes())
                self._persisted = self.core.version
            except (OSError, ValueError, msgpack.UnpackException) as e:
                log.warning("heal queue %s unreadable, starting empty: %s", path, e)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    # ------------------------------------------------------------ producers
    def push_nowait(self, bucket_id: bytes, key: bytes, source: str = "read",
                    delay: float = 0.0) -> bool:
        """From any task on the loop (the read or write path): never waits, may drop."""
        ok = self.core.push(bucket_id, key, source, time.time(), delay)
        self._wake()
        return ok

    async def put(self, bucket_id: bytes, key: bytes, source: str = "scrub") -> None:
        """Queue a key, waiting for room if the queue is full."""
        while (bucket_id, key) not in self.core.entries and self.core.full:
            await self._changed.wait()
        self.core.push(bucket_id, key, source, time.time())
        self._wake()

    # ------------------------------------------------------------ consumer
    async def get(self) -> HealEntry:
        """The next due entry (in flight until :meth:`finish`)."""
        while True:
            e = self.core.take(time.time())
            if e is not None:
                return e
            due = self.core.next_due()
            timeout = 3600.0 if due is None else max(0.05, due - time.time())
            changed = self._changed
            with trio.move_on_after(timeout):
                await changed.wait()

    def finish(self, entry: HealEntry, *, retry: bool, deferred: bool = False) -> None:
        self.core.finish(entry, time.time(), retry=retry, deferred=deferred)
        self._wake()

    def wake_deferred(self) -> None:
        """Something that deferred repairs wait for came back (a peer host)."""
        if self.core.wake_deferred(time.time()):
            self._wake()

    async def wait_idle(self) -> None:
        """Until the queue is empty (for tests and benchmarks)."""
        while len(self.core):
            await self._changed.wait()

    # ------------------------------------------------------------ persistence
    async def run_persister(self) -> None:
        """Rewrite the file whenever the queue changed, at most once a second."""
        try:
            while True:
                await trio.sleep(PERSIST_EVERY)
                await self.persist()
        finally:
            with trio.CancelScope(shield=True), contextlib.suppress(OSError):
                await self.persist()

    async def persist(self) -> None:
        path = self.path
        if path is None:
            return
        async with self._persist_lock:
            if self.core.version == self._persisted:
                return
            version = self.core.version
            raw = self.core.dump()
            await trio.to_thread.run_sync(lambda: write_atomic(path, raw, mode=0o600))
            self._persisted = version

    def statistics(self) -> HealQueueStatistics:
        c = self.core
        inflight = c.in_flight()
        return HealQueueStatistics(
            state="busy" if inflight else ("waiting" if len(c) else "idle"),
            queue_depth=len(c),
            in_flight=inflight,
            capacity=c.capacity,
            pushed=c.pushed,
            dropped_full=c.dropped_full,
            dropped_attempts=c.dropped_attempts,
            done=c.done_count,
            oldest_age_s=round(c.oldest_age(time.time()), 1),
        )
