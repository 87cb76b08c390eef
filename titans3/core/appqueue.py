"""The per-request message queue between hypercorn's read loop and an ASGI app.

Theory of operation
-------------------
hypercorn's trio worker gives every request a ``trio.open_memory_channel``
of ``max_app_queue_size`` messages: the read loop puts the request's body
messages (and ``http.disconnect``) in, the application's ``receive()`` takes
them out.  Creating that channel pair cost ~10-18 us per request on this
machine -- more than the rest of a request's queue traffic together -- for
features never used here (closing, cloning, statistics, async iteration).

:class:`AppQueue` is the bounded FIFO the application actually needs: ``put``
waits while ``capacity`` messages are queued, ``get`` waits while none are.
Both are trio checkpoints like the channel's ``send``/``receive`` (a
cancelled caller raises ``Cancelled`` *before* any effect; the fast path
still yields once, so a busy read loop cannot starve other tasks), and a
caller cancelled while parked leaves nothing behind.  One difference, on the
safe side: a trio channel hands a message straight to a waiting receiver
even when its buffer is full, so it may hold ``capacity + 1``; this queue
never holds more than ``capacity`` -- the bound the write-memory budget
counts on (docs/stack-notes.md: 2 is the smallest capacity that cannot
deadlock, and stays so).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import trio
from trio.lowlevel import ParkingLot, cancel_shielded_checkpoint, checkpoint_if_cancelled

__all__ = ["AppQueue"]


class AppQueue:
    __slots__ = ("_capacity", "_getters", "_items", "_putters")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._capacity = capacity
        self._items: deque[Any] = deque()
        self._getters = ParkingLot()
        self._putters = ParkingLot()

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, item: Any) -> None:
        await checkpoint_if_cancelled()
        if len(self._items) < self._capacity:
            self._append(item)
            await cancel_shielded_checkpoint()
            return
        while len(self._items) >= self._capacity:
            await self._putters.park()  # Cancelled here: nothing was queued
        self._append(item)

    async def get(self) -> Any:
        await checkpoint_if_cancelled()
        if self._items:
            item = self._pop()
            await cancel_shielded_checkpoint()
            return item
        while not self._items:
            await self._getters.park()  # Cancelled here: nothing was taken
        return self._pop()

    def _append(self, item: Any) -> None:
        self._items.append(item)
        if self._getters:
            self._getters.unpark()

    def _pop(self) -> Any:
        item = self._items.popleft()
        if self._putters:
            self._putters.unpark()
        return item


def spawn_app(nursery: trio.Nursery, handle: Any, app: Any, config: Any, scope: Any, send: Any) -> Any:
    """hypercorn 0.18's ``TaskGroup.spawn_app`` (trio) with an :class:`AppQueue`:
    start ``handle`` (hypercorn's ``_handle``) for ``app``, return the put side."""
    queue = AppQueue(config.max_app_queue_size)
    nursery.start_soon(handle, app, config, scope, queue.get, send, trio.to_thread.run_sync,
                       trio.from_thread.run)  # fmt: skip
    return queue.put
