"""Clean copies: the local bytes of versions this mount just committed.

Theory of operation
-------------------
When a commit wrote a version entirely from the staging file (a new file, a
full rewrite: no byte of it came from the old version), that staging file
holds exactly the bytes of the version the backend now stores.  Instead of
emptying it, the write-back area keeps it as a *clean copy* of that version,
and reads of the version's bytes -- later in the same open, or after any
number of close/open cycles -- are served from it by ``pread`` instead of a
ranged GET.  Writing a file and reading it back (build outputs, a database
file, an archive that is extracted then verified) costs one upload.

Invariants:

* a copy is found by ``(etag, size)`` of a version, never by name: it is
  only ever used for a base version whose ETag the mount just learned from
  the backend (HEAD at open, or the commit's answer), so a change made
  through S3 (a new ETag) simply misses, and a rename that keeps the ETag
  (the daemon's ``rename_object``) still hits;
* the copies live in the room the area's dirty bytes leave free: they are
  evicted (least recently used first) as soon as dirty data needs the room,
  so the ``--write-back-max`` bound holds for both together;
* an evicted copy's descriptor is closed only when no read is using it.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(slots=True)
class Copy:
    fd: int
    size: int
    users: int = 0
    evicted: bool = False


class CleanCopies:
    def __init__(self) -> None:
        self._copies: OrderedDict[tuple[str, int], Copy] = OrderedDict()
        self.used = 0
        self.hits = 0

    def __len__(self) -> int:
        return len(self._copies)

    def add(self, etag: str, size: int, fd: int, room: int) -> bool:
        """Keep ``fd`` (now owned here) as the copy of version ``(etag, size)``
        if it fits in ``room`` bytes with the others evicted as needed."""
        if not etag or size <= 0 or size > room:
            return False
        self.discard(etag, size)
        self.shrink(room - size)
        self._copies[(etag, size)] = Copy(fd, size)
        self.used += size
        return True

    def acquire(self, etag: str | None, size: int) -> Copy | None:
        """The copy of a version, marked in use (``release`` it after the read)."""
        if not etag:
            return None
        c = self._copies.get((etag, size))
        if c is None:
            return None
        self._copies.move_to_end((etag, size))
        c.users += 1
        self.hits += 1
        return c

    def release(self, c: Copy) -> None:
        c.users -= 1
        if c.evicted and c.users == 0:
            os.close(c.fd)

    def discard(self, etag: str, size: int) -> None:
        c = self._copies.pop((etag, size), None)
        if c is not None:
            self._evict(c)

    def shrink(self, room: int) -> None:
        """Evict the least recently used copies until they take at most ``room`` bytes."""
        while self._copies and self.used > max(0, room):
            _, c = self._copies.popitem(last=False)
            self._evict(c)

    def _evict(self, c: Copy) -> None:
        self.used -= c.size
        c.evicted = True
        if c.users == 0:
            os.close(c.fd)

    def close(self) -> None:
        self.shrink(0)
