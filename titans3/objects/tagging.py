"""Updating the tags of an existing version (the validation rules: ``objects/tags.py``).

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
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from titans3.core.errors import QuorumError
from titans3.drive.records import VersionRecord
from titans3.objects.commit import Committer
from titans3.objects.context import StoreContext
from titans3.objects.lookup import Lookup, delete_marker_error, pick
from titans3.objects.resolve import write_quorum
from titans3.objects.tags import (  # noqa: F401 -- re-exported: the rules' old home
    MAX_TAG_KEY,
    MAX_TAG_VALUE,
    MAX_TAGS,
    STAMP,
    TAGS,
    check_tags,
    tags_of,
    valid_tag_text,
    validate_tags,
    with_tags,
)
from titans3.objects.validate import check_key


class Tagging:
    """Get/Put/DeleteObjectTagging over the key's holders."""

    def __init__(self, ctx: StoreContext, lookup: Lookup, committer: Committer) -> None:
        self.ctx = ctx
        self.lookup = lookup
        self.committer = committer

    async def get_object_tagging(
        self, bucket: str, key: str, *, version_id: str | None = None
    ) -> tuple[str, dict[str, str]]:
        """``(S3 version id, tags)`` of the current or the given version."""
        brec = await self.ctx.buckets.get(bucket)
        kb = check_key(key)
        _, _, resolved = await self.lookup.resolve(brec, kb)
        r, _ = pick(resolved, version_id)
        if r.record.dm:
            raise delete_marker_error(r.record, key, version_id, "GET")
        return ("null" if r.record.null else r.record.vid), tags_of(r.record)

    async def put_object_tagging(
        self, bucket: str, key: str, tags: Mapping[str, str], *, version_id: str | None = None,
    ) -> str:
        """Replace the version's tags; returns its S3 version id."""
        checked = validate_tags(tags.items())

        def replace_tags(rec: VersionRecord) -> None:
            rec.extra = with_tags(rec.extra, checked)

        return await self._update_version(bucket, key, version_id, "PUT", replace_tags)

    async def delete_object_tagging(
        self, bucket: str, key: str, *, version_id: str | None = None
    ) -> str:
        def drop_tags(rec: VersionRecord) -> None:
            rec.extra = with_tags(rec.extra, None)

        return await self._update_version(bucket, key, version_id, "DELETE", drop_tags)

    async def _update_version(
        self, bucket: str, key: str, version_id: str | None, method: str,
        mutate: Callable[[VersionRecord], object],
    ) -> str:
        """Re-commit one version with changed fields on its holders (module doc)."""
        brec = await self.ctx.buckets.get(bucket)
        kb = check_key(key)
        positions, per, resolved = await self.lookup.resolve(brec, kb)
        r, _ = pick(resolved, version_id)
        target = r.record
        if target.dm:
            raise delete_marker_error(target, key, version_id, method, always_405=True)
        k, m, _ = target.ec
        landed = await self.committer.recommit(brec, kb, positions, per, target.vid, mutate)
        if landed < write_quorum(k, m):
            raise QuorumError(f"only {landed} drives took the tag update")
        return "null" if target.null else target.vid
