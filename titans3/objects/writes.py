"""PUT and DELETE of one object (the multipart and copy paths are their own parts).

Theory of operation
-------------------
A PUT stages the body on the key's placement (hinted handoff for down
primaries), checks its condition under the key's lock, draws the version id
and commits the record on every drive that staged a fragment; acknowledged at
``W`` (``objects/commit.py``).  In an unversioned or suspended bucket the new
null version's predecessors are purged only after it is safe.  A DELETE is a
purge (never-versioned bucket), a delete marker, or the removal of one
version; deleting a rename's reference releases its anchor, and a version
that references still read becomes a hidden anchor instead of going
(``objects/rename.py``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping

from titans3.core import sse
from titans3.core.errors import NoSuchKey, NoSuchVersion, QuorumError
from titans3.core.storageclass import STANDARD
from titans3.drive.protocol import DriveState
from titans3.drive.records import HIDDEN, REF, REFS, STORAGE_CLASS, VersionRecord
from titans3.objects.anchors import Anchors, anchor_of
from titans3.objects.buckets import BucketRecord
from titans3.objects.commit import Committer
from titans3.objects.conditional import Conditions
from titans3.objects.context import StoreContext
from titans3.objects.lockrules import check_delete, initial_lock
from titans3.objects.lookup import Lookup, pick
from titans3.objects.resolve import write_quorum
from titans3.objects.sse import SSE, bucket_default, encryption_info
from titans3.objects.tags import ACL, with_tags
from titans3.objects.types import DeleteResult, Encryption, ObjectLock, PutResult, WriteCondition
from titans3.objects.validate import check_key


def etag_of(md5: bytes) -> str:
    return md5.hex()


class Writes:
    def __init__(self, ctx: StoreContext, lookup: Lookup, committer: Committer,
                 conditions: Conditions, anchors: Anchors) -> None:
        self.ctx = ctx
        self.lookup = lookup
        self.committer = committer
        self.conditions = conditions
        self.anchors = anchors

    async def put_object(
        self,
        bucket: str,
        key: str,
        body: AsyncIterator[bytes],
        *,
        size: int | None = None,
        meta: Mapping[str, str] | None = None,
        content_md5: str | None = None,
        checksums: Callable[[], Mapping[str, str]] | None = None,
        on_data: Callable[[memoryview], None] | None = None,
        tags: Mapping[str, str] | None = None,
        condition: WriteCondition | None = None,
        acl: bytes | None = None,
        encryption: Encryption | None = None,
        lock: ObjectLock | None = None,
        storage_class: str | None = None,
    ) -> PutResult:
        """``tags``: the new version's object tags (validated by the caller);
        ``condition``: a conditional write (``objects/conditional.py``);
        ``acl``: the version's ACL as the front packed it (kept like tags);
        ``encryption``: SSE (None: the bucket's default, if any; objects/sse.py);
        ``lock``: retention / legal hold (else the bucket's default, objects/lockrules.py);
        ``storage_class``: write with that class's scheme (``InvalidStorageClass``
        unless the operator mapped it, core/storageclass.py)."""
        return await self.put(bucket, key, body, size=size, meta=meta, content_md5=content_md5,
                              checksums=checksums, on_data=on_data, tags=tags, acl=acl,
                              condition=condition, encryption=encryption, lock=lock, storage_class=storage_class)

    async def put(
        self,
        bucket: str,
        key: str,
        body: AsyncIterator[bytes],
        *,
        size: int | None = None,
        meta: Mapping[str, str] | None = None,
        content_md5: str | None = None,
        checksums: Callable[[], Mapping[str, str]] | None = None,
        on_data: Callable[[memoryview], None] | None = None,
        tags: Mapping[str, str] | None = None,
        acl: bytes | None = None,
        condition: WriteCondition | None = None,
        encryption: Encryption | None = None,
        lock: ObjectLock | None = None,
        storage_class: str | None = None,
        md5: bool = True,
    ) -> PutResult:
        """:meth:`put_object`; ``md5=False``: no MD5 ETag (``""``), for callers
        that never show one (``objects/extents.py``)."""
        brec = await self.ctx.buckets.get(bucket)
        kb = check_key(key)
        sch_of_class = self.ctx.scheme_of_class(brec, storage_class)
        locked = initial_lock(brec.config, lock, time.time_ns())
        seen = await self.conditions.precheck(brec, bucket, key, kb, condition)
        enc = encryption or bucket_default(brec.config)
        sealed = await self.ctx.keys.seal_new(brec.bucket_id, kb, enc) if enc else None
        salt = sse.new_salt().hex()
        positions, sch, written = await self.committer.stage(
            brec, kb, body, size, content_md5, on_data, hinted=True, md5=md5,
            stream_key=sse.stream_key(sealed.data_key, bytes.fromhex(salt)) if sealed else None,
            scheme=sch_of_class)
        try:
            cks = dict(checksums()) if checksums is not None else {}
        except BaseException:
            await self.committer.discard(positions, written)
            raise
        versioned = brec.versioning == "Enabled"
        etag = sealed.etag(written.md5, salt) if sealed else etag_of(written.md5)
        extra = with_tags(None, tags)
        if acl is not None:
            extra[ACL] = acl
        if sealed:
            extra[SSE] = {**sealed.doc, "s": salt}
        extra.update(locked)
        if storage_class not in (None, STANDARD):
            extra[STORAGE_CLASS] = storage_class

        async with self.conditions.guard(brec, bucket, key, kb, condition, seen,
                                      lambda: self.committer.discard(positions, written)):
            vid = self.ctx.clock.new_id()
            now = time.time_ns()

            def make(j: int) -> VersionRecord:
                return VersionRecord(
                    vid=vid, mtime_ns=now, null=not versioned, size=written.size, etag=etag,
                    ec=(sch.k, sch.m, sch.segment_size), frag_index=j, data=written.data_id,
                    inline=written.inline is not None, meta=dict(meta or {}), checksums=cks,
                    extra=dict(extra),
                )

            older = await self.committer.commit_or_rollback(
                brec, kb, positions, written.ok, write_quorum(sch.k, sch.m), make,
                lambda j: [written.data_id], written.inline, written.data_id,
            )
        if not versioned:
            self.committer.purge_older_nulls(brec, kb, positions, vid, older)
        return PutResult(etag, vid if versioned else "null", written.size, cks, now,
                         info=encryption_info(bucket, key, extra.get(SSE)))

    # ----------------------------------------------------------- reads

    async def delete_object(self, bucket: str, key: str, *, version_id: str | None = None,
                            bypass_governance: bool = False) -> DeleteResult:
        """``bypass_governance``: the caller may and did ask to bypass GOVERNANCE
        retention (a locked version is refused otherwise, objects/lockrules.py)."""
        brec = await self.ctx.buckets.get(bucket)
        kb = check_key(key)
        sch = self.ctx.scheme_for(brec)
        w = write_quorum(sch.k, sch.m)
        positions = self.ctx.placement(brec.bucket_id, kb)
        live = [j for j, p in enumerate(positions) if self.ctx.drives[p].state == DriveState.ONLINE]
        if len(live) < w:
            raise QuorumError()
        if version_id is not None:
            # doubtful: a version the drives that did not answer decide must go
            # too -- skipped, it would be there when they answer (objects/resolve.py).
            _, _, resolved = await self.lookup.resolve(brec, kb, doubtful=True)
            try:
                r, _ = pick(resolved, version_id)
            except (NoSuchVersion, NoSuchKey):
                return DeleteResult(version_id, False)  # AWS: deleting a missing version is a no-op
            check_delete(r.record, bypass=bypass_governance)
            if r.record.extra.get(REFS):  # renamed copies still read it: keep it as an anchor
                _, per, _ = await self.lookup.resolve(brec, kb)
                if await self.committer.recommit(brec, kb, positions, per, r.record.vid,
                                        lambda x: x.extra.__setitem__(HIDDEN, True)) < w:
                    raise QuorumError()
                return DeleteResult(version_id, False)
            tomb = VersionRecord(vid=r.record.vid, tomb=True)
            n = await self.committer.commit(brec, kb, positions, live, lambda j: tomb, lambda j: [])
            if n < w:
                raise QuorumError()
            await self._released(brec, kb, r.record)
            return DeleteResult(version_id, r.record.dm)
        if brec.versioning == "":
            # Never-versioned bucket: remove the null versions outright.  No
            # marker is needed: a drive that misses the purge holds a copy on
            # fewer than k drives, which readers ignore (objects/resolve.py).
            # doubtful: a version held by k drives, one of them not answering,
            # is an object for the readers that ask it -- purge it as well.
            _, per, resolved = await self.lookup.resolve(brec, kb, doubtful=True)
            if not resolved or (resolved[0].record.dm and resolved[0].certain):
                return DeleteResult(None, False)
            current = resolved[0].record
            if current.extra.get(REFS):
                # Being renamed right now (objects/rename.py): a null purge spares
                # it, so hide it -- gone whether the rename completes or rolls back.
                if await self.committer.recommit(brec, kb, positions, per, current.vid,
                                                 lambda x: x.extra.__setitem__(HIDDEN, True)) < w:
                    raise QuorumError()
                return DeleteResult(None, False)
            # The purge removes null versions older than its id: drawn after the
            # ids just seen, so a version another host stamped with a clock ahead
            # of ours is older than it too (an acknowledged DELETE that left it
            # would bring the object back).
            for r in resolved:
                self.ctx.clock.observe(r.record.vid)
            purge = VersionRecord(vid=self.ctx.clock.new_id(), tomb=True, null=True)
            if await self.committer.commit(brec, kb, positions, live, lambda j: purge, lambda j: []) < w:
                raise QuorumError()
            await self._released(brec, kb, resolved[0].record)
            return DeleteResult(None, False)
        null = brec.versioning != "Enabled"
        vid = self.ctx.clock.new_id()
        marker = VersionRecord(vid=vid, mtime_ns=time.time_ns(), null=null, dm=True)
        older = await self.committer.commit_or_rollback(
            brec, kb, positions, live, w, lambda j: marker, lambda j: []
        )
        if null:
            self.committer.purge_older_nulls(brec, kb, positions, vid, older)
        return DeleteResult("null" if null else vid, True)

    async def _released(self, brec: BucketRecord, key: bytes, rec: VersionRecord) -> None:
        """A deleted reference no longer holds its anchor (objects/rename.py)."""
        if REF in rec.extra:
            akey, avid = anchor_of(rec, key)
            await self.anchors.release(brec, akey, avid, (key, rec.vid))

    # ----------------------------------------------------------- listing
