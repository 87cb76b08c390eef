"""Bucket operations, and sub-configurations (CORS, tagging, ...) kept in the bucket record.

Theory of operation
-------------------
Buckets are records in a cluster-wide quorum register
(``objects/buckets.py``); deleting one first checks that no key has a
visible version.

A bucket's configurations are small documents that change rarely and are read
on many requests (CORS on every request carrying ``Origin``).  They live in the
bucket record itself (``BucketRecord.config``: name -> opaque bytes), so they
share its quorum register (DESIGN §4): a write reaches a majority of drives
with a fresh version id, a read sees the newest record, and deleting a bucket
takes its configuration with it.  Reads come from the bucket table's in-memory
cache, so a lookup per request costs a dictionary access.

The object layer does not interpret the bytes: the S3 front validates and
encodes each configuration (``titans3.s3.cors``, ``titans3.s3.tagging``) and
is the only place that knows their format.  Names are short fixed strings
chosen by the front (``"cors"``, ``"tagging"``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from titans3.core.errors import BucketNotEmpty
from titans3.objects.buckets import BucketRecord, is_system_bucket
from titans3.objects.catalog import Catalog
from titans3.objects.context import StoreContext
from titans3.objects.lockrules import LOCK_CONFIG
from titans3.objects.types import BucketInfo, BucketSettings


def _owner(rec: BucketRecord) -> str:
    return rec.config.get("owner", b"").decode()


class BucketOps:
    """Create/head/list/delete buckets and their opaque configuration documents."""

    def __init__(self, ctx: StoreContext, catalog: Catalog) -> None:
        self.ctx = ctx
        self.catalog = catalog

    async def create_bucket(self, name: str, *, config: Mapping[str, bytes] | None = None,
                            object_lock: bool = False) -> BucketInfo:
        """``config``: initial sub-configurations (the front's access settings: owner, ACL, ...),
        written with the bucket record, so a new bucket is never seen without them.
        ``object_lock``: versioned from birth with object lock enabled, in the
        same one record write (objects/lockrules.py)."""
        initial = dict(config or {})
        versioning = ""
        if object_lock:
            initial[LOCK_CONFIG] = json.dumps({"enabled": True}).encode()
            versioning = "Enabled"
        rec = await self.ctx.buckets.create(name, versioning=versioning, config=initial)
        return BucketInfo(rec.name, rec.created_ns, rec.versioning, _owner(rec))

    async def create_system_bucket(self, name: str) -> BucketInfo:
        """A bucket of the daemon's own (``is_system_bucket``), which S3 can
        neither address nor list."""
        rec = await self.ctx.buckets.create(name, system=True)
        return BucketInfo(rec.name, rec.created_ns, rec.versioning)

    async def head_bucket(self, name: str) -> BucketInfo:
        rec = await self.ctx.buckets.get(name)
        return BucketInfo(rec.name, rec.created_ns, rec.versioning)

    async def list_buckets(self) -> list[BucketInfo]:
        return [BucketInfo(r.name, r.created_ns, r.versioning, _owner(r))
                for r in await self.ctx.buckets.list() if not is_system_bucket(r.name)]

    async def delete_bucket(self, name: str) -> None:
        brec = await self.ctx.buckets.get(name)
        if not await self.catalog.is_empty(brec):
            raise BucketNotEmpty(BucketName=name)
        await self.ctx.buckets.delete(name)

    async def get_bucket_config(self, bucket: str, name: str) -> bytes | None:
        """The stored ``name`` configuration of ``bucket`` or None; ``NoSuchBucket``."""
        rec = await self.ctx.buckets.get(bucket)
        return rec.config.get(name)

    async def bucket_settings(self, bucket: str) -> BucketSettings:
        """All of ``bucket``'s configuration at once; ``NoSuchBucket``."""
        rec = await self.ctx.buckets.get(bucket)
        return BucketSettings(rec.name, rec.vid, rec.created_ns, rec.config)

    async def put_bucket_config(self, bucket: str, name: str, value: bytes | None) -> None:
        """Store (or with None remove) one configuration; ``NoSuchBucket``."""
        await self.ctx.buckets.set_config(bucket, name, value)
