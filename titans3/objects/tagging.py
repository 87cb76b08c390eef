"""Object tags: validation (pure) and updating the tags of an existing version.

Theory of operation
-------------------
Tags belong to one version (AWS): they are written with it (PUT, copy,
CreateMultipartUpload -> Complete) and stored in its version record
(``extra["tags"]``: an ordered ``{key: value}`` map), so they travel with the
record to every holding drive, survive repair and are returned by any ``k``
drives.

Changing the tags of an existing version (Put/DeleteObjectTagging) cannot
create a new version, so it *re-commits the same version id* with the new tags
on every drive that holds it: each drive gets its own record back (its own
fragment index and data ids, so ``merge_commit`` replaces the record and frees
nothing) with the tags replaced and a fresh change stamp ``extra["mu"]`` drawn
from the version clock.  The update is acknowledged when ``W`` holders took
it.  Readers take the holder with the newest stamp as the version's
representative (``objects/resolve.py``), so any read quorum overlaps the ``W``
updated drives and sees the new tags: read-after-write holds for tags too.

Known limit: an update racing a delete of the same version (or a purge of an
old null version) can re-insert that version's record on a drive after the
delete reached it.  Such a copy is held by fewer than ``W`` drives (or is a
shadowed null version) and stays invisible; GC removes it.

Limits are AWS's: at most 10 tags (400 ``InvalidTag``), keys of 1-128 and
values of 0-256 Unicode characters from letters, digits, white space and
``_ . : / = + - @`` (``InvalidTag``), no ``aws:`` prefix, no duplicate keys.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from titans3.core.errors import BadRequest, InvalidTag, QuorumError
from titans3.drive.records import VersionRecord
from titans3.objects.resolve import write_quorum
from titans3.objects.validate import check_key
from titans3.objects.versions import delete_marker_error

if TYPE_CHECKING:
    from titans3.objects.store import ObjectStore

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


class TaggingMixin:
    """Object tagging operations of :class:`~titans3.objects.store.ObjectStore`."""

    async def get_object_tagging(
        self: ObjectStore, bucket: str, key: str, *, version_id: str | None = None
    ) -> tuple[str, dict[str, str]]:
        """``(S3 version id, tags)`` of the current or the given version."""
        brec = await self.buckets.get(bucket)
        kb = check_key(key)
        _, _, resolved = await self._resolve(brec, kb)
        r, _ = self._pick(resolved, version_id)
        if r.record.dm:
            raise delete_marker_error(r.record, key, version_id, "GET")
        return ("null" if r.record.null else r.record.vid), tags_of(r.record)

    async def put_object_tagging(
        self: ObjectStore, bucket: str, key: str, tags: Mapping[str, str], *,
        version_id: str | None = None,
    ) -> str:
        """Replace the version's tags; returns its S3 version id."""
        checked = validate_tags(tags.items())

        def replace_tags(rec: VersionRecord) -> None:
            rec.extra = with_tags(rec.extra, checked)

        return await self._update_version(bucket, key, version_id, "PUT", replace_tags)

    async def delete_object_tagging(
        self: ObjectStore, bucket: str, key: str, *, version_id: str | None = None
    ) -> str:
        def drop_tags(rec: VersionRecord) -> None:
            rec.extra = with_tags(rec.extra, None)

        return await self._update_version(bucket, key, version_id, "DELETE", drop_tags)

    async def _update_version(
        self: ObjectStore, bucket: str, key: str, version_id: str | None, method: str,
        mutate: Callable[[VersionRecord], object],
    ) -> str:
        """Re-commit one version with changed fields on its holders (module doc)."""
        brec = await self.buckets.get(bucket)
        kb = check_key(key)
        positions, per, resolved = await self._resolve(brec, kb)
        r, _ = self._pick(resolved, version_id)
        target = r.record
        if target.dm:
            raise delete_marker_error(target, key, version_id, method, always_405=True)
        stamp = self.clock.new_id()
        updated: dict[int, VersionRecord] = {}
        for j, recs in enumerate(per):
            for rec in recs or ():
                if rec.vid == target.vid and not rec.tomb:
                    new = VersionRecord.from_dict(rec.to_dict())
                    mutate(new)
                    new.extra[STAMP] = stamp
                    updated[j] = new
        k, m, _ = target.ec
        landed = await self._commit(brec, kb, positions, sorted(updated),
                                    lambda j: updated[j], lambda j: [])
        if landed < write_quorum(k, m):
            raise QuorumError(f"only {landed} drives took the tag update")
        return "null" if target.null else target.vid
