"""Bucket sub-configurations (CORS, tagging, ...) kept in the bucket record.

Theory of operation
-------------------
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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from titans3.objects.store import ObjectStore


@dataclass(frozen=True, slots=True)
class BucketSettings:
    """A bucket's record as the front's access rules read it: the version id
    changes with every configuration change (the cache key for parsed
    policies), ``config`` holds every sub-configuration."""

    name: str
    vid: str
    created_ns: int
    config: Mapping[str, bytes]


class BucketConfigMixin:
    """Bucket configuration operations of :class:`~titans3.objects.store.ObjectStore`."""

    async def get_bucket_config(self: ObjectStore, bucket: str, name: str) -> bytes | None:
        """The stored ``name`` configuration of ``bucket`` or None; ``NoSuchBucket``."""
        rec = await self.buckets.get(bucket)
        return rec.config.get(name)

    async def bucket_settings(self: ObjectStore, bucket: str) -> BucketSettings:
        """All of ``bucket``'s configuration at once; ``NoSuchBucket``."""
        rec = await self.buckets.get(bucket)
        return BucketSettings(rec.name, rec.vid, rec.created_ns, rec.config)

    async def put_bucket_config(
        self: ObjectStore, bucket: str, name: str, value: bytes | None
    ) -> None:
        """Store (or with None remove) one configuration; ``NoSuchBucket``."""
        await self.buckets.set_config(bucket, name, value)
