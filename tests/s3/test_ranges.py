"""Range header parsing with AWS semantics (titans3.s3.ranges)."""

from __future__ import annotations

import pytest

from titans3.core.errors import InvalidRange
from titans3.s3.ranges import content_range, parse_range, resolve_range


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-499", (0, 499)),
        ("bytes=500-", (500, None)),
        ("bytes=-500", (None, 500)),
        ("bytes=0-0", (0, 0)),
        ("bytes=-0", (None, 0)),
        ("Bytes=1-2", (1, 2)),
        (" bytes=1-2 ", (1, 2)),
    ],
)
def test_single_ranges_are_parsed(header, expected):
    assert parse_range(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "bytes=0-1,5-6",  # several ranges: S3 serves the whole object
        "bytes=5-1",  # first > last: ignored, not 416
        "bytes=-",
        "bytes=a-b",
        "bytes=+1-2",
        "bytes=1-2-3",
        "items=0-1",
        "bytes 0-1",
        "0-1",
    ],
)
def test_unusable_headers_are_ignored(header):
    assert parse_range(header) is None


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-499", 2000, (0, 499)),
        ("bytes=-500", 2000, (1500, 1999)),
        ("bytes=500-", 2000, (500, 1999)),
        ("bytes=0-", 2000, (0, 1999)),
        ("bytes=1990-5000", 2000, (1990, 1999)),  # clamped, still 206
        ("bytes=-5000", 2000, (0, 1999)),  # suffix longer than object
        ("bytes=-5", 0, None),  # suffix of an empty object: whole (empty) object
        ("bytes=5-1", 2000, None),
    ],
)
def test_ranges_resolve_against_the_object_size(header, size, expected):
    assert resolve_range(parse_range(header), size) == expected


@pytest.mark.parametrize(("header", "size"), [("bytes=2000-", 2000), ("bytes=0-", 0), ("bytes=-0", 10)])
def test_unsatisfiable_ranges_raise_invalid_range(header, size):
    with pytest.raises(InvalidRange) as info:
        resolve_range(parse_range(header), size)
    assert info.value.status == 416


def test_content_range_header_value():
    assert content_range(0, 499, 2000) == "bytes 0-499/2000"
