"""Rate limiting and rate measuring for background workers (pure cores + one trio adapter).

Theory of operation
-------------------
Background work (scrubbing) must leave the disks to the clients: it spends
bytes from a :class:`TokenBucket` refilled at ``rate`` bytes per second, with
credit for idle time capped at one second's worth (a read larger than that
still goes through -- it just waits longer).  The bucket is a pure value:
:meth:`TokenBucket.reserve` takes a clock reading and returns how long to
wait; it never sleeps.  Reserving *before* the read and going into debt keeps
the average exact without a retry loop.  ``rate == 0`` means unthrottled.

**The limit holds from the first byte.**  A bucket starts each *epoch* --
its creation, :meth:`TokenBucket.restart` (a scrub pass begins) or a rate
change -- with no credit, keeping only debt.  Tokens then come only from the
refill, so the bytes admitted since ``since`` never exceed
``rate * (now - since)``, and a rate measured over reads admitted in the
current epoch (:meth:`TokenBucket.epoch`) cannot exceed the limit either.
(A bucket that started full let a pass read one second's worth at disk speed,
and the first measurement showed about twice the limit.)

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
        self._tokens = 0.0
        self._stamp = now
        self.epoch = 0  # bumped whenever the accounting restarts (module doc)
        self.since = now

    @property
    def rate(self) -> float:
        return self._rate

    def set_rate(self, rate: float, now: float) -> None:
        self._refill(now)
        self._rate = float(rate)
        self.restart(now)

    def restart(self, now: float) -> None:
        """Begin a new epoch at ``now``: drop credit (debt is kept)."""
        self._refill(now)
        self._tokens = min(self._tokens, 0.0)
        self._stamp = now
        self.epoch += 1
        self.since = now

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


class PacedMeter:
    """Bytes per second of the reads a bucket admitted in its current epoch.

    ``admitted(epoch, n)`` counts ``n`` bytes read under a reservation taken
    in bucket epoch ``epoch``; reads from an older epoch (in flight across a
    rate change or a restart) do not count.  For a throttled bucket the rate
    is therefore never above the limit (module doc).
    """

    def __init__(self, bucket: TokenBucket) -> None:
        self._bucket = bucket
        self._epoch = bucket.epoch
        self._bytes = 0

    def admitted(self, epoch: int, n: int) -> None:
        if epoch != self._bucket.epoch:
            return
        if self._epoch != epoch:
            self._epoch, self._bytes = epoch, 0
        self._bytes += n

    def rate(self, now: float) -> float:
        elapsed = now - self._bucket.since
        if self._epoch != self._bucket.epoch or elapsed < 0.5:
            return 0.0
        return self._bytes / elapsed

    def eta(self, remaining: float, now: float) -> float | None:
        if remaining <= 0:
            return 0.0
        rate = self.rate(now)
        return remaining / rate if rate > 0 else None


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
