"""ObjectStore: S3 semantics over a set of Drives (DESIGN §2-§6).

Theory of operation
-------------------
The store owns no bytes.  For every object it asks the ring which drives hold
which fragment, streams data through :mod:`~titans3.objects.writer` /
:mod:`~titans3.objects.reader`, and keeps the version list on each of those
drives with two-phase commits:

1. the body is erasure-coded into staging on the placement's drives;
2. each drive commits the version record (promoting its fragment) durably;
3. the PUT is acknowledged when ``W = k + 1`` drives committed.  Below that the
   partial commits are rolled back and the client gets 503 -- and even if the
   rollback cannot run (crash), readers ignore a version held by fewer than
   ``W`` drives (:mod:`~titans3.objects.resolve`).

Reads resolve the newest version from every placement drive's records, then
read ``k`` fragments.  Version ids come from one hybrid logical clock, so the
last writer wins and concurrent writers never mix fragments (each stream has
its own data id).  The store does not care whether a Drive is local or remote.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import suppress
from typing import Any

import trio

from titans3.core.errors import (
    BucketNotEmpty,
    DriveError,
    InvalidArgument,
    InvalidRange,
    NoSuchKey,
    NoSuchVersion,
    QuorumError,
)
from titans3.drive.protocol import Drive, DriveState
from titans3.drive.records import Part, VersionRecord
from titans3.erasure.codec import Codec, ECScheme
from titans3.erasure.stripe import Layout, layout_for, resolve_range
from titans3.objects import handoff, listing
from titans3.objects.bucket_config import BucketConfigMixin
from titans3.objects.buckets import BucketRecord, BucketTable, is_system_bucket
from titans3.objects.commit import CommitMixin
from titans3.objects.conditional import ConditionalMixin, KeyLocks, WriteCondition
from titans3.objects.copy import CopyMixin
from titans3.objects.multipart import MultipartMixin
from titans3.objects.parts import part_span
from titans3.objects.reader import ReadStats, read_stream
from titans3.objects.resolve import Resolved, resolve_versions, write_quorum
from titans3.objects.tagging import TaggingMixin, tags_of, with_tags
from titans3.objects.types import (
    BucketInfo,
    DeleteResult,
    DriveInfo,
    GetResult,
    HostInfo,
    ListPage,
    ObjectInfo,
    PutResult,
)
from titans3.objects.uploads import UploadsMixin
from titans3.objects.validate import check_content_md5, check_key
from titans3.objects.versionid import HybridClock, is_version_id
from titans3.objects.versions import VersionsMixin, delete_marker_error
from titans3.ring.builder import Ring

log = logging.getLogger(__name__)

def s3_version_id(rec: VersionRecord) -> str:
    return "null" if rec.null else rec.vid


def etag_of(md5: bytes) -> str:
    return md5.hex()


class ObjectStore(
    CommitMixin, MultipartMixin, BucketConfigMixin, VersionsMixin, CopyMixin, TaggingMixin, UploadsMixin,
    ConditionalMixin,
):
    def __init__(
        self,
        drives: Sequence[Drive],
        ring: Ring,
        scheme: ECScheme,
        *,
        clock: HybridClock | None = None,
        inline_max: int = 128 << 10,
        host: str = "localhost",
        version: str = "",
        slots: Sequence[str] | None = None,
    ) -> None:
        self.drives = list(drives)
        # Ring members are slots; by default a drive's slot is its drive id.
        self.slots = list(slots) if slots is not None else [d.drive_id for d in self.drives]
        self._by_id = {s: i for i, s in enumerate(self.slots)}
        # Drives (by position) whose answers do not count in reads: blank
        # replacements not yet refilled (see titans3.disks.roster).
        self.healing: set[int] = set()
        self.ring = ring
        # During a ring change (titans3/workers/rebalance.py) the previous ring:
        # reads also ask its drives that the new placement replaced.
        self.old_ring: Ring | None = None
        self.scheme = scheme
        self.clock = clock or HybridClock()
        self.inline_max = inline_max
        self.host = host
        self.version = version
        self.buckets = BucketTable(self.drives, self.clock)
        self.key_locks = KeyLocks()  # conditional writes (objects/conditional.py)
        self._codecs: dict[tuple[int, int], Codec] = {}
        # Hinted-handoff plans of PUTs between staging and commit (objects/handoff.py).
        self.handoffs: dict[str, dict[int, handoff.HintedDrive]] = {}
        self._background: trio.Nursery | None = None
        self.degraded_reads = 0
        # Heal-on-read: called with (bucket_id, key, vid, bad drive ids) after a
        # read that needed parity or met a bad fragment (the repair worker's queue).
        self.on_degraded: Callable[[bytes, bytes, str, set[str]], None] | None = None
        # Called with (bucket_id, key) after a write acknowledged on fewer than
        # all of its drives (a drive died mid-stream, a host was away without a
        # handoff drive): the missed fragments are repair's to restore.
        self.on_partial_write: Callable[[bytes, bytes], None] | None = None
        self.partial_writes = 0

    # ----------------------------------------------------------- lifecycle
    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Own the nursery for after-acknowledgement work (purging old versions)."""
        async with trio.open_nursery() as nursery:
            self._background = nursery
            task_status.started()
            await trio.sleep_forever()

    def _later(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._background is not None:
            self._background.start_soon(fn, *args)

    def replace_drive(self, pos: int, drive: Drive) -> None:
        """Put ``drive`` at position ``pos`` (same slot, new disk): the disk
        manager's hot replacement.  The caller marks it healing if it is blank."""
        self.drives[pos] = drive
        self.buckets.replace_drive(pos, drive)

    # ----------------------------------------------------------- helpers
    def codec(self, k: int, m: int) -> Codec:
        c = self._codecs.get((k, m))
        if c is None:
            c = self._codecs[(k, m)] = Codec(ECScheme(k, m, self.scheme.segment_size))
        return c

    def scheme_for(self, brec: BucketRecord) -> ECScheme:
        if brec.ec:
            return ECScheme(brec.ec[0], brec.ec[1], self.scheme.segment_size)
        return self.scheme

    def placement(self, bucket_id: bytes, key: bytes) -> list[int]:
        return [self._by_id[d] for d in self.ring.drives_for(bucket_id, key)]

    def add_drives(self, drives: Sequence[Drive], slots: Sequence[str]) -> None:
        """Append drives of hosts that joined (positions of the others stay)."""
        for d, s in zip(drives, slots, strict=True):
            if s not in self._by_id:
                self._by_id[s] = len(self.drives)
                self.drives.append(d)
                self.slots.append(s)

    def _old_extra(self, bucket_id: bytes, key: bytes, positions: list[int]) -> list[int]:
        if self.old_ring is None:
            return []
        old = [self._by_id[d] for d in self.old_ring.drives_for(bucket_id, key) if d in self._by_id]
        return [p for p in old if p not in positions]

    def layout(self, rec_ec: tuple[int, int, int], size: int) -> Layout:
        k, m, seg = rec_ec
        codec = self.codec(k, m)
        return layout_for(size, ECScheme(k, m, seg), codec.fragment_size)

    async def _gather(self, bucket_id: bytes, key: bytes) -> tuple[list[int], list[list[VersionRecord] | None]]:
        positions = self.placement(bucket_id, key)
        per: list[list[VersionRecord] | None] = [None] * len(positions)

        async def one(j: int, d: Drive) -> None:
            try:
                per[j] = await d.read_versions(bucket_id, key)
            except DriveError:
                per[j] = None

        async with trio.open_nursery() as nursery:
            for j, pos in enumerate(positions):
                if pos not in self.healing:
                    nursery.start_soon(one, j, self.drives[pos])
        await handoff.merge_hints(self, bucket_id, key, positions, per)
        extra = self._old_extra(bucket_id, key, positions)
        if extra:  # ring change: fragments not yet moved are still on the old drives
            more: list[list[VersionRecord] | None] = [None] * len(extra)

            async def old(j: int, d: Drive) -> None:
                with suppress(DriveError):
                    more[j] = await d.read_versions(bucket_id, key)

            async with trio.open_nursery() as nursery:
                for j, pos in enumerate(extra):
                    nursery.start_soon(old, j, self.drives[pos])
            # An old drive that did not answer is not "unseen": the new placement decides.
            return positions + extra, per + [m if m is not None else [] for m in more]
        return positions, per

    async def _resolve(
        self, brec: BucketRecord, key: bytes
    ) -> tuple[list[int], list[list[VersionRecord] | None], list[Resolved]]:
        sch = self.scheme_for(brec)
        positions, per = await self._gather(brec.bucket_id, key)
        if sum(1 for p in per if p is not None) < sch.k:
            raise QuorumError()
        resolved = resolve_versions(per, k=sch.k, w=write_quorum(sch.k, sch.m))
        return positions, per, resolved

    def _info(self, bucket: str, key: str, r: Resolved, is_latest: bool = True) -> ObjectInfo:
        rec = r.record
        return ObjectInfo(
            bucket=bucket,
            key=key,
            version_id=s3_version_id(rec),
            size=rec.size,
            etag=rec.etag,
            mtime_ns=rec.mtime_ns,
            meta=dict(rec.meta),
            checksums=dict(rec.checksums),
            delete_marker=rec.dm,
            is_latest=is_latest,
            parts_count=len(rec.parts),
            tags=tags_of(rec),
            part_sizes=tuple(p.size for p in rec.parts),
        )

    @staticmethod
    def _pick(resolved: list[Resolved], version_id: str | None) -> tuple[Resolved, bool]:
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

    # ----------------------------------------------------------- buckets
    async def create_bucket(self, name: str, *, system: bool = False) -> BucketInfo:
        """``system``: a bucket of the daemon's own (``is_system_bucket``), which
        S3 can neither address nor list."""
        rec = await self.buckets.create(name, system=system)
        return BucketInfo(rec.name, rec.created_ns, rec.versioning)

    async def head_bucket(self, name: str) -> BucketInfo:
        rec = await self.buckets.get(name)
        return BucketInfo(rec.name, rec.created_ns, rec.versioning)

    async def list_buckets(self) -> list[BucketInfo]:
        return [BucketInfo(r.name, r.created_ns, r.versioning) for r in await self.buckets.list()
                if not is_system_bucket(r.name)]

    async def delete_bucket(self, name: str) -> None:
        brec = await self.buckets.get(name)
        sch = self.scheme_for(brec)
        async for entry in listing.merged_entries(
            self.drives, brec.bucket_id, lambda k: self.placement(brec.bucket_id, k),
            k=sch.k, w=write_quorum(sch.k, sch.m), prefix=b"", delimiter=None,
            start_after=None, page=100, min_answers=self._list_quorum(), skip=self.healing,
        ):
            if entry.versions:
                raise BucketNotEmpty(BucketName=name)
        await self.buckets.delete(name)

    def _list_quorum(self) -> int:
        return len(self.drives) - write_quorum(self.scheme.k, self.scheme.m) + 1

    # ----------------------------------------------------------- writes
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
        md5: bool = True,
    ) -> PutResult:
        """``tags``: the new version's object tags (validated by the caller);
        ``condition``: a conditional write (``objects/conditional.py``);
        ``md5=False``: no MD5 ETag (``""``), for callers that never show one."""
        brec = await self.buckets.get(bucket)
        kb = check_key(key)
        seen = await self._precheck(brec, bucket, key, kb, condition)
        positions, sch, written = await self._stage(brec, kb, body, size, content_md5, on_data,
                                                    hinted=True, md5=md5)
        try:
            cks = dict(checksums()) if checksums is not None else {}
        except BaseException:
            await self._discard(positions, written)
            raise
        versioned = brec.versioning == "Enabled"
        etag = etag_of(written.md5)
        extra = with_tags(None, tags)

        async with self._commit_guard(brec, bucket, key, kb, condition, seen,
                                      lambda: self._discard(positions, written)):
            vid = self.clock.new_id()
            now = time.time_ns()

            def make(j: int) -> VersionRecord:
                return VersionRecord(
                    vid=vid, mtime_ns=now, null=not versioned, size=written.size, etag=etag,
                    ec=(sch.k, sch.m, sch.segment_size), frag_index=j, data=written.data_id,
                    inline=written.inline is not None, meta=dict(meta or {}), checksums=cks,
                    extra=dict(extra),
                )

            older = await self._commit_or_rollback(
                brec, kb, positions, written.ok, write_quorum(sch.k, sch.m), make,
                lambda j: [written.data_id], written.inline, written.data_id,
            )
        if not versioned:
            self._purge_older_nulls(brec, kb, positions, vid, older)
        return PutResult(etag, vid if versioned else "null", written.size, cks, now)

    # ----------------------------------------------------------- reads
    async def head_object(self, bucket: str, key: str, *, version_id: str | None = None) -> ObjectInfo:
        brec = await self.buckets.get(bucket)
        kb = check_key(key)
        _, _, resolved = await self._resolve(brec, kb)
        r, latest = self._pick(resolved, version_id)
        if r.record.dm:
            raise delete_marker_error(r.record, key, version_id, "HEAD")
        return self._info(bucket, key, r, latest)

    async def get_object(
        self,
        bucket: str,
        key: str,
        *,
        version_id: str | None = None,
        byte_range: tuple[int | None, int | None] | None = None,
        part_number: int | None = None,
    ) -> GetResult:
        """``part_number``: serve that part (``objects/parts.py``) instead of a range."""
        brec = await self.buckets.get(bucket)
        kb = check_key(key)
        positions, per, resolved = await self._resolve(brec, kb)
        r, latest = self._pick(resolved, version_id)
        rec = r.record
        if rec.dm:
            raise delete_marker_error(rec, key, version_id, "GET")
        if not r.readable:
            raise QuorumError("too few fragments of this version are reachable")
        info = self._info(bucket, key, r, latest)
        if part_number is not None:
            span = part_span(rec.size, [p.size for p in rec.parts], part_number)
            byte_range = span if rec.size else None
        if byte_range is None:
            first, last, partial = 0, rec.size - 1, False
        else:
            rng = resolve_range(byte_range[0], byte_range[1], rec.size)
            if rng is None:
                raise InvalidRange(RangeRequested=_range_text(byte_range),
                                   ActualObjectSize=str(rec.size))
            first, last, partial = rng[0], rng[1], True
        holders: dict[int, Drive] = {}
        for j, recs in enumerate(per):
            for x in recs or ():
                if x.vid == rec.vid and not x.tomb:
                    holders.setdefault(x.frag_index,
                                       handoff.holder(self, self.drives[positions[j]], x))
        body = self._read_version(rec, holders, first, last, brec.bucket_id, kb)
        return GetResult(info=info, body=body, first=first, last=last, partial=partial)

    async def _read_version(
        self, rec: VersionRecord, holders: dict[int, Drive], first: int, last: int,
        bucket_id: bytes = b"", key: bytes = b"",
    ) -> AsyncIterator[bytes]:
        k, m, _ = rec.ec
        codec = self.codec(k, m)
        stats = ReadStats()
        if rec.inline:
            frags: dict[int, bytes] = {}
            candidates = sorted(holders)
            while len(frags) < k and candidates:
                batch, candidates = candidates[: k - len(frags)], candidates[k - len(frags) :]

                async def one(idx: int) -> None:
                    try:
                        frags[idx] = await holders[idx].read_fragment(rec.data or "", 0, 1 << 62)
                    except DriveError as e:
                        stats.degraded = True
                        log.warning("inline fragment %d unreadable: %s", idx, e)

                async with trio.open_nursery() as nursery:
                    for idx in batch:
                        nursery.start_soon(one, idx)
            if len(frags) < k:
                raise QuorumError("too few inline fragments readable")
            data = codec.decode(frags) if rec.size else b""
            yield data[first : last + 1]
        else:
            streams = [(rec.data or "", rec.size)] if not rec.parts else [
                (p.data_id, p.size) for p in rec.parts
            ]
            base = 0
            for data_id, size in streams:
                lo, hi = max(first, base), min(last, base + size - 1)
                if lo <= hi:
                    layout = self.layout(rec.ec, size)
                    async for chunk in read_stream(holders, data_id, layout, codec, lo - base,
                                                   hi - base, stats=stats):
                        yield chunk
                base += size
                if base > last:
                    break
        if stats.degraded:
            self.degraded_reads += 1
            if self.on_degraded is not None:
                self.on_degraded(bucket_id, key, rec.vid, stats.bad_drives or set())

    # ----------------------------------------------------------- deletes
    async def delete_object(self, bucket: str, key: str, *, version_id: str | None = None) -> DeleteResult:
        brec = await self.buckets.get(bucket)
        kb = check_key(key)
        sch = self.scheme_for(brec)
        w = write_quorum(sch.k, sch.m)
        positions = self.placement(brec.bucket_id, kb)
        live = [j for j, p in enumerate(positions) if self.drives[p].state == DriveState.ONLINE]
        if len(live) < w:
            raise QuorumError()
        if version_id is not None:
            _, _, resolved = await self._resolve(brec, kb)
            try:
                r, _ = self._pick(resolved, version_id)
            except (NoSuchVersion, NoSuchKey):
                return DeleteResult(version_id, False)  # AWS: deleting a missing version is a no-op
            tomb = VersionRecord(vid=r.record.vid, tomb=True)
            n = await self._commit(brec, kb, positions, live, lambda j: tomb, lambda j: [])
            if n < w:
                raise QuorumError()
            return DeleteResult(version_id, r.record.dm)
        if brec.versioning == "":
            # Never-versioned bucket: remove the null versions outright.  No
            # marker is needed: a drive that misses the purge holds a copy on
            # fewer than W drives, which readers ignore (objects/resolve.py).
            _, _, resolved = await self._resolve(brec, kb)
            if not resolved or resolved[0].record.dm:
                return DeleteResult(None, False)
            purge = VersionRecord(vid=self.clock.new_id(), tomb=True, null=True)
            if await self._commit(brec, kb, positions, live, lambda j: purge, lambda j: []) < w:
                raise QuorumError()
            return DeleteResult(None, False)
        null = brec.versioning != "Enabled"
        vid = self.clock.new_id()
        marker = VersionRecord(vid=vid, mtime_ns=time.time_ns(), null=null, dm=True)
        older = await self._commit_or_rollback(
            brec, kb, positions, live, w, lambda j: marker, lambda j: []
        )
        if null:
            self._purge_older_nulls(brec, kb, positions, vid, older)
        return DeleteResult("null" if null else vid, True)

    # ----------------------------------------------------------- listing
    async def list_objects(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        start_after: str = "",
        max_keys: int = 1000,
    ) -> ListPage:
        brec = await self.buckets.get(bucket)
        sch = self.scheme_for(brec)
        objects: list[ObjectInfo] = []
        prefixes: list[str] = []
        truncated = False
        last: str | None = None
        if max_keys <= 0:
            return ListPage([], [], False, None)
        async for e in listing.merged_entries(
            self.drives, brec.bucket_id, lambda k: self.placement(brec.bucket_id, k),
            k=sch.k, w=write_quorum(sch.k, sch.m), prefix=prefix.encode(),
            delimiter=delimiter.encode() or None, start_after=start_after.encode() or None,
            page=min(1000, max_keys + 1), min_answers=self._list_quorum(), skip=self.healing,
        ):
            if not e.is_prefix and not e.versions:  # a remnant, or hinted and not replayed yet
                e = await handoff.relist(self, brec, e)
            if not e.is_prefix and (not e.versions or e.versions[0].record.dm):
                continue
            if len(objects) + len(prefixes) == max_keys:
                truncated = True
                break
            name = e.key.decode("utf-8", "surrogateescape")
            if e.is_prefix:
                prefixes.append(name)
            else:
                objects.append(self._info(bucket, name, e.versions[0]))
            last = name
        return ListPage(objects, prefixes, truncated, last if truncated else None)

    # ----------------------------------------------------------- admin
    async def info(self) -> HostInfo:
        drives: list[DriveInfo] = []
        for i, d in enumerate(self.drives):
            st = await d.stat()
            state = "healing" if i in self.healing and st.state == DriveState.ONLINE else st.state.value
            drives.append(DriveInfo(st.drive_id, st.path, state, st.capacity, st.used,
                                    st.free, st.errors))
        return HostInfo(self.host, drives, self.scheme.k, self.scheme.m, self.version)


def _range_text(r: tuple[int | None, int | None]) -> str:
    a, b = r
    return f"bytes={'' if a is None else a}-{'' if b is None else b}"


__all__ = ["ObjectStore", "Part", "check_content_md5"]
