"""The last hour of S3 traffic, sampled server-side for the status page's graphs.

Theory of operation
-------------------
Every ``interval`` seconds :meth:`History.sample` takes the request observer's
running :class:`~titans3.core.metrics.Totals` and stores the *difference* to
the previous snapshot as one :class:`Sample`: requests, errors and bytes per
second, and latency percentiles computed from the histogram bucket deltas the
way Prometheus' ``histogram_quantile`` does (linear within the bucket).  The
ring buffer holds an hour (``ceil(3600 / interval)`` samples), so memory is
fixed and a restart starts an empty graph.  Sampling is pure arithmetic on
integers; :meth:`run` is the trio loop around it.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import trio

from titans3.core.metrics import LATENCY_BUCKETS, TOTALS, Totals

WINDOW = 3600.0


@dataclass(frozen=True, slots=True)
class Sample:
    t: float  # time.time() at the end of the interval
    requests: float  # per second
    errors: float  # status >= 400, per second
    server_errors: float  # status >= 500, per second
    bytes_in: float  # per second
    bytes_out: float  # per second
    p50: float | None  # seconds; None without requests
    p99: float | None


def quantile(q: float, counts: list[int]) -> float | None:
    """The ``q`` quantile of a latency histogram given per-bucket counts
    (``LATENCY_BUCKETS`` upper bounds, plus the +Inf bucket last)."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, c in enumerate(counts):
        if seen + c >= rank and c:
            lower = LATENCY_BUCKETS[i - 1] if i > 0 else 0.0
            if i >= len(LATENCY_BUCKETS):
                return LATENCY_BUCKETS[-1]  # beyond the last bound: report the bound
            upper = LATENCY_BUCKETS[i]
            return lower + (upper - lower) * (rank - seen) / c
        seen += c
    return LATENCY_BUCKETS[-1]


class History:
    def __init__(self, interval: float = 10.0, *, totals: Totals = TOTALS,
                 clock: Callable[[], float] = time.time) -> None:
        self.interval = interval
        self.samples: deque[Sample] = deque(maxlen=max(2, math.ceil(WINDOW / interval)))
        self._totals = totals
        self._clock = clock
        self._prev = totals.snapshot()
        self._prev_t = clock()

    def sample(self) -> Sample:
        now, cur = self._clock(), self._totals.snapshot()
        dt = max(now - self._prev_t, 1e-6)
        p = self._prev
        lat = [a - b for a, b in zip(cur.latency, p.latency, strict=True)]
        s = Sample(
            t=now,
            requests=(cur.requests - p.requests) / dt,
            errors=(cur.errors - p.errors) / dt,
            server_errors=(cur.server_errors - p.server_errors) / dt,
            bytes_in=(cur.bytes_in - p.bytes_in) / dt,
            bytes_out=(cur.bytes_out - p.bytes_out) / dt,
            p50=quantile(0.5, lat),
            p99=quantile(0.99, lat),
        )
        self.samples.append(s)
        self._prev, self._prev_t = cur, now
        return s

    def as_json(self) -> list[dict[str, Any]]:
        return [asdict(s) for s in self.samples]

    async def run(self) -> None:
        while True:
            await trio.sleep(self.interval)
            self.sample()
