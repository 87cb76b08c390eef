"""IAM wildcards against a reference matcher written the slow, obvious way."""

from __future__ import annotations

from functools import cache

from hypothesis import given
from hypothesis import strategies as st

from titans3.iam import wildcard


def reference(pattern: str, value: str) -> bool:
    @cache
    def m(i: int, j: int) -> bool:
        if i == len(pattern):
            return j == len(value)
        if pattern[i] == "*":
            return m(i + 1, j) or (j < len(value) and m(i, j + 1))
        if j == len(value):
            return False
        return (pattern[i] == "?" or pattern[i] == value[j]) and m(i + 1, j + 1)

    return m(0, 0)


ALPHABET = st.sampled_from("ab/:.*?[]\\$^")


@given(st.text(ALPHABET, max_size=8), st.text(st.sampled_from("ab/:.*?[]\\$^"), max_size=10))
def test_match_agrees_with_the_reference(pattern: str, value: str) -> None:
    assert wildcard.match(pattern, value) is reference(pattern, value)


@given(st.text(st.sampled_from("aAbB*?"), max_size=6), st.text(st.sampled_from("aAbB"), max_size=8))
def test_case_insensitive_match(pattern: str, value: str) -> None:
    assert wildcard.match_ci(pattern, value) is reference(pattern.lower(), value.lower())
