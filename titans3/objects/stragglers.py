"""Not waiting for the slowest drive: a write phase ends at its quorum plus a bounded cutoff.

Theory of operation
-------------------
A write waits for its drives several times: opening the fragment files, each
segment's fragments, finishing (fdatasync), committing the records.  Waiting
for *every* drive at each of these made one slow disk the latency of every
PUT.  :meth:`Phases.gather` runs one such phase and returns once every drive
finished it -- or once ``quorum`` drives finished it *successfully* and the
rest were given ``Cutoff.extra(t)`` more seconds, ``t`` being what the
quorum itself took.  A drive still busy then is a *straggler*: the write goes
on without it for the rest of the stream, exactly as if that drive had failed,
so the write is acknowledged only on ``W`` drives that finished every phase
(durability first: the cutoff never starts before ``W`` succeeded) and is
reported as a partial write -- the heal queue restores the missed fragment
``repair_grace`` seconds later (docs/durability.md, "Slow drives").

A straggler's call cannot be cancelled: a worker thread in ``pwrite`` or
``fdatasync`` runs to its end, and trio waits for it.  So with a background
nursery every call runs in a background task and the caller only stops
waiting.  What has to follow a call (aborting its fragment writer: close and
unlink the staging file) is queued with :meth:`Phases.after` and runs when the
call returns, never beside it (a fragment writer is single-task).  A late
*commit* simply lands: the version it records is already durable on ``W``
drives, so it only makes that drive current.  If the version was superseded
or deleted by then, the record is one a fragment-short drive would hold
anyway: readers ignore a version on fewer than ``W`` drives and GC removes it
and its data after the commit window (objects/resolve.py, workers/gc.py).

A drive with a cut-off call still running is *backlogged* (:class:`Backlog`):
new writes leave it out from the start while ``W`` others are online, so a
stalled disk collects at most about one stuck call per concurrent write
instead of one per write -- its worker threads (which its reads and the
status page's capacity query share) stay free.  Its fragments of those
writes are partial writes as well.

Without a background nursery (a store that is not running, unit tests of
parts) or with the cutoff off, a phase waits for every drive, as before.
:class:`Cutoff` is the pure policy.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import trio

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[bool]]  # True: this drive finished the phase


@dataclass(frozen=True, slots=True)
class Cutoff:
    """How long a phase waits for stragglers once its quorum finished.

    ``floor`` seconds at least (``<= 0``: no cutoff, wait for every drive),
    or ``factor`` times what the quorum took, whichever is longer: a machine
    that is slow everywhere stretches the allowance with it, so healthy drives
    are not cut for sharing a busy CPU."""

    floor: float = 1.0
    factor: float = 4.0

    @property
    def enabled(self) -> bool:
        return self.floor > 0

    def extra(self, quorum_took: float) -> float:
        return max(self.floor, self.factor * max(0.0, quorum_took))


class Backlog:
    """Drives (by id) with cut-off calls still running, shared by a store's writes."""

    def __init__(self) -> None:
        self._calls: dict[str, int] = {}

    def busy(self, drive_id: str) -> bool:
        return self._calls.get(drive_id, 0) > 0

    def add(self, drive_id: str) -> None:
        self._calls[drive_id] = self._calls.get(drive_id, 0) + 1

    def done(self, drive_id: str) -> None:
        left = self._calls.get(drive_id, 0) - 1
        if left > 0:
            self._calls[drive_id] = left
        else:
            self._calls.pop(drive_id, None)

    def statistics(self) -> dict[str, int]:
        return dict(self._calls)


class Phases:
    """The phases of one write on its drives (indexed by fragment position).

    ``ids``: the drive id at a position, for the shared ``backlog``."""

    def __init__(self, spawn: Callable[..., None] | None, cutoff: Cutoff,
                 ids: Callable[[int], str] | None = None, backlog: Backlog | None = None) -> None:
        self._spawn = spawn if cutoff.enabled else None
        self.cutoff = cutoff
        self._ids = ids
        self._backlog = backlog
        self._late: dict[int, str] = {}  # position -> drive id counted in the backlog
        self._busy: dict[int, trio.Event] = {}
        self._after: dict[int, list[Callable[[], Awaitable[object]]]] = {}
        self.cut: set[int] = set()  # every position ever left behind

    def busy(self, i: int) -> bool:
        return i in self._busy

    async def gather(self, jobs: Mapping[int, Job], quorum: int) -> list[int]:
        """Run one phase; returns the positions cut off (still running in the background)."""
        if self._spawn is None:
            async with trio.open_nursery() as nursery:
                for job in jobs.values():
                    nursery.start_soon(job)
            return []
        pending = set(jobs)
        good = 0
        changed = trio.Event()

        def finished(i: int, ok: bool) -> None:
            nonlocal good
            pending.discard(i)
            good += ok
            changed.set()

        for i, job in jobs.items():
            self._busy[i] = trio.Event()
            self._spawn(self._run, i, job, finished)
        t0 = trio.current_time()
        deadline = math.inf
        while pending:
            now = trio.current_time()
            if good >= quorum and deadline == math.inf:
                deadline = now + self.cutoff.extra(now - t0)
            if now >= deadline:
                break
            with trio.move_on_at(deadline):
                await changed.wait()
            changed = trio.Event()
        if pending:
            log.warning("write phase: positions %s cut off after %.2fs (quorum %d finished)",
                        sorted(pending), trio.current_time() - t0, quorum)
            self.cut.update(pending)
            if self._ids is not None and self._backlog is not None:
                for i in pending:
                    self._late[i] = self._ids(i)
                    self._backlog.add(self._late[i])
        return sorted(pending)

    async def _run(self, i: int, job: Job, finished: Callable[[int, bool], None]) -> None:
        ok = False
        try:
            ok = bool(await job())
        except Exception as e:  # noqa: BLE001 -- a background task must not end the store's nursery
            log.warning("write to position %d failed: %r", i, e)
        finally:
            done = self._busy.pop(i, None)
            if done is not None:
                done.set()
            finished(i, ok)
            late = self._late.pop(i, None)
            if late is not None and self._backlog is not None:
                self._backlog.done(late)
            with trio.CancelScope(shield=True):
                for fn in self._after.pop(i, []):
                    await _quietly(fn)

    async def after(self, i: int, fn: Callable[[], Awaitable[object]]) -> None:
        """Run ``fn`` once position ``i``'s call in flight (if any) returned."""
        if i in self._busy:
            self._after.setdefault(i, []).append(fn)
            await trio.lowlevel.checkpoint()
            return
        await _quietly(fn)


async def _quietly(fn: Callable[[], Awaitable[object]]) -> None:
    try:
        await fn()
    except Exception as e:  # noqa: BLE001 -- cleanup is best effort: staging GC catches leftovers
        log.debug("cleanup after a write failed: %r", e)
