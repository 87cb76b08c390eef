"""Reading one part of an object (GET/HEAD ``?partNumber=N``), pure.

A multipart object's part ``N`` is the byte range its part table gives; an
object uploaded in one piece is its own part 1 (what AWS serves, so download
managers that always ask for part 1 work on every object).  A part number past
the last part is ``400 InvalidPartNumber`` (not a 416: no byte range was asked for).
"""

from __future__ import annotations

from collections.abc import Sequence

from titans3.core.errors import InvalidPartNumber


def part_span(size: int, part_sizes: Sequence[int], number: int) -> tuple[int, int]:
    """Inclusive byte range ``(first, last)`` of part ``number`` (1-based).

    ``part_sizes`` is empty for an object that was not uploaded in parts.
    An empty object's part 1 is ``(0, -1)``.
    """
    sizes = list(part_sizes) or [size]
    if not 1 <= number <= len(sizes):
        raise InvalidPartNumber(PartNumberRequested=str(number), ActualPartCount=str(len(sizes)))
    first = sum(sizes[: number - 1])
    return first, first + sizes[number - 1] - 1
