"""DriveGuard: how LocalDrive runs blocking work -- health-checked, counted, errors typed.

Every call a LocalDrive (or a part it holds, through ``tables.DriveIO``) makes
against its disk goes through one guard.  Invariants it keeps:

* **Health before every blocking call.**  An identity probe (health.py, ~2 us)
  runs before each call, except appends to a file already open and inline
  reads within PROBE_TTL of the last probe that passed.
* **An I/O failure is classified once, here.**  A full disk (ENOSPC, LMDB map
  full) raises ``DriveFull`` and is counted apart -- the disk is fine and can
  still serve reads; any other failure counts in ``errors`` (EIO and kin also
  in ``medium_errors``), and one that means the disk is gone marks the drive
  OFFLINE.  From then on every call raises ``DriveOffline`` without touching
  the disk; only the drive's ``check()`` sets ``state`` back.
* **Blocking work runs in worker threads** through the drive's one
  CapacityLimiter, except point lookups (``fast``), which run on the event
  loop until one of them stalls on a major page fault (see :meth:`fast`).
* ``inflight`` and ``abandoned`` count calls still using the disk, so the drive
  reopens or closes it only when none is.

The guard holds the drive's ``state``; the drive's lifecycle (open, check,
close) sets it, the guard only ever demotes ONLINE to OFFLINE.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import lmdb
import trio

from titans3.core import metrics
from titans3.core.errors import DriveError, DriveFull, DriveOffline
from titans3.drive import health
from titans3.drive.faults import FaultInjector
from titans3.drive.index import Index, WriteContext
from titans3.drive.protocol import DriveState
from titans3.drive.stats import statvfs_bytes

# The drive's log: operators grep one logger for one drive's story.
log = logging.getLogger("titans3.drive.local")

T = TypeVar("T")
FAST_BUDGET = 0.02  # s: an inline metadata read slower than this demotes the drive
SLOW_PENALTY = 30  # s
FULL_MEMORY = 60.0  # s a drive that refused a write for space is shown "full" (unless freed)
FREED_MARGIN = 8 << 20  # bytes freed since that refusal that make it writable again
PROBE_TTL = 0.1  # s: an inline read trusts an identity probe this recent (writes always probe)


class DriveGuard:
    """The drive's guarded execution; implements ``tables.DriveIO``.

    ``drive_id`` is a callable: the id is known only once the drive is opened."""

    def __init__(
        self,
        root: Path,
        *,
        index: Index,
        limiter: trio.CapacityLimiter,
        drive_id: Callable[[], str],
        faults: FaultInjector | None = None,
    ) -> None:
        self._root = root
        self._index = index
        self._limiter = limiter
        self._drive_id = drive_id
        self._faults = faults
        self.state = DriveState.OFFLINE
        self.identity_key = (0, 0)
        self._root_str = str(root)
        self._identity_path = str(root / health.IDENTITY_FILE)
        self.inflight = 0
        self.abandoned = 0  # abandoned read threads still running (see run)
        self._lock = threading.Lock()  # counters touched from worker threads
        self.errors = 0
        self.full_errors = 0  # writes refused for lack of space (ENOSPC, LMDB map full)
        self.medium_errors = 0  # EIO and kin: the disk failed a read or write (health.py)
        self._full_at = -FULL_MEMORY  # monotonic time of the last one
        self._free_at_full = 0  # bytes available right after it
        self.slow_until = 0.0  # monotonic time until which fast reads use threads
        self._probed_at = -PROBE_TTL  # monotonic time of the last identity probe that passed

    # ================================================================ checks, accounting
    def require_online(self) -> None:
        if self.state is not DriveState.ONLINE:
            raise DriveOffline(self._drive_id() or self._root_str, self.state.value)

    def probe(self) -> None:
        health.probe(self._root_str, self.identity_key, self._identity_path)
        self._probed_at = time.monotonic()

    def count_error(self) -> None:
        """A failure found above the disk (a corrupt fragment): counted, not classified."""
        with self._lock:
            self.errors += 1

    def io_failed(self, e: BaseException) -> DriveError:
        drive_id = self._drive_id()
        if health.full_error(e):
            # Not an error of the disk: counted apart, so a full drive is not "failing".
            with self._lock:
                self.full_errors += 1
                self._full_at = time.monotonic()
            with contextlib.suppress(OSError):
                self._free_at_full = statvfs_bytes(self._root)[1]
            return DriveFull(drive_id, f"no space: {e}")
        with self._lock:
            self.errors += 1
            if health.medium_error(e):
                self.medium_errors += 1
        if not health.offline_error(e):
            return DriveError(drive_id, f"{type(e).__name__}: {e}")
        if self.state is DriveState.ONLINE:
            log.error("drive %s: I/O failure, marking offline: %s", drive_id, e)
            self.state = DriveState.OFFLINE
        return DriveOffline(drive_id, f"I/O failure: {e}")

    def is_full(self, free: int) -> bool:
        """A write was refused for space within FULL_MEMORY and no room was made since.

        "Room" is FREED_MARGIN more available bytes than at the refusal: one
        freed segment is not enough to call the drive writable again.
        """
        if time.monotonic() - self._full_at >= FULL_MEMORY:
            return False
        return free < self._free_at_full + FREED_MARGIN

    # ================================================================ running work
    def guarded(self, fn: Callable[..., T], args: tuple[Any, ...], probe: bool = True,
                kind: str = "") -> T:
        try:
            if probe:
                self.probe()
            if kind and self._faults is not None:
                self._faults.apply(kind)
            return fn(*args)
        except DriveError:
            raise
        except (OSError, lmdb.Error) as e:
            raise self.io_failed(e) from e

    async def run(self, fn: Callable[..., T], *args: Any, probe: bool = True,
                  kind: str = "", abandon: bool = False) -> T:
        """Blocking ``fn(*args)`` in a worker thread, health-checked (``probe``:
        the identity check first, skipped for appends to a file already open;
        ``kind``: "read"/"write" for data-plane calls, where injected faults apply).

        ``abandon``: a cancelled caller does not wait for the thread (reads
        only: they change nothing a caller relies on).  A disk that hangs in a
        read would otherwise hold every request that hedged around it until the
        syscall returns.  The thread still holds its limiter token, and counts
        in ``abandoned`` (close waits for it), until it finishes."""
        self.require_online()
        self.inflight += 1
        t0 = time.perf_counter()
        try:
            if not abandon:
                return await trio.to_thread.run_sync(self.guarded, fn, args, probe, kind,
                                                     limiter=self._limiter)
            state = {"done": False, "left": False}

            def work() -> T:
                try:
                    return self.guarded(fn, args, probe, kind)
                finally:
                    with self._lock:
                        state["done"] = True
                        if state["left"]:
                            self.abandoned -= 1

            try:
                return await trio.to_thread.run_sync(work, limiter=self._limiter,
                                                     abandon_on_cancel=True)
            except trio.Cancelled:
                with self._lock:
                    if not state["done"]:
                        state["left"] = True
                        self.abandoned += 1
                raise
        finally:
            self.inflight -= 1
            metrics.observe_drive(self._drive_id(), "io", time.perf_counter() - t0)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(txn, *args)`` in an LMDB read transaction, in a worker thread."""
        return await self.run(self._index.read_sync, fn, *args)

    async def fast(self, fn: Callable[..., T], *args: Any) -> T:
        """A point lookup (record, table entry, inline blob) run on the event loop.

        An LMDB get is ~1 µs, a thread hop ~100 µs plus GIL hand-offs, and small
        GETs do ten of them.  The risk of running inline is a disk that stalls
        inside a page fault and stalls the loop with it: an inline read slower
        than FAST_BUDGET *that took a major page fault* demotes this drive to
        worker threads for SLOW_PENALTY seconds, so a failing disk can cost the
        loop at most one stall per period.  Wall time alone is no evidence: on
        a busy machine the kernel preempts the loop mid-lookup for tens of ms,
        and demoting on that (as this once did) made every small GET pay ten
        thread hops exactly when the CPU was scarcest -- the GET path got
        slower with concurrency.  A disk stall under an mmap read is always a
        major fault (the page had to come from the device).
        """
        if self.slow_until > time.monotonic():
            return await self.run(fn, *args)
        result = self.fast_sync(fn, *args)
        await trio.lowlevel.checkpoint()
        return result

    def fast_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """The body of :meth:`fast`, on the calling (loop) thread, no checkpoint."""
        self.require_online()
        t0 = time.perf_counter()
        _FAULTS.refresh(t0)
        try:
            # Two stats per lookup were ~9 % of a small GET; a drive that is
            # fenced or replaced is still noticed within PROBE_TTL.
            return self.guarded(fn, args, time.monotonic() - self._probed_at >= PROBE_TTL)
        finally:
            took = time.perf_counter() - t0
            if took > FAST_BUDGET and _FAULTS.rose():
                self.slow_until = time.monotonic() + SLOW_PENALTY
                log.warning("drive %s: metadata read took %.0f ms; using worker threads for %ds",
                            self._drive_id(), took * 1e3, SLOW_PENALTY)

    async def write(self, fn: Callable[[WriteContext], T]) -> T:
        """``fn(ctx)`` in a grouped, durable write transaction."""
        if self._faults is not None:
            await self.run(lambda: None, kind="write")
        self.require_online()
        self.inflight += 1
        t0 = time.perf_counter()
        try:
            return await self._index.write(fn)
        except DriveError:
            raise
        except (OSError, lmdb.Error) as e:
            raise self.io_failed(e) from e
        finally:
            self.inflight -= 1
            metrics.observe_drive(self._drive_id(), "commit", time.perf_counter() - t0)

    async def ensure_table(self, name: str) -> None:
        self.inflight += 1
        try:
            await self._index.ensure_table(name)
        except (OSError, lmdb.Error) as e:
            raise self.io_failed(e) from e
        finally:
            self.inflight -= 1


class _FaultWatch:
    """Did the event-loop thread take a major page fault lately?

    ``getrusage`` costs ~0.7 µs, and two per lookup were 6 % of a small GET's
    object-layer CPU, so the baseline is refreshed at most every 50 ms: a slow
    lookup is blamed on the disk when the thread's major-fault count rose
    since then.  A fault from other loop work in that window costs one
    demotion period at worst.  Only the loop thread calls this."""

    INTERVAL = 0.05

    def __init__(self) -> None:
        self._at = -1.0
        self._faults = 0

    @staticmethod
    def _now() -> int:
        return resource.getrusage(resource.RUSAGE_THREAD).ru_majflt

    def refresh(self, t: float) -> None:
        if t - self._at >= self.INTERVAL:
            self._at, self._faults = t, self._now()

    def rose(self) -> bool:
        return self._now() > self._faults


_FAULTS = _FaultWatch()
