"""Rate limiting and rate measuring for background workers (pure cores + one trio adapter).

Theory of operation
-------------------
Background work (scrubbing) must leave the disks to the clients: it spends
bytes from a :class:`TokenBucket` refilled at ``rate`` bytes per second, with
a burst of at most one second's worth (or one read, whichever is larger, so a
read larger than the burst still goes through -- it just waits longer).  The
bucket is a pure value: :meth:`TokenBucket.reserve` takes a clock reading and
returns how long to wait; it never sleeps.  Reserving *before* the read and
going into debt keeps the average exact without a retry loop.  ``rate == 0``
means unthrottled.  Changing the rate at run time takes effect for the next
reservation (debt accrued at the old rate is kept, so lowering the rate never
lets a burst through).

:class:`RateMeter` is an exponentially weighted moving average of a counter,
for the ``rate`` and ``eta`` fields of ``statistics()``: also pure, fed with
clock readings.
"""

from __future__ import annotations

import math

import trio


class TokenBucket:
    """Bytes-per-second budget.  ``rate <= 0`` disables throttling."""

    def __init__(self, rate: float, *, now: float = 0.0) -> None:
        self._rate = float(rate)
        self._tokens = self._burst()
        self._stamp = now

    @property
    def rate(self) -> float:
        return self._rate

    def set_rate(self, rate: float, now: float) -> None:
        self._refill(now)
        self._rate = float(rate)
        self._tokens = min(self._tokens, self._burst())

    def _burst(self) -> float:
        return max(self._rate, 0.0)  # one second's worth

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            if self._rate > 0:
                self._tokens = min(self._burst(), self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now

    def reserve(self, n: int, now: float) -> float:
        """Spend ``n`` bytes; returns the seconds to wait before using them."""
        if self._rate <= 0:
            return 0.0
        self._refill(now)
        self._tokens -= n
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self._rate


async def throttle(bucket: TokenBucket, n: int) -> None:
    """Wait until ``n`` bytes may be used (always a checkpoint)."""
    delay = bucket.reserve(n, trio.current_time())
    if delay > 0:
        await trio.sleep(delay)
    else:
        await trio.lowlevel.checkpoint()


class RateMeter:
    """EWMA of a counter's growth per second (``half_life`` seconds)."""

    def __init__(self, half_life: float = 10.0) -> None:
        self._half_life = half_life
        self._rate = 0.0
        self._last_value: float | None = None
        self._last_time = 0.0

    def update(self, value: float, now: float) -> float:
        if self._last_value is None or value < self._last_value:
            self._last_value, self._last_time = value, now
            return self._rate
        dt = now - self._last_time
        if dt < 0.5:  # too short to say anything; keep accumulating
            return self._rate
        inst = (value - self._last_value) / dt
        alpha = 1.0 - math.pow(0.5, dt / self._half_life)
        self._rate = inst if self._rate == 0.0 else self._rate + alpha * (inst - self._rate)
        self._last_value, self._last_time = value, now
        return self._rate

    @property
    def rate(self) -> float:
        return self._rate

    def reset(self) -> None:
        self._rate = 0.0
        self._last_value = None

    def eta(self, remaining: float) -> float | None:
        """Seconds left for ``remaining`` units at the current rate (None if unknown)."""
        if remaining <= 0:
            return 0.0
        if self._rate <= 0:
            return None
        return remaining / self._rate
