"""How a dirty file becomes a new object version (pure).

Theory of operation
-------------------
A commit writes the whole new version.  Small files, and files with nothing
worth reusing, go as one streamed PUT.  A large file with unchanged ranges
goes as a multipart upload in fixed-size parts: a part whose bytes all come
from the base version (``extents.BASE``) is an UploadPartCopy of that range
of the base object -- no byte crosses the wire -- and every other part is
uploaded from the staging file (dirty bytes), the base (clean bytes of a
part that also has dirty ones) and zeros.  Appending 1 MiB to a 10 GiB
file therefore uploads one part and copies the rest server-side.

S3 rules the plan keeps: at most 10,000 parts, every part but the last at
least 5 MiB, a single PUT at most 5 GiB.
"""

from __future__ import annotations

from dataclasses import dataclass

from titans3.fuse.extents import BASE, Layout

MIN_PART = 5 << 20
MAX_PARTS = 10_000
MAX_PUT = 5 << 30


@dataclass(frozen=True, slots=True)
class Part:
    number: int
    start: int
    end: int  # exclusive
    copy: bool  # True: UploadPartCopy of [start, end) of the base version


def part_size_for(size: int, preferred: int = 16 << 20) -> int:
    part = max(MIN_PART, preferred)
    while -(-size // part) > MAX_PARTS:
        part *= 2
    return part


def parts(layout: Layout, part_size: int, *, can_copy: bool) -> list[Part]:
    out = []
    for n, start in enumerate(range(0, max(layout.size, 1), part_size), start=1):
        end = min(layout.size, start + part_size)
        copy = can_copy and end > start and all(
            src == BASE for _, _, src in layout.pieces(start, end))
        out.append(Part(n, start, end, copy))
    return out


def use_multipart(layout: Layout, part_size: int, *, can_copy: bool) -> bool:
    """Multipart when a PUT cannot carry the file, or when a part can be reused."""
    if layout.size > MAX_PUT:
        return True
    if not can_copy or layout.size < 2 * part_size:
        return False
    return any(p.copy for p in parts(layout, part_size, can_copy=True))
