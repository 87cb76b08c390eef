"""Byte spans of GET/HEAD ?partNumber (pure)."""

from __future__ import annotations

import pytest

from titans3.core.errors import InvalidPartNumber
from titans3.objects.parts import part_span


def test_part_span_of_multipart_and_single_part_objects():
    assert part_span(30, [10, 15, 5], 1) == (0, 9)
    assert part_span(30, [10, 15, 5], 2) == (10, 24)
    assert part_span(30, [10, 15, 5], 3) == (25, 29)
    assert part_span(7, [], 1) == (0, 6)
    assert part_span(0, [], 1) == (0, -1)
    for bad in (0, 4):
        with pytest.raises(InvalidPartNumber):
            part_span(30, [10, 15, 5], bad)
    with pytest.raises(InvalidPartNumber):
        part_span(7, [], 2)
