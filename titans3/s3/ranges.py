"""HTTP ``Range`` headers as S3 reads them.

Theory of operation
-------------------
S3 serves at most one byte range per GET and is forgiving about everything
else: a header it cannot use is *ignored* and the whole object is served with
200, never rejected with 400.  Concretely (AWS behaviour, also what boto3,
s3transfer and the compatibility suites of other S3 servers expect):

* ``bytes=a-b`` (a <= b), ``bytes=a-`` and ``bytes=-n`` are honoured;
* several ranges (``bytes=0-1,5-6``), another unit, ``a > b``, signs, spaces
  inside numbers or any other garbage -> the header is ignored;
* a range that starts at or past the end of the object, or the suffix
  ``bytes=-0``, is unsatisfiable -> ``InvalidRange`` (416);
* a range that starts inside the object but ends past it is clamped.

:func:`parse_range` only looks at the text (it has no size) and returns the
``(first, last)`` pair the ObjectStore contract takes, or ``None`` to ignore.
:func:`resolve_range` applies a parsed range to a known size; it is what the
object layer (or a HEAD with Range) uses to decide 206 vs 416.
"""

from __future__ import annotations

import re

from titans3.core.errors import InvalidRange
from titans3.s3.numbers import decimal

_SPEC = re.compile(r"bytes\s*=\s*([0-9]*)\s*-\s*([0-9]*)", re.IGNORECASE)

ByteRange = tuple[int | None, int | None]


def parse_range(header: str | None) -> ByteRange | None:
    """``(first, last)``, ``(first, None)`` or ``(None, suffix_len)``; ``None`` = ignore."""
    if not header:
        return None
    match = _SPEC.fullmatch(header.strip())
    if match is None:
        return None
    first_s, last_s = match.groups()
    if not first_s and not last_s:
        return None
    if not first_s:
        return (None, decimal(last_s))
    first = decimal(first_s)
    if not last_s:
        return (first, None)
    last = decimal(last_s)
    if first > last:
        return None
    return (first, last)


def resolve_range(byte_range: ByteRange | None, size: int) -> tuple[int, int] | None:
    """Inclusive ``(first, last)`` within an object of ``size`` bytes.

    ``None`` means "serve the whole object" (no range, or one S3 ignores).
    Raises ``InvalidRange`` when the range cannot be satisfied.
    """
    if byte_range is None:
        return None
    first, last = byte_range
    if first is None:
        suffix = last or 0
        if suffix == 0:
            raise InvalidRange(ActualObjectSize=str(size))
        if size == 0:
            return None  # a suffix of an empty object: AWS serves it whole (200)
        return (max(0, size - suffix), size - 1)
    if first >= size:
        raise InvalidRange(ActualObjectSize=str(size))
    return (first, size - 1 if last is None else min(last, size - 1))


def content_range(first: int, last: int, size: int) -> str:
    """The ``Content-Range`` value for a 206."""
    return f"bytes {first}-{last}/{size}"
