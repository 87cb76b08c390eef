"""Object lock operations: Put/Get retention and legal hold, the bucket lock configuration.

The rules are :mod:`titans3.objects.lockrules`; this part re-commits a version's
record with its lock changed, like a tag update (``objects/tagging.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from titans3.core.errors import InvalidRequest, MalformedXML, QuorumError
from titans3.drive.records import VersionRecord
from titans3.objects.buckets import BucketRecord
from titans3.objects.commit import Committer
from titans3.objects.context import StoreContext
from titans3.objects.lockrules import (
    LOCK_CONFIG,
    InvalidBucketState,
    check_retention_change,
    lock_config,
    lock_of,
    set_legal_hold,
    set_retention,
)
from titans3.objects.lookup import Lookup, delete_marker_error, pick
from titans3.objects.resolve import write_quorum
from titans3.objects.types import ObjectLock
from titans3.objects.validate import check_key


class Locks:
    """Put/Get object retention and legal holds, and the bucket lock configuration."""

    def __init__(self, ctx: StoreContext, lookup: Lookup, committer: Committer) -> None:
        self.ctx = ctx
        self.lookup = lookup
        self.committer = committer

    async def _version(self, bucket: str, key: str, version_id: str | None, method: str
                       ) -> tuple[BucketRecord, bytes, list[int], Any, VersionRecord]:
        brec = await self.ctx.buckets.get(bucket)
        cfg = lock_config(brec.config)
        if not (cfg and cfg.get("enabled")):
            raise InvalidRequest("Bucket is missing Object Lock Configuration")
        kb = check_key(key)
        positions, per, resolved = await self.lookup.resolve(brec, kb)
        r, _ = pick(resolved, version_id)
        if r.record.dm:
            raise delete_marker_error(r.record, key, version_id, method, always_405=True)
        return brec, kb, positions, per, r.record

    async def _recommit(self, brec: BucketRecord, kb: bytes, positions: list[int], per: Any,
                        rec: VersionRecord, mutate: Any) -> None:
        k, m, _ = rec.ec
        if await self.committer.recommit(brec, kb, positions, per, rec.vid, mutate) < write_quorum(k, m):
            raise QuorumError("too few drives took the lock update")

    async def get_object_lock(self, bucket: str, key: str, *, version_id: str | None = None
                              ) -> ObjectLock:
        _, _, _, _, rec = await self._version(bucket, key, version_id, "GET")
        return lock_of(rec)

    async def put_object_retention(
        self, bucket: str, key: str, mode: str | None, until_ns: int | None, *,
        version_id: str | None = None, bypass_governance: bool = False,
    ) -> None:
        brec, kb, positions, per, rec = await self._version(bucket, key, version_id, "PUT")
        check_retention_change(rec, mode, until_ns, bypass=bypass_governance)
        await self._recommit(brec, kb, positions, per, rec,
                             lambda x: set_retention(x, mode, until_ns))

    async def put_object_legal_hold(self, bucket: str, key: str, on: bool, *,
                                    version_id: str | None = None) -> None:
        brec, kb, positions, per, rec = await self._version(bucket, key, version_id, "PUT")
        await self._recommit(brec, kb, positions, per, rec, lambda x: set_legal_hold(x, on))

    async def put_object_lock_config(self, bucket: str, doc: Mapping[str, Any]) -> None:
        """Enable object lock (versioning must be Enabled) and set the default retention."""
        brec = await self.ctx.buckets.get(bucket)
        if not doc.get("enabled"):
            raise MalformedXML()
        if brec.versioning != "Enabled":
            raise InvalidBucketState("Versioning must be 'Enabled' on the bucket to apply a "
                                     "Object Lock configuration")
        await self.ctx.buckets.set_config(bucket, LOCK_CONFIG, json.dumps(dict(doc)).encode())
