"""Decimal numbers from headers, query parameters and XML leaves (pure).

Python refuses ``int()`` of a string with more than 4,300 digits (a guard
against quadratic conversion) with a ``ValueError``, so a request carrying
``Range: bytes=0-999…9`` or ``?max-keys=000…01`` turned into a 500 wherever a
parser had checked ``isdigit()`` and then trusted ``int()`` (found by
tests/fuzz).  :func:`decimal` reads any ASCII digit string in linear time:
leading zeros are dropped, and a value beyond :data:`CAP` is :data:`CAP` --
larger than any size, count or part number S3 allows, so every bound check
after it still refuses it (or, for a range end, clips it) exactly as AWS does.
"""

from __future__ import annotations

CAP = 1 << 63  # beyond every S3 limit (sizes < 2^63, counts, part numbers)


def decimal(digits: str) -> int:
    """The value of an ASCII digit string (the caller checked it), at most ``CAP``."""
    significant = digits.lstrip("0")
    if len(significant) > 19:
        return CAP
    return min(int(significant or "0"), CAP)
