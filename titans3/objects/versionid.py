"""Time-ordered 128-bit version ids (DESIGN §4).

Theory of operation
-------------------
An id is ``48-bit wall-clock milliseconds | 16-bit logical counter | 64-bit
node id``, rendered as 32 lowercase hex characters so that *string order is
time order* -- drives and listings compare ids as plain strings.

The clock part is a hybrid logical clock: it never goes backwards within a
process (a wall clock that steps back is absorbed by the logical counter), and
:meth:`HybridClock.observe` lets a node move past ids it has seen from peers, so
a later write on any node gets a larger id than an earlier acknowledged one it
knows about.  The node id (random per process unless given) makes ids from
different writers distinct, so two concurrent PUTs never produce the same id
and "last writer wins" is a total order.
"""

from __future__ import annotations

import os
import threading
import time

_MS_MASK = (1 << 48) - 1
_LOGICAL_MAX = (1 << 16) - 1


class HybridClock:
    def __init__(self, node_id: int | None = None, *, wall_ms=None) -> None:  # type: ignore[no-untyped-def]
        self.node_id = node_id if node_id is not None else int.from_bytes(os.urandom(8), "big")
        self._wall_ms = wall_ms or (lambda: time.time_ns() // 1_000_000)
        self._last_ms = 0
        self._logical = 0
        self._lock = threading.Lock()

    def _tick(self) -> tuple[int, int]:
        with self._lock:
            now = self._wall_ms() & _MS_MASK
            if now > self._last_ms:
                self._last_ms, self._logical = now, 0
            elif self._logical < _LOGICAL_MAX:
                self._logical += 1
            else:  # 65,536 ids in one millisecond: borrow the next millisecond
                self._last_ms, self._logical = self._last_ms + 1, 0
            return self._last_ms, self._logical

    def new_id(self) -> str:
        ms, logical = self._tick()
        return f"{ms:012x}{logical:04x}{self.node_id & ((1 << 64) - 1):016x}"

    def observe(self, version_id: str) -> None:
        """Move the clock past an id seen elsewhere."""
        ms, logical = int(version_id[:12], 16), int(version_id[12:16], 16)
        with self._lock:
            if (ms, logical) > (self._last_ms, self._logical):
                self._last_ms, self._logical = ms, logical


def is_version_id(s: str) -> bool:
    return len(s) == 32 and all(c in "0123456789abcdef" for c in s)


def timestamp_ns(version_id: str) -> int:
    return int(version_id[:12], 16) * 1_000_000
