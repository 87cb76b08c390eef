"""A small bounded map of data id -> bytes with an age limit (sans-I/O).

RemoteDrive keeps two: the *outbox* of ``put_inline`` blobs waiting for the
commit that carries them to the peer, and the blobs ``read_versions`` brought
along for the GET's ``read_fragment`` (see :mod:`titans3.drive.remote`).  Both
must stay small whatever callers do, so entries leave by age or, oldest first,
by count.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence

OUTBOX_TTL = 3600.0  # seconds an uncommitted inline blob waits (the peer's staging TTL)
OUTBOX_MAX = 4096  # blobs; the oldest go first (their PUT is long gone)
CARRIED_TTL = 5.0  # seconds a blob that came with read_versions is kept for the read
CARRIED_MAX = 64


class Blobs:
    """Small bounded map of data id -> bytes with an age limit (insertion order)."""

    def __init__(self, ttl: float, cap: int) -> None:
        self.ttl, self.cap = ttl, cap
        self._d: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def put(self, data_id: str, data: bytes) -> None:
        now = time.monotonic()
        self._d.pop(data_id, None)
        self._d[data_id] = (now, data)
        while self._d:
            oldest, (t, _) = next(iter(self._d.items()))
            if len(self._d) <= self.cap and now - t <= self.ttl:
                break
            del self._d[oldest]

    def take(self, data_id: str) -> bytes | None:
        got = self._d.pop(data_id, None)
        if got is None or time.monotonic() - got[0] > self.ttl:
            return None
        return got[1]

    def take_all(self, ids: Sequence[str]) -> dict[str, bytes]:
        out = {}
        for i in ids:
            b = self.take(i)
            if b is not None:
                out[i] = b
        return out

    def __len__(self) -> int:
        return len(self._d)
