"""Read results as pieces, and ``base:allocation`` descriptors from extents.

A read of a volume (writable, :mod:`titans3.nbd.volume`, or a read-only
snapshot, :mod:`titans3.nbd.readonly`) is a list of *pieces*: ``bytes`` or
``memoryview`` for data, an ``int`` for a run of that many zero bytes.  The
reply encoder (:func:`titans3.nbd.replies.read_reply`) sends a zero run as a
hole chunk on structured replies, so a sparse or unwritten range is never
built as a buffer.  Both kinds of volume build pieces and allocation
answers the same way, hence one module below both: the read-only export no
longer imports the writable volume to get them.

Invariants: an extent's content may be shorter than the extent (its tail
reads as zeroes), so :func:`slice_extent` never yields bytes past the
content; :func:`merge_pieces` drops empty zero runs and joins adjacent ones
but never copies data; :func:`allocation` answers whole extents, merged while
the flags match and each descriptor stays below 2**31 bytes (NBD's 32-bit
length).  :func:`zeros` hands out one shared immutable buffer per length.
"""

from __future__ import annotations

from collections.abc import Callable

from titans3.nbd.wire import State


def allocation(size: int, extent_size: int, offset: int, length: int,
               hole: Callable[[int], bool]) -> list[tuple[int, int]]:
    """``base:allocation`` descriptors from ``offset``, a whole extent at a time
    (so at least ``length``): HOLE|ZERO where ``hole(extent)``, else 0."""
    out: list[tuple[int, int]] = []
    pos = offset
    while pos < offset + length:
        ext = pos // extent_size
        hi = min(size, (ext + 1) * extent_size)
        flags = int(State.HOLE | State.ZERO) if hole(ext) else 0
        if out and out[-1][1] == flags and out[-1][0] + (hi - pos) < 1 << 31:
            out[-1] = (out[-1][0] + hi - pos, flags)
        else:
            out.append((hi - pos, flags))
        pos = hi
    return out


_ZERO_CACHE: dict[int, bytes] = {}


def zeros(n: int) -> bytes:
    z = _ZERO_CACHE.get(n)
    if z is None:
        z = _ZERO_CACHE[n] = bytes(n)
    return z


def slice_extent(base: bytes | None, lo: int, hi: int) -> list[bytes | memoryview | int]:
    """Bytes [lo, hi) of an extent's content (zeroes past its end)."""
    if base is None or lo >= len(base):
        return [hi - lo]
    if hi <= len(base):
        return [memoryview(base)[lo:hi]]
    return [memoryview(base)[lo:], hi - len(base)]


def merge_pieces(pieces: list[bytes | memoryview | int]) -> list[bytes | memoryview | int]:
    """Empty pieces dropped, adjacent zero runs merged."""
    out: list[bytes | memoryview | int] = []
    for p in pieces:
        if isinstance(p, int):
            if p == 0:
                continue
            if out and isinstance(out[-1], int):
                out[-1] += p
                continue
        out.append(p)
    return out


