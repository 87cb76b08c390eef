"""Reading a key's records from its drives and resolving its versions.

Theory of operation
-------------------
Every read starts here: :meth:`Lookup.gather` asks the key's placement
drives (not the healing ones) for their records, merges the records of
hinted writes whose primary has not got them yet (``objects/handoff.py``)
and, during a ring change, also asks the old placement's drives.
:meth:`Lookup.resolve` applies the read quorum rule
(``objects/resolve.py``) and refuses with ``QuorumError`` when fewer than
``k`` drives answered.  :func:`object_info` and :func:`pick` turn resolved
versions into what the API returns.
"""

from __future__ import annotations

import email.utils
from contextlib import suppress

import trio

from titans3.core.errors import (
    DriveError,
    InvalidArgument,
    MethodNotAllowed,
    NoSuchKey,
    NoSuchVersion,
    QuorumError,
    S3Error,
)
from titans3.drive.protocol import Drive
from titans3.drive.records import REF, STORAGE_CLASS, VersionRecord
from titans3.objects import handoff, spares
from titans3.objects.buckets import BucketRecord
from titans3.objects.context import StoreContext
from titans3.objects.lockrules import LEGAL_HOLD, RETENTION, lock_of
from titans3.objects.resolve import Resolved, resolve_versions, s3_version_id, write_quorum
from titans3.objects.sse import SSE, describe
from titans3.objects.tags import ACL, tags_of
from titans3.objects.types import ObjectInfo, PartInfo
from titans3.objects.versionid import is_version_id

PerDrive = list[list[VersionRecord] | None]
# The 503 for a version the drives that did not answer decide (objects/resolve.py).
DOUBTFUL = "the drives that did not answer decide whether this version exists"


def delete_marker_error(rec: VersionRecord, key: str, version_id: str | None, method: str,
                        *, always_405: bool = False) -> S3Error:
    """The error for reaching delete marker ``rec`` (see module doc).

    ``always_405``: operations that modify a version (PutObjectTagging) answer
    405 even when the marker is merely the current version, as AWS does.
    """
    vid = "null" if rec.null else rec.vid
    err: S3Error
    if version_id is None and not always_405:
        err = NoSuchKey(Key=key)
    else:
        err = MethodNotAllowed(Method=method, ResourceType="DeleteMarker")
        err.headers.append(("Allow", "DELETE"))
        if version_id is None:
            return err  # AWS names the marker only when the request did
        err.headers.append(
            ("Last-Modified", email.utils.formatdate(rec.mtime_ns // 1_000_000_000, usegmt=True))
        )
    err.headers.append(("x-amz-delete-marker", "true"))
    err.headers.append(("x-amz-version-id", vid))
    return err


def object_info(bucket: str, key: str, r: Resolved, is_latest: bool = True) -> ObjectInfo:
    rec = r.record
    return ObjectInfo(
        bucket=bucket,
        key=key,
        version_id=s3_version_id(rec),
        size=rec.size,
        etag=rec.etag,
        # A rename's reference shows its source's last-modified time (objects/rename.py).
        mtime_ns=rec.extra[REF][2] if REF in rec.extra else rec.mtime_ns,
        meta=dict(rec.meta),
        checksums=dict(rec.checksums),
        delete_marker=rec.dm,
        is_latest=is_latest,
        parts_count=len(rec.parts),
        tags=tags_of(rec),
        part_sizes=tuple(p.size for p in rec.parts),
        acl=rec.extra.get(ACL),
        parts=tuple(PartInfo(p.number, p.size, p.etag, rec.mtime_ns, dict(p.checksums))
                    for p in rec.parts),
        **describe(rec.extra.get(SSE)),
        lock=lock_of(rec) if RETENTION in rec.extra or LEGAL_HOLD in rec.extra else None,
        storage_class=rec.extra.get(STORAGE_CLASS, "STANDARD"),
    )


def pick(resolved: list[Resolved], version_id: str | None) -> tuple[Resolved, bool]:
    """The current version (``version_id`` None) or the named one, and whether it is the latest."""
    if version_id is None:
        if not resolved:
            raise NoSuchKey()
        return resolved[0], True
    if version_id != "null" and not is_version_id(version_id):
        raise InvalidArgument("Invalid version id specified", ArgumentName="versionId",
                              ArgumentValue=version_id)
    for i, r in enumerate(resolved):
        if s3_version_id(r.record) == version_id:
            return r, i == 0
    raise NoSuchVersion(Key="", VersionId=version_id)


class Lookup:
    def __init__(self, ctx: StoreContext) -> None:
        self.ctx = ctx

    async def gather(self, bucket_id: bytes, key: bytes) -> tuple[list[int], PerDrive]:
        """Per placement drive its records of ``key`` (None: no answer)."""
        ctx = self.ctx
        positions = ctx.placement(bucket_id, key)
        per: PerDrive = [None] * len(positions)

        async def one(j: int, d: Drive) -> None:
            try:
                per[j] = await d.read_versions(bucket_id, key)
            except DriveError:
                per[j] = None

        waits: list[tuple[int, Drive]] = []
        for j, pos in enumerate(positions):
            if pos in ctx.healing:
                continue
            d = ctx.drives[pos]
            nowait = getattr(d, "read_versions_nowait", None)  # LocalDrive's fast path
            if nowait is not None:
                try:
                    recs = nowait(bucket_id, key)
                except DriveError:
                    continue  # per[j] stays None: no answer
                if recs is not None:
                    per[j] = recs
                    continue
            waits.append((j, d))
        if waits:
            async with trio.open_nursery() as nursery:
                for j, d in waits:
                    nursery.start_soon(one, j, d)
        else:
            await trio.lowlevel.checkpoint()
        await handoff.merge_hints(ctx, bucket_id, key, positions, per)
        await spares.fill_failed(ctx, bucket_id, key, positions, per)  # failed drives' spares
        extra = ctx.old_extra(bucket_id, key, positions)
        if extra:  # ring change: fragments not yet moved are still on the old drives
            more: PerDrive = [None] * len(extra)

            async def old(j: int, d: Drive) -> None:
                with suppress(DriveError):
                    more[j] = await d.read_versions(bucket_id, key)

            async with trio.open_nursery() as nursery:
                for j, pos in enumerate(extra):
                    nursery.start_soon(old, j, ctx.drives[pos])
            # An old drive that did not answer is not "unseen": the new placement decides.
            return positions + extra, per + [m if m is not None else [] for m in more]
        return positions, per

    async def resolve(
        self, brec: BucketRecord, key: bytes, *, anchors: bool = False, doubtful: bool = False,
    ) -> tuple[list[int], PerDrive, list[Resolved]]:
        """The key's visible versions, newest first (``anchors``: rename anchors too;
        ``doubtful``: also those the drives that did not answer decide, as
        ``certain=False`` -- what a read must answer 503 for, objects/resolve.py)."""
        sch = self.ctx.scheme_for(brec)
        positions, per = await self.gather(brec.bucket_id, key)
        if sum(1 for p in per if p is not None) < sch.k:
            raise QuorumError()
        resolved = resolve_versions(per, k=sch.k, w=write_quorum(sch.k, sch.m), anchors=anchors,
                                    doubtful=doubtful, m=sch.m)
        return positions, per, resolved

    async def latest_info(self, brec: BucketRecord, bucket: str, key: str, kb: bytes
                          ) -> ObjectInfo | None:
        """The key's current object, or None (no versions, or a delete marker)."""
        _, _, resolved = await self.resolve(brec, kb, doubtful=True)
        if resolved and not resolved[0].certain:
            raise QuorumError(DOUBTFUL)
        if not resolved or resolved[0].record.dm:
            return None
        return object_info(bucket, key, resolved[0])
