"""The rebalancer: after a ring change, move what the new ring places elsewhere.

Theory of operation
-------------------
Only the host that made the change (the document's ``coordinator``, see
:mod:`titans3.cluster.membership`) moves data, so two hosts never copy the same
fragment.  Each epoch (one ring version with an ``old_ring``):

1. copy every bucket record to the drives the old ring did not have (a new
   host's drives then answer bucket lookups like everyone else's);
2. count the keys (a listing pass, no data read) so progress and ETA mean
   something;
3. walk every bucket's keys in order (``walk_keys`` over all drives) and, for
   each key whose partition changed, move it (``move_key``: copy + commit on
   the new drive, then free the old copy);
4. when a whole pass moved everything without an error, tell the membership
   (``epoch_done``), which publishes the next epoch or retires the old ring.
   A pass with errors (a drive down) is repeated after ``RETRY_DELAY``.

**Throttled**: ``rate`` bytes/s of moved fragments (0 = as fast as the drives
go), so a ring change does not starve client traffic; adjustable at run time.

**Resumable**: the cursor ``(ring version, bucket id, last key)`` and the
counters are saved in ``<state>/rebalance.json`` every ``SAVE_EVERY`` seconds;
after a restart the walk continues after the saved key of the same version
(keys before it were moved already; moving one again is a no-op because the
new drive holds its versions).  The worker imports nothing of the object layer:
the runtime hands it ``move`` and ``walk`` (like the other workers).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from titans3.core.crypto import write_atomic
from titans3.core.errors import DriveError, ServiceUnavailable
from titans3.workers.throttle import TokenBucket, throttle

log = logging.getLogger(__name__)

CURSOR_FILE = "rebalance.json"
SAVE_EVERY = 1.0
RETRY_DELAY = 2.0
POLL = 0.5


@dataclass(frozen=True, slots=True)
class RebalanceStatistics:
    state: str  # idle | counting | moving | retrying
    ring_version: int
    from_version: int | None
    keys_total: int
    keys_scanned: int
    keys_moved: int
    fragments_moved: int
    bytes_moved: int
    errors: int
    rate_limit: float  # bytes/s, 0 = unthrottled
    progress: float  # 0..1 of the current epoch
    eta_seconds: float | None
    epochs_completed: int


class Rebalancer:
    def __init__(
        self,
        state_path: Path,
        membership: Callable[[], Any],  # () -> Membership | None
        store: Callable[[], Any],  # () -> the object layer's StoreContext (objects/context.py)
        move: Callable[..., Awaitable[Any]],  # (store, bucket_id, key, old, new) -> MoveOutcome
        walk: Callable[..., AsyncIterator[Any]],  # (drives, bucket_id, start_after=) -> KeyRecords
        copy_buckets: Callable[..., Awaitable[None]],  # (store, old_ring, new_ring)
        *,
        rate: float = 0.0,
    ) -> None:
        self.path = state_path / CURSOR_FILE
        self._membership = membership
        self._store = store
        self._move = move
        self._walk = walk
        self._copy_buckets = copy_buckets
        self.state = "idle"
        self.version = 0
        self.from_version: int | None = None
        self.bucket = b""
        self.key: bytes | None = None
        self.total = self.scanned = self.moved = self.fragments = self.bytes = self.errors = 0
        self.epochs = 0
        self._started = 0.0
        self._scanned_at_start = 0
        self._saved = 0.0
        self.bucket_rate = TokenBucket(rate)

    # ------------------------------------------------------------ cursor
    def _load(self, version: int) -> None:
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError):
            doc = {}
        self.version = version
        if doc.get("version") == version:
            self.bucket = bytes.fromhex(doc.get("bucket", ""))
            self.key = bytes.fromhex(doc["key"]) if doc.get("key") is not None else None
            for name in ("scanned", "moved", "fragments", "bytes"):
                setattr(self, name, int(doc.get(name, 0)))
            log.info("rebalance of ring %d resumes after %d keys", version, self.scanned)
        else:
            self.bucket, self.key = b"", None
            self.scanned = self.moved = self.fragments = self.bytes = 0
        self.errors = 0

    def _save(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._saved < SAVE_EVERY:
            return
        self._saved = now
        doc = {"version": self.version, "bucket": self.bucket.hex(),
               "key": self.key.hex() if self.key is not None else None, "scanned": self.scanned,
               "moved": self.moved, "fragments": self.fragments, "bytes": self.bytes}
        write_atomic(self.path, json.dumps(doc).encode(), mode=0o644)

    # ------------------------------------------------------------ loop
    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            ms = self._membership()
            if ms is None or not ms.coordinating:
                self.state = "idle"
                self.version = ms.version if ms is not None else 0
                self.from_version = None
                await trio.sleep(POLL)
                continue
            version = ms.version
            try:
                clean = await self._epoch(ms, version)
            except (ServiceUnavailable, DriveError) as e:
                # Too few drives answered a bucket-table or listing read (a peer
                # just marked down, e.g. a heartbeat lost under load): retry the
                # pass.  Letting it escape ended the whole daemon mid-join.
                log.warning("rebalance of ring %d: %s; retrying in %.0f s", version, e, RETRY_DELAY)
                self.errors += 1
                clean = False
            if clean:
                self.epochs += 1
                self.state = "idle"
                await ms.epoch_done(version)
            else:
                self.state = "retrying"
                await trio.sleep(RETRY_DELAY)

    async def _epoch(self, ms: Any, version: int) -> bool:
        store = self._store()
        old, new = store.old_ring, store.ring
        if old is None or new.version != version:
            return False
        if self.version != version or self.state in ("idle", "retrying"):
            self._load(version)
        self.from_version = old.version
        self.state = "counting"
        await self._copy_buckets(store, old, new)
        buckets = sorted(b.bucket_id for b in await store.buckets.list())
        self.total = 0
        for bid in buckets:
            async for _ in self._walk(store.drives, bid):
                self.total += 1
        self.state = "moving"
        self._started, self._scanned_at_start = time.monotonic(), self.scanned
        clean = True
        for bid in buckets:
            if bid < self.bucket:
                continue
            start = self.key if bid == self.bucket else None
            if bid != self.bucket:
                self.bucket, self.key = bid, None
            async for kr in self._walk(store.drives, bid, start_after=start):
                if ms.version != version:
                    return False  # a newer document arrived; start over with it
                p = new.partition_of(bid, kr.key)
                if _ids(old, p) != _ids(new, p):
                    out = await self._move(store, bid, kr.key, old, new)
                    await throttle(self.bucket_rate, out.bytes)
                    self.fragments += out.fragments
                    self.bytes += out.bytes
                    self.moved += 1
                    if out.errors:
                        clean = False
                        self.errors += len(out.errors)
                        log.warning("rebalance: %r: %s", kr.key, "; ".join(out.errors[:3]))
                self.scanned += 1
                if clean:  # the cursor only passes keys that moved completely
                    self.key = kr.key
                    self._save()
        self._save(force=True)
        if clean:
            self.bucket, self.key = b"\xff" * 16, None
            self._save(force=True)
        else:  # the next pass starts from the beginning again (moving is idempotent)
            self.bucket, self.key = b"", None
            self.scanned = 0
            self._save(force=True)
        return clean

    def statistics(self) -> RebalanceStatistics:
        progress = min(1.0, self.scanned / self.total) if self.total else (1.0 if self.state == "idle" else 0.0)
        eta: float | None = None
        done_now = self.scanned - self._scanned_at_start
        if self.state == "moving" and done_now > 0 and self.total:
            rate = done_now / max(1e-6, time.monotonic() - self._started)
            eta = max(0.0, (self.total - self.scanned) / rate)
        return RebalanceStatistics(
            state=self.state, ring_version=self.version, from_version=self.from_version,
            keys_total=self.total, keys_scanned=self.scanned, keys_moved=self.moved,
            fragments_moved=self.fragments, bytes_moved=self.bytes, errors=self.errors,
            rate_limit=self.bucket_rate.rate,
            progress=round(progress, 4), eta_seconds=round(eta, 1) if eta is not None else None,
            epochs_completed=self.epochs,
        )


def _ids(ring: Any, p: int) -> list[str]:
    return [ring.members[i].drive_id for i in ring.table[p]]
