"""Decimal parsing of untrusted digit strings (titans3/s3/numbers.py)."""

from __future__ import annotations

from titans3.s3.numbers import CAP, decimal
from titans3.s3.ranges import parse_range, resolve_range


def test_plain_digits_are_their_value() -> None:
    assert decimal("0") == 0 and decimal("0042") == 42 and decimal("") == 0


def test_any_length_is_read_without_error_and_capped() -> None:
    assert decimal("9" * 5000) == CAP
    assert decimal("0" * 5000 + "7") == 7
    assert decimal(str(CAP + 1)) == CAP


def test_a_range_past_any_object_clips_or_is_refused() -> None:
    assert resolve_range(parse_range("bytes=2-" + "9" * 5000), 10) == (2, 9)
    assert resolve_range(parse_range("bytes=-" + "9" * 5000), 10) == (0, 9)
