"""A host-wide budget of bytes for in-flight data-path buffers.

Theory of operation
-------------------
Every large write holds a working set while it streams -- request chunks
queued by the HTTP server, the segments being cut, their erasure fragments,
the drives' aligned write buffers -- that does not depend on the object's
size but is paid once per concurrent stream.  Without a bound, memory grows
with the number of connections (64 concurrent PUTs held ~1.6 GiB, issue 16).
The budget bounds the sum: a stream is *admitted* for its whole working set
before it reads its body, and gives it back when it is done.

Admission is all-or-nothing, per stream.  A stream never holds part of the
budget while it waits for more, so streams cannot deadlock each other: one
that has been admitted needs nothing further from the budget and always
finishes (or fails) on its own.  A request larger than the whole budget is
clamped to it -- it runs, alone -- so no size is refused.

Grants are strictly first come, first served: a large request at the head of
the queue is not overtaken by a stream of small ones (which would starve it);
the ones behind it wait until it fits.

Back-pressure, not errors: a stream that waits has not asked for its body
yet, so the HTTP layer stops reading its socket once its (small, bounded)
queue is full, and TCP flow control holds the client.  Nothing times out
here; the request's own body timeouts still apply once it reads.

:class:`Ledger` is the accounting (no I/O, no clock); :class:`MemoryBudget`
is its trio face.  ``MemoryBudget(0)`` is unlimited: every hold is granted at
once and nothing is counted beyond the statistics.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio


@dataclass(slots=True)
class BudgetStats:
    capacity: int  # bytes; 0 = unlimited
    in_use: int  # bytes granted now
    peak: int  # most bytes ever granted at once
    waiting: int  # streams queued for admission now
    waited: int  # streams that ever had to queue


class Ledger:
    """FIFO byte grants against a fixed capacity (pure accounting).

    ``request`` either grants at once (True) or queues the ticket; ``release``
    and ``cancel`` return the tickets that became granted, in order.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"budget capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self.in_use = 0
        self.peak = 0
        self.waited = 0
        self._queue: OrderedDict[int, int] = OrderedDict()  # ticket -> bytes, in arrival order

    def clamp(self, nbytes: int) -> int:
        """What a request of ``nbytes`` is charged: at most the whole budget."""
        if nbytes < 0:
            raise ValueError(f"cannot hold a negative amount ({nbytes})")
        return nbytes if self.capacity == 0 else min(nbytes, self.capacity)

    def _take(self, n: int) -> None:
        self.in_use += n
        self.peak = max(self.peak, self.in_use)

    def request(self, ticket: int, nbytes: int) -> bool:
        n = self.clamp(nbytes)
        if self.capacity == 0 or (not self._queue and self.in_use + n <= self.capacity):
            self._take(n)
            return True
        self._queue[ticket] = n
        self.waited += 1
        return False

    def release(self, nbytes: int) -> list[int]:
        n = self.clamp(nbytes)
        if n > self.in_use:
            raise RuntimeError(f"released {n} bytes but only {self.in_use} are held")
        self.in_use -= n
        return self._grant_head()

    def cancel(self, ticket: int) -> list[int]:
        """Drop a queued ticket (its waiter gave up); the next ones may now fit."""
        self._queue.pop(ticket, None)
        return self._grant_head()

    def _grant_head(self) -> list[int]:
        granted = []
        while self._queue:
            ticket, n = next(iter(self._queue.items()))
            if self.in_use + n > self.capacity:
                break
            del self._queue[ticket]
            self._take(n)
            granted.append(ticket)
        return granted

    @property
    def waiting(self) -> int:
        return len(self._queue)


class MemoryBudget:
    """The trio face of :class:`Ledger`; one per host, shared by every write path."""

    def __init__(self, capacity: int) -> None:
        self._ledger = Ledger(capacity)
        self._events: dict[int, trio.Event] = {}
        self._tickets = itertools.count()

    @property
    def capacity(self) -> int:
        return self._ledger.capacity

    def stats(self) -> BudgetStats:
        lg = self._ledger
        return BudgetStats(lg.capacity, lg.in_use, lg.peak, lg.waiting, lg.waited)

    def _wake(self, tickets: list[int]) -> None:
        for t in tickets:
            self._events.pop(t).set()

    async def acquire(self, nbytes: int) -> int:
        """Wait until ``nbytes`` (clamped) is granted; returns the amount to release."""
        ticket = next(self._tickets)
        charged = self._ledger.clamp(nbytes)
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._ledger.request(ticket, nbytes):
            # a grant taken must be returned: no cancellation point past this one
            await trio.lowlevel.cancel_shielded_checkpoint()
            return charged
        event = self._events[ticket] = trio.Event()
        try:
            await event.wait()
        except BaseException:
            if ticket in self._events:  # still queued: leave the queue
                del self._events[ticket]
                self._wake(self._ledger.cancel(ticket))
            else:  # granted while being cancelled: give it straight back
                self._wake(self._ledger.release(charged))
            raise
        return charged

    def release(self, charged: int) -> None:
        self._wake(self._ledger.release(charged))

    @asynccontextmanager
    async def hold(self, nbytes: int) -> AsyncIterator[int]:
        """Hold ``nbytes`` of the budget for the body of the ``async with``."""
        charged = await self.acquire(nbytes)
        try:
            yield charged
        finally:
            self.release(charged)
