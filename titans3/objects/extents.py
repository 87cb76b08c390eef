"""Whole-buffer object operations for block fronts (the NBD gateway's extents).

Theory of operation
-------------------
A block volume is a set of fixed-size extent objects (DESIGN §9) in a
*system bucket* of the daemon's own.  What a block front needs differs from
S3 in three ways, and this part of the store gives exactly that:

* **buffers, not streams** -- an extent is at most a few MiB and already in
  memory: ``put_extent`` stores a buffer whole, ``get_extent`` returns the
  bytes of a range.  A missing key or version, or a delete marker, is
  ``None`` (a hole, not an error); a range past the end of a shorter object
  is ``b""``.
* **no MD5 ETag** -- nobody ever sees an extent's ETag, and MD5 was the
  costliest step of a 4 MiB PUT; the erasure-coded fragments keep their own
  checksums, so nothing is less safe.  Durability is ``put_object``'s: the
  call returns once the write quorum holds the version.
* **a version cut** -- ``new_version_id`` is newer than every version this
  host wrote or saw (a snapshot records it; later writes sort above it).

System buckets (``create_system_bucket``) carry a name no S3 bucket may have
(``objects/buckets.py``), so the S3 front cannot address them and
ListBuckets leaves them out.
"""

from __future__ import annotations

from collections.abc import Mapping

from titans3.core.errors import MethodNotAllowed, NoSuchKey, NoSuchVersion, S3Error
from titans3.objects.bucket_config import BucketOps
from titans3.objects.bufwriter import WholeBody
from titans3.objects.context import StoreContext
from titans3.objects.reads import Reads
from titans3.objects.types import BucketInfo
from titans3.objects.writes import Writes


class Extents:
    def __init__(self, ctx: StoreContext, reads: Reads, writes: Writes, bucket_ops: BucketOps) -> None:
        self.ctx = ctx
        self.reads = reads
        self.writes = writes
        self.bucket_ops = bucket_ops

    async def create_system_bucket(self, name: str) -> BucketInfo:
        """A bucket S3 can neither name nor list (``InvalidBucketName`` unless the
        name is a system bucket's; ``BucketAlreadyOwnedByYou`` if it exists)."""
        return await self.bucket_ops.create_system_bucket(name)

    async def put_extent(self, bucket: str, key: str, data: bytes | memoryview, *,
                         meta: Mapping[str, str] | None = None) -> str:
        """Store ``data`` whole as the newest version of ``key`` (no MD5 ETag);
        its version id (``"null"`` in an unversioned bucket)."""
        res = await self.writes.put(bucket, key, WholeBody(data), size=len(data), meta=dict(meta or {}),
                                    md5=False)
        return res.version_id

    async def get_extent(self, bucket: str, key: str, *, version_id: str | None = None, first: int = 0,
                         last: int | None = None) -> bytes | None:
        """Bytes ``[first, last]`` (inclusive; ``last=None``: to the end) of ``key``
        or of one version; None for no such key or version or a delete marker."""
        rng: tuple[int | None, int | None] | None = None if first == 0 and last is None else (first, last)
        try:
            res = await self.reads.get_object(bucket, key, version_id=version_id, byte_range=rng)
            parts = [bytes(c) async for c in res.body]
        except (NoSuchKey, NoSuchVersion, MethodNotAllowed):
            return None
        except S3Error as e:
            if e.code == "InvalidRange":  # past the end of a shorter (last) extent
                return b""
            raise
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def new_version_id(self) -> str:
        """A version id newer than every version this host wrote or saw."""
        return self.ctx.clock.new_id()
