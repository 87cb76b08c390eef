"""Replacing an object's user metadata without moving its bytes.

Theory of operation
-------------------
``chmod``, ``chown``, ``utimens`` and ``setxattr`` in a FUSE mount, and an S3
CopyObject of a key onto itself with ``x-amz-metadata-directive: REPLACE``,
change metadata only.  A plain copy would read, re-encode and write every
byte (``objects/copy.py``: a version record owns its data ids, so two
records may not share fragments).  Instead the new version is a
**reference** to the current one -- the rename machinery
(``objects/rename.py``, ``Renamer.reissue``) with the key renamed onto
itself: mark the current version, commit the new version (same size, ETag,
checksums, tags and parts; the new metadata; last-modified now) at the
write quorum, then hide the old one as its anchor (unversioned bucket) or
leave it as the previous version (versioned bucket).  The cost is a few
metadata commits whatever the size; a reference read is one more metadata
round (the anchor's holders), never one more hop (a reissue of a reference
references the original anchor).

Guarantees are those of any write: the new version is visible exactly when
it reached ``W`` drives (a crash before leaves the old version current and
readable; the mark is settled by the next reader after the rename window),
read-after-write from any host, last-writer-wins against concurrent PUTs.

What a reference cannot carry -- an encrypted version (SSE keys), a storage
class other than STANDARD, retention or legal hold, a bucket with object lock
-- falls back to the streamed copy, with the same result for the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from titans3.objects.copy import Copier
from titans3.objects.rename import Renamer
from titans3.objects.types import CopyResult, ObjectInfo, PutResult


class MetaUpdates:
    def __init__(self, renamer: Renamer, copier: Copier) -> None:
        self.renamer = renamer
        self.copier = copier
        self.reissued = 0  # metadata updates that moved no data
        self.copied = 0  # ... that fell back to a copy

    async def replace_metadata(
        self, bucket: str, key: str, meta: Mapping[str, str], *,
        check_source: Callable[[ObjectInfo], None] | None = None, acl: bytes | None = None,
    ) -> CopyResult:
        """A new current version of ``key`` with user metadata ``meta`` (the
        whole set, as REPLACE) and the current version's bytes and tags
        (api.py); ``acl``: the new version's own (None: the bucket owner's)."""
        res = await self.renamer.reissue(bucket, key, meta, check_source=check_source, acl=acl)
        if res is None:
            self.copied += 1
            return await self.copier.copy_object(bucket, key, bucket, key, meta=meta,
                                                 check_source=check_source, acl=acl)
        self.reissued += 1
        new = res.info
        put = PutResult(new.etag, new.version_id, new.size, dict(new.checksums), new.mtime_ns, new)
        return CopyResult(res.source, put=put)
