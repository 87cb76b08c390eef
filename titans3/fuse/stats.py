"""What a mount reports: ``statistics()`` for the status page, metrics and titanctl."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MountStatistics:
    bucket: str
    prefix: str
    mountpoint: str
    backend: str  # "store" (in the daemon) or the endpoint URL
    state: str  # "mounting", "mounted", "degraded" (the last call failed), "unmounted", "failed"
    dirty_bytes: int
    open_files: int
    inodes: int
    ops: int
    ops_per_s: float
    bytes_read: int
    bytes_written: int
    errors: int
    last_error: str
    last_error_age_s: float | None


class Counters:
    """Operation counts, with a rate over the last few seconds."""

    WINDOW = 10.0

    def __init__(self) -> None:
        self.ops = 0
        self.errors = 0
        self.bytes_read = 0
        self.bytes_written = 0
        self.by_op: dict[str, int] = {}
        self._samples: deque[tuple[float, int]] = deque()

    def op(self, name: str) -> None:
        self.ops += 1
        self.by_op[name] = self.by_op.get(name, 0) + 1

    def error(self) -> None:
        self.errors += 1

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        self._samples.append((now, self.ops))
        while len(self._samples) > 2 and self._samples[1][0] < now - self.WINDOW:
            self._samples.popleft()
        t0, n0 = self._samples[0]
        return (self.ops - n0) / (now - t0) if now > t0 else 0.0
