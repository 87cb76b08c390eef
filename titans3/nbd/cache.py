"""A byte-bounded LRU of extent contents, shared by every volume of the host.

Entries are keyed by ``(object key, version id)``: an object version never
changes, so an entry is never stale and a clone reading its parent's extent
shares the parent's entry.  Concurrent misses of one key wait for a single
load (single flight).  ``statistics()`` feeds the status page.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class CacheStatistics:
    capacity: int
    used: int
    entries: int
    hits: int
    misses: int


class ExtentCache:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._data: OrderedDict[Key, bytes] = OrderedDict()
        self._used = 0
        self._loading: dict[Key, trio.Event] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: Key) -> bytes | None:
        data = self._data.get(key)
        if data is not None:
            self._data.move_to_end(key)
        return data

    def put(self, key: Key, data: bytes) -> None:
        if len(data) > self.capacity:
            return
        old = self._data.pop(key, None)
        if old is not None:
            self._used -= len(old)
        self._data[key] = data
        self._used += len(data)
        while self._used > self.capacity:
            _, dropped = self._data.popitem(last=False)
            self._used -= len(dropped)

    def drop(self, key: Key) -> None:
        old = self._data.pop(key, None)
        if old is not None:
            self._used -= len(old)

    async def load(self, key: Key, fetch: Callable[[], Awaitable[bytes]]) -> bytes:
        """The cached bytes of ``key``, fetching them once however many ask."""
        while True:
            data = self.get(key)
            if data is not None:
                self.hits += 1
                return data
            waiting = self._loading.get(key)
            if waiting is None:
                break
            await waiting.wait()
        self.misses += 1
        done = self._loading[key] = trio.Event()
        try:
            data = await fetch()
            self.put(key, data)
            return data
        finally:
            del self._loading[key]
            done.set()

    def statistics(self) -> CacheStatistics:
        return CacheStatistics(self.capacity, self._used, len(self._data), self.hits, self.misses)
