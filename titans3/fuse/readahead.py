"""Adaptive read-ahead for one open file handle (pure).

Theory of operation
-------------------
Every read that misses the handle's buffer costs one ranged GET, so the size
of what we fetch decides both streaming speed and random-read waste.  The
policy watches the offsets a handle reads:

* a read that starts where the previous one ended (or the first read at 0)
  is *sequential*: the window doubles, from ``min_window`` up to
  ``max_window``, and once it reaches ``prefetch_from`` the next window is
  worth fetching in the background while the kernel consumes this one;
* any other read is *random*: the window drops back and only what was asked
  is fetched, so 4 KiB random reads cost 4 KiB GETs, not megabytes.

The kernel's own read-ahead (``read_ahead_kb``) already merges small
sequential reads into 128 KiB-1 MiB requests; this window sits above it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Fetch:
    start: int
    end: int  # exclusive
    prefetch: tuple[int, int] | None  # a further range worth fetching now, in the background


class ReadAhead:
    def __init__(self, *, min_window: int = 128 << 10, max_window: int = 8 << 20,
                 prefetch_from: int = 1 << 20) -> None:
        self.min_window = min_window
        self.max_window = max_window
        self.prefetch_from = prefetch_from
        self.window = min_window
        self._expected: int | None = None
        self.sequential = False

    def plan(self, offset: int, size: int, file_size: int) -> Fetch:
        """What to fetch for a read of ``size`` bytes at ``offset`` that missed the buffer."""
        seq = offset == self._expected or (self._expected is None and offset == 0)
        if seq:
            if self.sequential:
                self.window = min(self.window * 2, self.max_window)
            self.sequential = True
            length = max(size, self.window)
        else:
            self.sequential = False
            self.window = self.min_window
            length = size
        self._expected = offset + size
        end = min(file_size, offset + length)
        prefetch = None
        if seq and self.window >= self.prefetch_from and end < file_size:
            prefetch = (end, min(file_size, end + self.window))
        return Fetch(offset, end, prefetch)

    def consumed(self, offset: int, size: int) -> None:
        """A read served from the buffer still counts for the pattern."""
        self._expected = offset + size
