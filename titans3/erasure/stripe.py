"""Stripe arithmetic: where the bytes of an object live inside its fragment streams.

Theory of operation
-------------------
An object of ``size`` bytes is cut into *segments* of ``segment_size`` bytes;
only the last one may be shorter.  Each segment is erasure-coded on its own into
``n = k + m`` fragments, and fragment ``i`` of every segment is appended, in
segment order, to the *fragment stream* ``i`` that one drive stores::

    object      | seg 0 (S bytes) | seg 1 (S bytes) | seg 2 (short) |
    stream i    |   frag(0, i)    |   frag(1, i)    | frag(2, i)    |
                 <------ F ------> <------ F ------> <- last F ---->

Every fragment of a full segment has the same size ``F`` and the last
segment's fragments have ``last_fragment_size``, so the offset of any segment
inside any stream is ``seg * F`` -- no index needed, and a range GET reads the
same byte range from each of the ``k`` drives it asks.

Invariants (tested against a brute-force model):

* ``num_segments == ceil(size / segment_size)``; an empty object has **zero
  segments** and zero-length fragment streams (nothing is encoded or stored).
* ``fragment_length() == (num_segments - 1) * F + last_fragment_size``.
* Segment ``s`` holds object bytes ``[s * segment_size, min((s + 1) *
  segment_size, size))``.

This module is pure: it never imports the codec.  The fragment size of a
segment of ``L`` bytes is a property of the codec (pyeclib adds a header and
rounds up to a multiple of ``k``), so callers pass it in as ``fragment_size_of``
-- in practice :meth:`titans3.erasure.codec.Codec.fragment_size`, or use
:meth:`~titans3.erasure.codec.Codec.layout`.

:func:`resolve_range` implements the HTTP ``Range: bytes=`` semantics of RFC
9110 §14.1.2 on already-parsed numbers; :func:`segments_for_range` turns the
resolved inclusive range into the segments to decode and how to trim them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class SchemeLike(Protocol):
    """Anything with the three numbers of an EC scheme (``ECScheme``, a record)."""

    @property
    def k(self) -> int: ...

    @property
    def m(self) -> int: ...

    @property
    def segment_size(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Layout:
    """How one object of ``size`` bytes maps onto its ``n`` fragment streams."""

    size: int
    segment_size: int
    k: int
    n: int
    fragment_size: int  # F: the fragment size of a full segment
    last_fragment_size: int  # fragment size of the last segment (0 for an empty object)
    num_segments: int

    def fragment_length(self) -> int:
        """Total bytes of one fragment stream (every stream has this length)."""
        if self.num_segments == 0:
            return 0
        return (self.num_segments - 1) * self.fragment_size + self.last_fragment_size

    def segment_bounds(self, seg: int) -> tuple[int, int]:
        """Object bytes ``[start, end)`` held by segment ``seg``."""
        self._check_segment(seg)
        start = seg * self.segment_size
        return start, min(start + self.segment_size, self.size)

    def segment_length(self, seg: int) -> int:
        """Data bytes in segment ``seg`` (the length to pass to ``encode``)."""
        start, end = self.segment_bounds(seg)
        return end - start

    def segment_fragment_size(self, seg: int) -> int:
        """Size of each fragment of segment ``seg``."""
        self._check_segment(seg)
        return self.last_fragment_size if seg == self.num_segments - 1 else self.fragment_size

    def fragment_range(self, first_seg: int, last_seg: int) -> tuple[int, int]:
        """``(offset, length)`` inside every fragment stream of segments
        ``first_seg..last_seg`` inclusive."""
        self._check_segment(first_seg)
        self._check_segment(last_seg)
        if last_seg < first_seg:
            raise ValueError(f"segment range {first_seg}..{last_seg} is reversed")
        offset = first_seg * self.fragment_size
        end = last_seg * self.fragment_size + self.segment_fragment_size(last_seg)
        return offset, end - offset

    def _check_segment(self, seg: int) -> None:
        if not 0 <= seg < self.num_segments:
            raise ValueError(f"segment {seg} outside 0..{self.num_segments - 1}")


def layout_for(size: int, scheme: SchemeLike, fragment_size_of: Callable[[int], int]) -> Layout:
    """The layout of a ``size``-byte object under ``scheme``.

    ``fragment_size_of(L)`` gives the size of each fragment of an ``L``-byte
    segment (``L >= 1``).
    """
    if size < 0:
        raise ValueError(f"object size must be >= 0, got {size}")
    seg = scheme.segment_size
    if seg <= 0:
        raise ValueError(f"segment size must be positive, got {seg}")
    num_segments = -(-size // seg)
    full = fragment_size_of(seg)
    last = 0 if num_segments == 0 else fragment_size_of(size - (num_segments - 1) * seg)
    return Layout(
        size=size,
        segment_size=seg,
        k=scheme.k,
        n=scheme.k + scheme.m,
        fragment_size=full,
        last_fragment_size=last,
        num_segments=num_segments,
    )


def resolve_range(first: int | None, last: int | None, size: int) -> tuple[int, int] | None:
    """Resolve one parsed ``bytes=`` range spec against a ``size``-byte object.

    * ``(first, last)``  -- ``bytes=first-last``; ``last`` is clamped to ``size - 1``;
    * ``(first, None)``  -- ``bytes=first-`` (to the end);
    * ``(None, n)``      -- ``bytes=-n``, the last ``n`` bytes (the whole object
      if it is shorter than ``n``).

    Returns the inclusive ``(first, last)`` to send, or None when the range is
    unsatisfiable (``first >= size``; a suffix of 0; any range of an empty
    object) -- the S3 layer answers 416 ``InvalidRange``.

    A spec that is not a valid range at all (``first > last``, negative
    numbers, neither bound) raises ValueError: per RFC 9110 such a header is
    ignored and the whole object sent with 200, which is the S3 parser's
    decision, not this function's.
    """
    if size < 0:
        raise ValueError(f"object size must be >= 0, got {size}")
    if first is None:
        if last is None:
            raise ValueError("a byte range needs a first position or a suffix length")
        if last < 0:
            raise ValueError(f"suffix length must be >= 0, got {last}")
        if last == 0 or size == 0:
            return None
        return max(0, size - last), size - 1
    if first < 0:
        raise ValueError(f"first byte position must be >= 0, got {first}")
    if last is not None and last < first:
        raise ValueError(f"last byte position {last} is before first {first}")
    if first >= size:
        return None
    end = size - 1 if last is None else min(last, size - 1)
    return first, end


def segments_for_range(layout: Layout, first: int, last: int) -> tuple[int, int, int, int]:
    """Which segments serve object bytes ``first..last`` (inclusive).

    Returns ``(first_seg, last_seg, skip_head, take)``: decode segments
    ``first_seg..last_seg``, concatenate them, drop ``skip_head`` bytes and
    send the next ``take`` bytes.  ``first``/``last`` must come from
    :func:`resolve_range` (``0 <= first <= last < size``).
    """
    if not 0 <= first <= last < layout.size:
        raise ValueError(f"range {first}..{last} is not inside a {layout.size}-byte object")
    seg = layout.segment_size
    first_seg = first // seg
    last_seg = last // seg
    return first_seg, last_seg, first - first_seg * seg, last - first + 1
