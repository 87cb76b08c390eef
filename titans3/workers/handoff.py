"""Hint replay: moving handed-off fragments back to their primaries (DESIGN §7).

Theory of operation
-------------------
While a primary drive is down, PUTs stage its fragment on a handoff drive and
leave a hint there (``titans3.objects.handoff``).  This worker scans the hints
of this host's drives every ``interval`` seconds (and at once after
:meth:`HandoffReplayer.kick`) and, for each hint whose primary is online again,
copies the fragment and record back, then deletes the handoff copy.

The worker sits below the object layer: it gets one coroutine per pass,
``replay(position)``, that does the work for one local drive and returns a
counter record (``moved``, ``bytes_moved``, ``pending``, ``errors``).  A scan
of a drive with no hints is one empty LMDB range read, so the short interval
costs nothing on a healthy host; hints are replayed within seconds of the
failure detector (heartbeats) seeing the primary again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import trio

log = logging.getLogger(__name__)


class PassResult(Protocol):
    moved: int
    bytes_moved: int
    pending: int
    errors: int
    held: int


@dataclass(frozen=True, slots=True)
class HandoffStatistics:
    state: str  # idle | replaying
    passes: int
    hints_replayed: int
    bytes_replayed: int
    hints_pending: int  # after the last pass: hints whose primary is still down
    hints_held: int  # after the last pass: hints still on this host's drives
    errors: int
    last_pass: float | None  # wall clock


class HandoffReplayer:
    def __init__(
        self, replay: Callable[[int], Awaitable[PassResult]], positions: Sequence[int], *,
        interval: float = 2.0,
    ) -> None:
        self._replay = replay
        self.positions = list(positions)
        self.interval = interval
        self._kick = trio.Event()
        self._state = "idle"
        self._passes = 0
        self._moved = 0
        self._bytes = 0
        self._pending = 0
        self._held = 0
        self._errors = 0
        self._last: float | None = None

    def kick(self) -> None:
        """Run a pass now (e.g. a peer came back)."""
        self._kick.set()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await self.run_pass()
            with trio.move_on_after(self.interval):
                await self._kick.wait()
            self._kick = trio.Event()

    async def run_pass(self) -> None:
        self._state = "replaying"
        pending = held = 0
        try:
            for pos in self.positions:
                try:
                    r = await self._replay(pos)
                except Exception as e:  # noqa: BLE001 -- a bad pass must not stop the worker
                    log.warning("handoff: pass on drive position %d failed: %s", pos, e)
                    self._errors += 1
                    continue
                self._moved += r.moved
                self._bytes += r.bytes_moved
                self._errors += r.errors
                pending += r.pending
                held += r.held
        finally:
            self._state = "idle"
        self._pending = pending
        self._held = held
        self._passes += 1
        self._last = time.time()

    def statistics(self) -> HandoffStatistics:
        return HandoffStatistics(self._state, self._passes, self._moved, self._bytes,
                                 self._pending, self._held, self._errors, self._last)
