"""Bucket versioning state and the listing of every version (ListObjectVersions).

Theory of operation
-------------------
*State.*  A bucket starts unversioned (``""``); PutBucketVersioning moves it to
``Enabled`` or ``Suspended`` and never back (AWS).  The state lives in the
bucket record (a quorum register, ``objects/buckets.py``); writes read it once
per request:

* ``Enabled``: every PUT/copy/complete gets a fresh version id; DELETE without
  a version id adds a delete marker;
* ``Suspended``: writes create the *null* version, replacing the previous null
  version (older numbered versions stay); DELETE adds a null delete marker,
  which also replaces the null version;
* unversioned: like suspended, except that DELETE leaves no marker.

(The null-version mechanics -- a new null record beside the old one, the old
one purged once the new one is safe -- are the writes part's: ``objects/writes.py``.)

*Listing.*  Versions are listed from the same merged drive ranges as objects
(``listing.merged_entries``): every key comes with all of its visible versions,
newest first, resolved with the read quorum rule, so the listing shows exactly
what GET ``?versionId=`` would find.  ``IsLatest`` is the first of them.  The
page holds up to ``max_keys`` items, where a version, a delete marker and a
common prefix count one each; a key's versions may be split across pages.
Resuming follows AWS: ``key-marker`` alone continues after *all* versions of
that key; with ``version-id-marker`` it continues with the versions of that key
older than the marker version, then with the following keys.

*Delete markers on reads* (:func:`delete_marker_error`): a GET/HEAD whose
current version is a marker is 404 ``NoSuchKey``; one that names a marker by
version id is 405 ``MethodNotAllowed``; both carry ``x-amz-delete-marker:
true`` and the marker's version id, and the 405 also ``Last-Modified`` and
``Allow: DELETE`` -- what AWS sends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from titans3.core.errors import InvalidArgument, QuorumError
from titans3.drive.records import VersionRecord
from titans3.objects import listing
from titans3.objects.lockrules import InvalidBucketState, lock_config
from titans3.objects.lookup import Lookup, delete_marker_error, object_info  # noqa: F401 -- re-exported
from titans3.objects.resolve import Resolved, write_quorum
from titans3.objects.types import ObjectInfo, VersionsPage
from titans3.objects.versionid import is_version_id

if TYPE_CHECKING:
    from titans3.objects.context import StoreContext

STATES = ("Enabled", "Suspended")


def _s3_vid(rec: VersionRecord) -> str:
    return "null" if rec.null else rec.vid


def _resume_index(resolved: list[Resolved], version_id_marker: str) -> int:
    """Index of the first version of the marker key still to list."""
    for i, r in enumerate(resolved):
        if _s3_vid(r.record) == version_id_marker:
            return i + 1
    if version_id_marker == "null":
        return len(resolved)  # the null version is gone: nothing of this key is left
    # The marker version is gone: continue with the versions older than it.
    for i, r in enumerate(resolved):
        if r.record.vid < version_id_marker:
            return i
    return len(resolved)


class Versions:
    """Bucket versioning state and ListObjectVersions."""

    def __init__(self, ctx: StoreContext, lookup: Lookup) -> None:
        self.ctx = ctx
        self.lookup = lookup

    async def put_bucket_versioning(self, bucket: str, status: str) -> None:
        """Set ``Enabled`` or ``Suspended``; ``NoSuchBucket``."""
        if status not in STATES:
            raise InvalidArgument(f"Invalid versioning status {status!r}")
        brec = await self.ctx.buckets.get(bucket)
        cfg = lock_config(brec.config)
        if status != "Enabled" and cfg and cfg.get("enabled"):
            raise InvalidBucketState("An Object Lock configuration is present on this bucket, "
                                     "so the versioning state cannot be changed.")
        if brec.versioning != status:
            await self.ctx.buckets.update(bucket, versioning=status)

    async def get_bucket_versioning(self, bucket: str) -> str:
        """``""`` (never configured), ``Enabled`` or ``Suspended``."""
        return (await self.ctx.buckets.get(bucket)).versioning

    async def list_object_versions(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        version_id_marker: str = "",
        max_keys: int = 1000,
    ) -> VersionsPage:
        brec = await self.ctx.buckets.get(bucket)
        if version_id_marker:
            if not key_marker:
                raise InvalidArgument(
                    "A version-id marker cannot be specified without a key marker.",
                    ArgumentName="version-id-marker", ArgumentValue=version_id_marker,
                )
            if version_id_marker != "null" and not is_version_id(version_id_marker):
                raise InvalidArgument("Invalid version id specified",
                                      ArgumentName="version-id-marker",
                                      ArgumentValue=version_id_marker)
        if max_keys <= 0:
            return VersionsPage([], [], False, None, None)
        sch = self.ctx.scheme_for(brec)
        items: list[ObjectInfo] = []
        prefixes: list[str] = []
        last: tuple[str, str | None] | None = None  # (key or prefix, version id)

        def full() -> bool:
            return len(items) + len(prefixes) >= max_keys

        def add_versions(name: str, resolved: list[Resolved], start: int) -> bool:
            """Add versions ``start..``; True when the page filled up with more to come."""
            nonlocal last
            for i in range(start, len(resolved)):
                if full():
                    return True
                info = object_info(bucket, name, resolved[i], is_latest=i == 0)
                items.append(info)
                last = (name, info.version_id)
            return False

        # 1. The rest of the marker key's versions.
        rolled_up = bool(delimiter) and delimiter in key_marker[len(prefix):]
        if version_id_marker and key_marker.startswith(prefix) and not rolled_up:
            _, _, resolved = await self.lookup.resolve(brec, key_marker.encode())
            if add_versions(key_marker, resolved, _resume_index(resolved, version_id_marker)):
                return self._versions_page(items, prefixes, last)
        # 2. The keys after it.
        async for e in listing.merged_entries(
            self.ctx.drives, brec.bucket_id, lambda k: self.ctx.placement(brec.bucket_id, k),
            k=sch.k, w=write_quorum(sch.k, sch.m), prefix=prefix.encode(),
            delimiter=delimiter.encode() or None, start_after=key_marker.encode() or None,
            page=min(1000, max_keys) + 1, min_answers=self.ctx.list_quorum(), skip=self.ctx.healing,
            m=sch.m,
        ):
            name = e.key.decode("utf-8", "surrogateescape")
            if e.is_prefix:
                if full():
                    return self._versions_page(items, prefixes, last)
                prefixes.append(name)
                last = (name, None)
                continue
            if e.unsure:  # hinted and not replayed yet, or a remnant: the hints decide
                try:
                    _, _, resolved = await self.lookup.resolve(brec, e.key)
                    e = listing.Listed(e.key, False, resolved)
                except QuorumError:
                    pass
            if e.versions and add_versions(name, e.versions, 0):
                return self._versions_page(items, prefixes, last)
        return VersionsPage(items, prefixes, False, None, None)

    @staticmethod
    def _versions_page(
        items: list[ObjectInfo], prefixes: list[str], last: tuple[str, str | None] | None
    ) -> VersionsPage:
        """A truncated page resuming after ``last``."""
        key, vid = last if last is not None else (None, None)
        return VersionsPage(items, prefixes, True, key, vid)
