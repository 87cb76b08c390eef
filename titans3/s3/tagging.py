"""Tag sets: the ``<Tagging>`` document of bucket (and object) tagging.

Theory of operation
-------------------
Pure functions, no I/O.  :func:`parse_tagging` validates a Put*Tagging body
as S3 does and returns the tags in document order; :func:`render_tagging`
writes the Get*Tagging answer; :func:`encode_tags` / :func:`decode_tags` are
the compact JSON kept in the bucket record.

Rules (S3's, with its codes and messages):

* shape -- root ``Tagging`` with exactly one ``TagSet``; each ``Tag`` has
  exactly one ``Key`` and one ``Value``; anything else is ``MalformedXML``;
* a key is 1-128 and a value 0-256 characters, counted as UTF-16 code units
  like S3 does, made only of letters, numbers, spaces and ``+ - = . _ : / @``
  (``InvalidTag``, "The TagKey/TagValue you have provided is invalid");
* keys are unique (``InvalidTag``, "Cannot provide multiple Tags with the same
  key") and may not start with ``aws:`` (reserved for AWS's own tags);
* at most ``limit`` tags: 50 on a bucket, 10 on an object (``BadRequest``).

The value rules are the object layer's (:func:`titans3.objects.tagging.check_tags`),
one validator for object and bucket tags; this module adds the XML.

An empty ``TagSet`` is valid and means "no tags".
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from titans3.core.errors import MalformedXML
from titans3.objects import MAX_TAG_KEY, MAX_TAG_VALUE, check_tags, valid_tag_text
from titans3.s3.xml import S3_NS, escape, parse_document

BUCKET_TAG_LIMIT = 50
OBJECT_TAG_LIMIT = 10
MAX_KEY = MAX_TAG_KEY
MAX_VALUE = MAX_TAG_VALUE

Tags = list[tuple[str, str]]


def validate_tags(tags: Sequence[tuple[str, str]], *, limit: int, what: str = "Bucket") -> None:
    """Raise the S3 error for the first rule ``tags`` breaks (the object layer's
    validator, :func:`titans3.objects.tagging.check_tags`, with this limit)."""
    check_tags(tags, limit=limit, what=what)


def parse_tagging(data: bytes, *, limit: int = BUCKET_TAG_LIMIT, what: str = "Bucket") -> Tags:
    """The tags of a ``<Tagging>`` body, validated; ``MalformedXML``/``InvalidTag``/``BadRequest``."""
    root = parse_document(data)
    if root.tag != "Tagging" or (root.text or "").strip():
        raise MalformedXML()
    sets = list(root)
    if len(sets) != 1 or sets[0].tag != "TagSet" or (sets[0].tail or "").strip():
        raise MalformedXML()
    tag_set = sets[0]
    if (tag_set.text or "").strip():
        raise MalformedXML()
    tags: Tags = []
    for tag in tag_set:
        if tag.tag != "Tag" or (tag.text or "").strip() or (tag.tail or "").strip():
            raise MalformedXML()
        fields: dict[str, str] = {}
        for kid in tag:
            if kid.tag not in ("Key", "Value") or kid.tag in fields or len(kid):
                raise MalformedXML()
            if (kid.tail or "").strip():
                raise MalformedXML()
            fields[kid.tag] = kid.text or ""
        if "Key" not in fields or "Value" not in fields:
            raise MalformedXML()
        tags.append((fields["Key"], fields["Value"]))
    validate_tags(tags, limit=limit, what=what)
    return tags


def render_tagging(tags: Sequence[tuple[str, str]]) -> bytes:
    """The Get*Tagging body."""
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n', f'<Tagging xmlns="{S3_NS}"><TagSet>']
    for key, value in tags:
        parts.append(f"<Tag><Key>{escape(key)}</Key><Value>{escape(value)}</Value></Tag>")
    parts.append("</TagSet></Tagging>")
    return "".join(parts).encode("utf-8")


def encode_tags(tags: Sequence[tuple[str, str]]) -> bytes:
    return json.dumps([list(t) for t in tags], separators=(",", ":"), ensure_ascii=False).encode()


def decode_tags(raw: bytes) -> Tags:
    return [(k, v) for k, v in json.loads(raw)]


__all__ = [
    "BUCKET_TAG_LIMIT", "OBJECT_TAG_LIMIT", "Tags", "decode_tags",
    "encode_tags", "parse_tagging", "render_tagging", "valid_tag_text", "validate_tags",
]  # fmt: skip
