"""IAM wildcards: ``*`` matches any run of characters (``/`` and ``:`` included),
``?`` exactly one.  Nothing else is special.

Patterns are compiled once to regular expressions and cached, because the same
few patterns of a bucket policy are matched on every request.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["has_wildcard", "match", "match_ci"]


@lru_cache(maxsize=4096)
def _compile(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    parts = []
    for ch in pattern:
        if ch == "*":
            parts.append(".*")
        elif ch == "?":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def has_wildcard(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


def match(pattern: str, value: str) -> bool:
    """Case-sensitive wildcard match of the whole ``value``."""
    if not has_wildcard(pattern):
        return pattern == value
    return _compile(pattern, False).fullmatch(value) is not None


def match_ci(pattern: str, value: str) -> bool:
    """Case-insensitive wildcard match (action names)."""
    if not has_wildcard(pattern):
        return pattern.lower() == value.lower()
    return _compile(pattern, True).fullmatch(value) is not None
