"""Object tags: AWS's validation rules and where tags live in a version record (pure).

Tags are part of the version record (``extra["tags"]``), so they replicate,
repair and resolve with it; updating them is :mod:`titans3.objects.tagging`.
Limits are AWS's: at most 10 tags on an object (400 ``InvalidTag``; 50 on a bucket, ``BadRequest``), keys of 1-128 and
values of 0-256 Unicode characters from letters, digits, white space and
``_ . : / = + - @`` (``InvalidTag``), no ``aws:`` prefix, no duplicate keys.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from titans3.core.errors import BadRequest, InvalidTag
from titans3.drive.records import VersionRecord

MAX_TAGS = 10
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
TAGS = "tags"  # VersionRecord.extra key
STAMP = "mu"  # VersionRecord.extra key: change stamp of mutable fields
_PUNCTUATION = frozenset("+-=._:/@")


def _utf16_length(text: str) -> int:
    return sum(2 if ord(c) > 0xFFFF else 1 for c in text)


def valid_tag_text(text: str, low: int, high: int) -> bool:
    """Length within [low, high] UTF-16 units (how AWS counts) and only S3's
    allowed characters: letters, numbers, spaces and ``+ - = . _ : / @``."""
    if not low <= _utf16_length(text) <= high:
        return False
    return all(ch in _PUNCTUATION or unicodedata.category(ch)[0] in "LNZ" for ch in text)


def check_tags(pairs: Iterable[tuple[str, str]], *, limit: int, what: str) -> dict[str, str]:
    """The tag set as an ordered dict; raises AWS's error for the first rule it
    breaks.  The one validator for object and bucket tags (``titans3.s3.tagging``
    uses it for bucket tagging bodies)."""
    pairs = list(pairs)
    tags: dict[str, str] = {}
    for key, value in pairs:
        if not valid_tag_text(key, 1, MAX_TAG_KEY):
            raise InvalidTag("The TagKey you have provided is invalid", TagKey=key)
        if not valid_tag_text(value, 0, MAX_TAG_VALUE):
            raise InvalidTag("The TagValue you have provided is invalid", TagKey=key)
        if key in tags:
            raise InvalidTag("Cannot provide multiple Tags with the same key", TagKey=key)
        if key.lower().startswith("aws:"):
            raise InvalidTag("Your TagKey cannot be prefixed with aws:", TagKey=key)
        tags[key] = value
    if len(pairs) > limit:  # AWS: InvalidTag on an object, BadRequest on a bucket
        too_many = InvalidTag if what == "Object" else BadRequest
        raise too_many(f"{what} tags cannot be greater than {limit}")
    return tags


def validate_tags(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """An object's tag set (at most ``MAX_TAGS``), as an ordered dict."""
    return check_tags(pairs, limit=MAX_TAGS, what="Object")


def tags_of(rec: VersionRecord) -> dict[str, str]:
    return dict(rec.extra.get(TAGS) or {})


def with_tags(
    extra: Mapping[str, Any] | None, tags: Mapping[str, str] | None
) -> dict[str, Any]:
    """``extra`` for a new record carrying ``tags`` (none stored when empty)."""
    out = dict(extra or {})
    if tags:
        out[TAGS] = dict(tags)
    else:
        out.pop(TAGS, None)
    return out
