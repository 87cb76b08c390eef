"""The narrow interface the volume layer needs from the cluster, and its adapter.

Theory of operation
-------------------
Volumes need little from the object layer: put an object of known size (and
learn its version id), read one whole or by range (optionally an older
version), delete one (or one version), list keys and versions under a prefix,
and a version id newer than everything written so far (a snapshot's cut).
:class:`ObjectBackend` is exactly that, so the volume code never sees S3
types, and :class:`StoreBackend` is the one adapter, over the object layer's
public API (:class:`titans3.objects.ObjectAPI`; its block-front operations
``put_extent``/``get_extent``/``new_version_id``/``create_system_bucket``
exist for this module).

Volumes live in one *system bucket*, ``_titans3-volumes``: S3 cannot address
it (its name is no valid S3 bucket name) and ListBuckets leaves it out
(``objects/extents.py``).  The bucket is versioned: snapshots are version cuts.

Small cluster-wide records (the volume catalogue, writer leases) are not
objects: they are *system records*, one entry per drive in a named table of
every drive, read and compare-and-set on a majority
(:class:`~titans3.nbd.register.QuorumRegister`).  The adapter hands the
register the store's current drives.

Errors: anything the cluster cannot do now (quorum lost, a drive error
surfacing) becomes :class:`BackendError`; the NBD server answers it with
``NBD_EIO``.  A missing key or version is not an error: ``None``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from titans3.core.errors import (
    BucketAlreadyOwnedByYou,
    NoSuchBucket,
    OperationAborted,
    S3Error,
    TitanError,
)

if TYPE_CHECKING:
    from titans3.drive.protocol import Drive
    from titans3.objects import ObjectAPI

log = logging.getLogger(__name__)

VOLUME_BUCKET = "_titans3-volumes"


class BackendError(TitanError):
    """The cluster could not serve a volume operation now (quorum, drives)."""


@dataclass(frozen=True, slots=True)
class Version:
    key: str
    version_id: str
    size: int
    latest: bool
    marker: bool = False  # a delete marker
    meta: Mapping[str, str] = field(default_factory=dict)


class ObjectBackend(Protocol):
    async def put(self, key: str, data: bytes | memoryview, *, meta: Mapping[str, str] | None = None) -> str:
        """Store ``data`` as the newest version of ``key``; its version id."""
        ...

    async def get(self, key: str, *, version: str | None = None, first: int = 0,
                  last: int | None = None) -> bytes | None:
        """Bytes ``[first, last]`` of ``key`` (or of that version); None when
        there is no such key or version, or it is a delete marker."""
        ...

    async def delete(self, key: str, *, version: str | None = None) -> str | None:
        """Remove ``key`` (a delete marker: its version id) or exactly one version of it."""
        ...

    async def keys(self, prefix: str) -> list[Version]:
        """The current version of every key under ``prefix``, in key order."""
        ...

    async def versions(self, prefix: str) -> list[Version]:
        """Every version (markers too) of every key under ``prefix``: keys in
        order, each key's versions newest first."""
        ...

    def new_version_id(self) -> str:
        """An id newer than every version this host wrote or saw."""
        ...

    def drives(self) -> Sequence[Drive]:
        """Every drive of the cluster (for the system records)."""
        ...


def _failed(e: Exception) -> BackendError:
    return BackendError(str(e) or type(e).__name__)


class StoreBackend:
    """:class:`ObjectBackend` over the object layer's public API.

    ``store_of`` returns the store at call time: in a cluster the daemon
    replaces the single-host store with the cluster's while it forms.  The
    system records need the drives themselves (``drives_of``, handed in by
    the host wiring, as for the other system records)."""

    def __init__(self, store_of: Callable[[], ObjectAPI], drives_of: Callable[[], Sequence[Drive]],
                 bucket: str = VOLUME_BUCKET) -> None:
        self._store_of = store_of
        self._drives_of = drives_of
        self.bucket = bucket
        self._ready = False

    @property
    def store(self) -> ObjectAPI:
        return self._store_of()

    async def ensure_bucket(self) -> None:
        """Create the volume bucket (versioned) unless it exists; safe to race."""
        if self._ready:
            return
        store = self.store
        try:
            await store.head_bucket(self.bucket)
        except NoSuchBucket:
            # Another host may have made it a moment ago.
            with contextlib.suppress(BucketAlreadyOwnedByYou, OperationAborted):
                await store.create_system_bucket(self.bucket)
        except S3Error as e:
            raise _failed(e) from e
        try:
            if await store.get_bucket_versioning(self.bucket) != "Enabled":
                await store.put_bucket_versioning(self.bucket, "Enabled")
        except S3Error as e:
            raise _failed(e) from e
        self._ready = True

    async def put(self, key: str, data: bytes | memoryview, *, meta: Mapping[str, str] | None = None) -> str:
        try:
            return await self.store.put_extent(self.bucket, key, data, meta=meta)
        except S3Error as e:
            raise _failed(e) from e

    async def get(self, key: str, *, version: str | None = None, first: int = 0,
                  last: int | None = None) -> bytes | None:
        try:
            return await self.store.get_extent(self.bucket, key, version_id=version, first=first, last=last)
        except S3Error as e:
            raise _failed(e) from e

    async def delete(self, key: str, *, version: str | None = None) -> str | None:
        try:
            res = await self.store.delete_object(self.bucket, key, version_id=version)
        except S3Error as e:
            raise _failed(e) from e
        return res.version_id if version is None else None

    async def keys(self, prefix: str) -> list[Version]:
        out: list[Version] = []
        after = ""
        try:
            while True:
                page = await self.store.list_objects(self.bucket, prefix=prefix, start_after=after,
                                                     max_keys=1000)
                out += [Version(o.key, o.version_id, o.size, True, False, dict(o.meta)) for o in page.objects]
                if not page.is_truncated or not page.objects:
                    return out
                after = page.objects[-1].key
        except S3Error as e:
            raise _failed(e) from e

    async def versions(self, prefix: str) -> list[Version]:
        out: list[Version] = []
        key_marker, vid_marker = "", ""
        try:
            while True:
                page = await self.store.list_object_versions(
                    self.bucket, prefix=prefix, key_marker=key_marker, version_id_marker=vid_marker,
                    max_keys=1000)
                out += [Version(o.key, o.version_id, o.size, o.is_latest, o.delete_marker, dict(o.meta))
                        for o in page.versions]
                if not page.is_truncated:
                    return out
                key_marker, vid_marker = page.next_key_marker or "", page.next_version_id_marker or ""
        except S3Error as e:
            raise _failed(e) from e

    def new_version_id(self) -> str:
        return self.store.new_version_id()

    def drives(self) -> Sequence[Drive]:
        return list(self._drives_of())
