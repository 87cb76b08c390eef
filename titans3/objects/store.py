"""ObjectStore: the object API (``objects/api.py``) over a set of Drives, as a thin facade.

Theory of operation
-------------------
The store owns no bytes.  For every object it asks the ring which drives hold
which fragment, streams data through the writer and the reader, and keeps the
version list on each of those drives with two-phase commits:

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

Parts
-----
Each part owns its state and gets the parts it uses in its constructor; this
class builds them in dependency order and implements every API operation by
delegating to exactly one of them (``_delegate``):

==============  ==============================================================
``context``     :class:`StoreContext`: drives, slots, ring(s), scheme, healing,
                bucket register, clock, handoff plans -- shared by every part
``committer``   stage, commit, roll back, purge replaced nulls (``commit.py``)
``lookup``      gather a key's records, resolve its versions (``lookup.py``)
``conditions``  If-Match / If-None-Match under per-key locks (``conditional.py``)
``anchors``     rename anchors: reads through references, referrers (``anchors.py``)
``reads``       GET, HEAD (``reads.py``)
``writes``      PUT, DELETE (``writes.py``)
``catalog``     list, walk, head many (``catalog.py``)
``bucket_ops``  buckets and their configuration documents (``bucket_config.py``)
``versions``    versioning state, ListObjectVersions (``versions.py``)
``multipart``   multipart uploads (``multipart.py``); ``uploads``: their listing
``copier``      CopyObject, UploadPartCopy (``copy.py``)
``tagging``     object tags of existing versions (``tagging.py``)
``locks``       object lock: retention, legal holds (``locks.py``, ``lockrules.py``)
``renamer``     rename_object (``rename.py``); ``meta_updates``: replace_metadata,
                new metadata over the same bytes (``metaupdate.py``)
==============  ==============================================================

The cluster layer and the workers' wiring reach the shared state through the
properties below (they forward to ``context``), so a field the cluster layer
reassigns is seen by every part.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any

import trio

from titans3.core.errors import DriveError, S3Error
from titans3.drive.protocol import Drive, DriveStat, DriveState
from titans3.drive.records import Part
from titans3.erasure.codec import Codec, ECScheme
from titans3.erasure.stripe import Layout
from titans3.objects.anchors import Anchors
from titans3.objects.bucket_config import BucketOps
from titans3.objects.buckets import BucketRecord, BucketTable
from titans3.objects.catalog import Catalog
from titans3.objects.commit import Committer
from titans3.objects.conditional import Conditions, KeyLocks
from titans3.objects.context import StoreContext
from titans3.objects.copy import Copier
from titans3.objects.extents import Extents
from titans3.objects.inspect import inspect_object
from titans3.objects.locks import Locks
from titans3.objects.lookup import Lookup
from titans3.objects.metaupdate import MetaUpdates
from titans3.objects.multipart import Multipart
from titans3.objects.reads import Reads
from titans3.objects.rename import Renamer
from titans3.objects.resolve import s3_version_id
from titans3.objects.tagging import Tagging
from titans3.objects.transition import Transitions
from titans3.objects.types import DriveInfo, HostInfo, StatFs, StoreStatistics
from titans3.objects.uploads import Uploads
from titans3.objects.validate import check_content_md5
from titans3.objects.versionid import HybridClock
from titans3.objects.versions import Versions
from titans3.objects.writes import Writes
from titans3.ring.builder import Ring

log = logging.getLogger(__name__)


class _delegate:  # noqa: N801 -- used like a decorator-free function
    """An API operation implemented by one part: ``name = _delegate("part", Part.name)``.

    On the class it is the part's function (so signatures and docstrings are
    the part's); on an instance, that part's bound method."""

    def __init__(self, part: str, fn: Callable[..., Any]) -> None:
        self.part = part
        self.fn = fn
        self.__doc__ = fn.__doc__

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self.fn
        return getattr(getattr(obj, self.part), self.fn.__name__)


def _shared(name: str) -> property:
    """A field of the shared :class:`StoreContext`, read and written through."""

    def get(self: ObjectStore) -> Any:
        return getattr(self.context, name)

    def put(self: ObjectStore, value: Any) -> None:
        setattr(self.context, name, value)

    return property(get, put, doc=f"``context.{name}`` (objects/context.py)")


class ObjectStore:
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
        self.context = ctx = StoreContext(drives, ring, scheme, clock=clock, inline_max=inline_max,
                                          host=host, version=version, slots=slots)
        self._background: trio.Nursery | None = None
        self.committer = Committer(ctx, self._later)
        self.committer.spawner = lambda: None if self._background is None else self._background.start_soon
        self.lookup = Lookup(ctx)
        self.conditions = Conditions(self.lookup)
        self.anchors = Anchors(ctx, self.lookup, self.committer)
        self.reads = Reads(ctx, self.lookup, self.anchors)
        self.writes = Writes(ctx, self.lookup, self.committer, self.conditions, self.anchors)
        self.catalog = Catalog(ctx, self.lookup)
        self.bucket_ops = BucketOps(ctx, self.catalog)
        self.versions = Versions(ctx, self.lookup)
        self.multipart = Multipart(ctx, self.committer, self.conditions, self.lookup)
        self.uploads = Uploads(ctx)
        self.copier = Copier(self.reads, self.writes, self.multipart)
        self.tagging = Tagging(ctx, self.lookup, self.committer)
        self.extents = Extents(ctx, self.reads, self.writes, self.bucket_ops)
        self.locks = Locks(ctx, self.lookup, self.committer)
        self.renamer = Renamer(ctx, self.lookup, self.committer, self.anchors, self.writes,
                               self.conditions.key_locks)
        self.meta_updates = MetaUpdates(self.renamer, self.copier)
        self.transitions = Transitions(ctx, self.lookup, self.committer,
                                       self.conditions.key_locks)
        self.multipart.on_complete_class = self._reencode_later
        self.reads.on_marked = lambda brec, key, vid: self._later(self.renamer.settle, brec, key,
                                                                  vid)

    # ----------------------------------------------------------- lifecycle
    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Own the nursery for after-acknowledgement work (purging old versions)."""
        async with trio.open_nursery() as nursery:
            self._background = nursery
            task_status.started()
            await trio.sleep_forever()

    def _reencode_later(self, bucket: str, key: str, version_id: str, storage_class: str) -> None:
        async def run() -> None:
            try:
                await self.transitions.transition_object(bucket, key, storage_class,
                                                         version_id=version_id)
            except S3Error as e:  # deleted meanwhile, quorum lost: it stays readable, in STANDARD
                log.warning("re-encoding %s/%s into %s failed: %s", bucket, key, storage_class, e)

        self._later(run)

    def _later(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._background is not None:
            self._background.start_soon(fn, *args)

    # ----------------------------------------------------------- the API, by part
    create_bucket = _delegate("bucket_ops", BucketOps.create_bucket)
    head_bucket = _delegate("bucket_ops", BucketOps.head_bucket)
    list_buckets = _delegate("bucket_ops", BucketOps.list_buckets)
    delete_bucket = _delegate("bucket_ops", BucketOps.delete_bucket)
    get_bucket_config = _delegate("bucket_ops", BucketOps.get_bucket_config)
    put_bucket_config = _delegate("bucket_ops", BucketOps.put_bucket_config)
    bucket_settings = _delegate("bucket_ops", BucketOps.bucket_settings)

    create_system_bucket = _delegate("extents", Extents.create_system_bucket)
    put_extent = _delegate("extents", Extents.put_extent)
    get_extent = _delegate("extents", Extents.get_extent)
    new_version_id = _delegate("extents", Extents.new_version_id)

    put_object = _delegate("writes", Writes.put_object)
    delete_object = _delegate("writes", Writes.delete_object)
    get_object = _delegate("reads", Reads.get_object)
    head_object = _delegate("reads", Reads.head_object)
    copy_object = _delegate("copier", Copier.copy_object)
    upload_part_copy = _delegate("copier", Copier.upload_part_copy)
    rename_object = _delegate("renamer", Renamer.rename_object)
    replace_metadata = _delegate("meta_updates", MetaUpdates.replace_metadata)
    transition_object = _delegate("transitions", Transitions.transition_object)

    list_objects = _delegate("catalog", Catalog.list_objects)
    walk_objects = _delegate("catalog", Catalog.walk_objects)
    head_objects = _delegate("catalog", Catalog.head_objects)
    has_objects = _delegate("catalog", Catalog.has_objects)

    put_bucket_versioning = _delegate("versions", Versions.put_bucket_versioning)
    get_bucket_versioning = _delegate("versions", Versions.get_bucket_versioning)
    list_object_versions = _delegate("versions", Versions.list_object_versions)

    create_multipart = _delegate("multipart", Multipart.create_multipart)
    upload_part = _delegate("multipart", Multipart.upload_part)
    complete_multipart = _delegate("multipart", Multipart.complete_multipart)
    abort_multipart = _delegate("multipart", Multipart.abort_multipart)
    list_parts = _delegate("multipart", Multipart.list_parts)
    list_multipart_uploads = _delegate("uploads", Uploads.list_multipart_uploads)

    get_object_tagging = _delegate("tagging", Tagging.get_object_tagging)
    put_object_tagging = _delegate("tagging", Tagging.put_object_tagging)
    delete_object_tagging = _delegate("tagging", Tagging.delete_object_tagging)
    put_object_acl = _delegate("tagging", Tagging.put_object_acl)

    get_object_lock = _delegate("locks", Locks.get_object_lock)
    put_object_retention = _delegate("locks", Locks.put_object_retention)
    put_object_legal_hold = _delegate("locks", Locks.put_object_legal_hold)
    put_object_lock_config = _delegate("locks", Locks.put_object_lock_config)

    # ----------------------------------------------------------- capacity and health
    async def info(self) -> HostInfo:
        ctx = self.context
        drives: list[DriveInfo] = []
        for i, d in enumerate(ctx.drives):
            st = await d.stat()
            state = st.state.value
            if st.state == DriveState.ONLINE and st.full:
                state = "full"  # serving reads; writes go elsewhere or get 507
            elif st.state == DriveState.ONLINE and i in ctx.healing:
                state = "healing"
            drives.append(DriveInfo(st.drive_id, st.path, state, st.capacity, st.used,
                                    st.free, st.errors))
        return HostInfo(ctx.host, drives, ctx.scheme.k, ctx.scheme.m, ctx.version)

    async def statfs(self) -> StatFs:
        """Capacity of every drive the store writes to (api.py)."""
        ctx = self.context
        stats: list[DriveStat | None] = [None] * len(ctx.drives)

        async def one(i: int, d: Drive) -> None:
            with suppress(DriveError):
                stats[i] = await d.stat()

        async with trio.open_nursery() as nursery:
            for i, d in enumerate(ctx.drives):
                nursery.start_soon(one, i, d)
        online = [st for st in stats if st is not None and st.state == DriveState.ONLINE]
        capacity = sum(st.capacity for st in online)
        used = sum(st.used for st in online)
        free = sum(st.free for st in online)
        k, n = ctx.scheme.k, ctx.scheme.k + ctx.scheme.m
        return StatFs(capacity, used, free, capacity * k // n, free * k // n, len(ctx.drives),
                      len(online), ctx.scheme.k, ctx.scheme.m)

    def statistics(self) -> StoreStatistics:
        ctx = self.context
        return StoreStatistics(ctx.host, ctx.scheme.k, ctx.scheme.m, ctx.ring.version,
                               len(ctx.drives), tuple(sorted(ctx.healing)),
                               self.reads.degraded_reads, self.committer.partial_writes)

    async def inspect_object(
        self, bucket: str, key: str, *, deep: bool = False,
        on_damage: Callable[[bytes, bytes], None] | None = None,
    ) -> dict[str, Any]:
        return await inspect_object(self.context, bucket, key, deep=deep, on_damage=on_damage)

    # ----------------------------------------------------------- shared state (context)
    drives = _shared("drives")
    slots = _shared("slots")
    _by_id = _shared("_by_id")
    healing = _shared("healing")
    ring = _shared("ring")
    old_ring = _shared("old_ring")
    scheme = _shared("scheme")
    kms = _shared("kms")
    clock = _shared("clock")
    inline_max = _shared("inline_max")
    host = _shared("host")
    version = _shared("version")
    buckets: BucketTable = _shared("buckets")  # type: ignore[assignment]
    handoffs = _shared("handoffs")
    storage_classes = _shared("storage_classes")
    admission = _shared("admission")

    def placement(self, bucket_id: bytes, key: bytes) -> list[int]:
        return self.context.placement(bucket_id, key)

    def codec(self, k: int, m: int) -> Codec:
        return self.context.codec(k, m)

    def layout(self, rec_ec: tuple[int, int, int], size: int) -> Layout:
        return self.context.layout(rec_ec, size)

    def scheme_for(self, brec: BucketRecord) -> ECScheme:
        return self.context.scheme_for(brec)

    def add_drives(self, drives: Sequence[Drive], slots: Sequence[str]) -> None:
        self.context.add_drives(drives, slots)

    def replace_drive(self, pos: int, drive: Drive) -> None:
        """Put ``drive`` at position ``pos`` (same slot, new disk): the disk
        manager's hot replacement.  The caller marks it healing if it is blank."""
        self.context.replace_drive(pos, drive)

    # ----------------------------------------------------------- counters and hooks
    @property
    def key_locks(self) -> KeyLocks:
        return self.conditions.key_locks

    @property
    def degraded_reads(self) -> int:
        return self.reads.degraded_reads

    @property
    def partial_writes(self) -> int:
        return self.committer.partial_writes

    @property
    def on_degraded(self) -> Callable[[bytes, bytes, str, set[str]], None] | None:
        """Heal-on-read hook: (bucket_id, key, vid, bad drive ids)."""
        return self.reads.on_degraded

    @on_degraded.setter
    def on_degraded(self, fn: Callable[[bytes, bytes, str, set[str]], None] | None) -> None:
        self.reads.on_degraded = fn

    @property
    def on_partial_write(self) -> Callable[[bytes, bytes], None] | None:
        """Called with (bucket_id, key) after a write acknowledged short of a drive."""
        return self.committer.on_partial_write

    @on_partial_write.setter
    def on_partial_write(self, fn: Callable[[bytes, bytes], None] | None) -> None:
        self.committer.on_partial_write = fn


__all__ = ["ObjectStore", "Part", "check_content_md5", "s3_version_id"]
