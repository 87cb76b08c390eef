"""Which bytes of an open file are dirty, and where every byte comes from (pure).

Theory of operation
-------------------
An open file is the *base* object version plus local changes staged in a
sparse write-back file.  :class:`Layout` says, for any byte range, which of
three sources serves it:

* ``DIRTY`` -- written since the last commit; read from the staging file;
* ``BASE``  -- unchanged bytes of the base version, ``[0, base_size)``;
* ``ZERO``  -- past the base after a truncate-and-extend (a hole).

Invariants: ``base_size <= size``; extents are sorted, disjoint, non-empty,
not adjacent (adjacent ones merge) and lie inside ``[0, size)``.  A truncate
below ``base_size`` lowers it for good: the cut bytes must read as zeros if
the file grows again.  The commit planner (``plan.py``) uses the same
answers to decide which parts can be copied server-side.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

DIRTY, BASE, ZERO = "dirty", "base", "zero"


class Extents:
    """Sorted disjoint half-open intervals."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(zip(self._starts, self._ends, strict=True))

    def __len__(self) -> int:
        return len(self._starts)

    def total(self) -> int:
        return sum(e - s for s, e in self)

    def add(self, start: int, end: int) -> None:
        if end <= start:
            return
        # Every interval touching [start, end] (adjacent ones too) merges.
        i = bisect.bisect_left(self._ends, start)
        j = bisect.bisect_right(self._starts, end)
        if i < j:
            start = min(start, self._starts[i])
            end = max(end, self._ends[j - 1])
        self._starts[i:j] = [start]
        self._ends[i:j] = [end]

    def clip(self, size: int) -> None:
        """Drop everything at or past ``size``."""
        i = bisect.bisect_left(self._ends, size + 1)
        del self._starts[i + 1:], self._ends[i + 1:]
        if i < len(self._starts):
            if self._starts[i] >= size:
                del self._starts[i], self._ends[i]
            else:
                self._ends[i] = min(self._ends[i], size)

    def overlaps(self, start: int, end: int) -> bool:
        i = bisect.bisect_right(self._ends, start)
        return i < len(self._starts) and self._starts[i] < end

    def clear(self) -> None:
        self._starts.clear()
        self._ends.clear()

    def split(self, start: int, end: int) -> Iterator[tuple[int, int, bool]]:
        """``(a, b, dirty)`` pieces covering ``[start, end)`` in order."""
        pos = start
        i = bisect.bisect_right(self._ends, start)
        while pos < end:
            if i < len(self._starts) and self._starts[i] <= pos:
                b = min(end, self._ends[i])
                yield pos, b, True
                pos = b
                i += 1
            else:
                b = min(end, self._starts[i]) if i < len(self._starts) else end
                yield pos, b, False
                pos = b


class Layout:
    """Size and byte sources of one open file."""

    def __init__(self, base_size: int) -> None:
        self.size = base_size
        self.base_size = base_size
        self.extents = Extents()

    def write(self, offset: int, length: int) -> None:
        if length <= 0:  # a zero-length write changes nothing, not even the size
            return
        self.extents.add(offset, offset + length)
        self.size = max(self.size, offset + length)

    def truncate(self, size: int) -> None:
        if size < self.size:
            self.extents.clip(size)
            self.base_size = min(self.base_size, size)
        self.size = size

    def dirty_bytes(self) -> int:
        return self.extents.total()

    def pieces(self, start: int, end: int) -> Iterator[tuple[int, int, str]]:
        """``(a, b, source)`` covering ``[start, min(end, size))``."""
        end = min(end, self.size)
        for a, b, dirty in self.extents.split(start, end):
            if dirty:
                yield a, b, DIRTY
            elif b <= self.base_size:
                yield a, b, BASE
            elif a >= self.base_size:
                yield a, b, ZERO
            else:
                yield a, self.base_size, BASE
                yield self.base_size, b, ZERO

    def committed(self) -> None:
        """After a commit the new version is the base and nothing is dirty."""
        self.base_size = self.size
        self.extents.clear()
