"""Adaptive read-ahead for one open file handle (pure).

Theory of operation
-------------------
Base bytes (the committed version) are read in aligned *blocks* of
``block`` bytes, each one ranged GET, cached per open file while its ETag
holds.  The policy watches which blocks a handle touches:

* a read in the block the previous read ended in, or the next one (or the
  first read at offset 0), is *sequential*: the window of blocks fetched
  ahead doubles each time a new block is entered, up to ``max_blocks``, and
  those blocks are fetched in the background, in parallel, while the kernel
  consumes the current one;
* any other read is *random*: the window collapses and only the bytes asked
  for are fetched (a 4 KiB random read costs a 4 KiB GET, not a block).

Blocks make the policy indifferent to the order in which the kernel's
concurrent read-ahead requests arrive, and let two readers of the same
block share one GET.  The kernel's own read-ahead (``read_ahead_kb``) sits
on top and turns small sequential reads into large requests.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Plan:
    blocks: range  # blocks the read needs (empty: read ``direct`` instead)
    prefetch: range  # blocks worth fetching ahead, in the background
    direct: tuple[int, int] | None  # (start, end) to fetch uncached, for a random read


class ReadAhead:
    def __init__(self, *, block: int = 2 << 20, max_blocks: int = 8) -> None:
        self.block = block
        self.max_blocks = max_blocks
        self.window = 1
        self._last: int | None = None

    def plan(self, offset: int, size: int, file_size: int) -> Plan:
        end = min(offset + size, file_size)
        first, last = offset // self.block, max(offset, end - 1) // self.block
        # Concurrent kernel requests may arrive one block out of order.
        seq = offset == 0 if self._last is None else self._last - 1 <= first <= self._last + 1
        if not seq:
            self.window = 1
            self._last = last
            return Plan(range(0), range(0), (offset, end))
        if self._last is not None and last > self._last:
            self.window = min(self.window * 2, self.max_blocks)
        self._last = last if self._last is None else max(self._last, last)
        nblocks = -(-file_size // self.block)
        return Plan(range(first, last + 1), range(last + 1, min(nblocks, last + 1 + self.window)),
                    None)
