"""Listing current objects: pages, a stream over every page, and many HEADs at once.

The drives' sorted pages are merged and resolved by
:func:`~titans3.objects.listing.merged_entries` (the same rule as a HEAD);
this part turns entries into what the API returns.  A key that comes out of
the merge with no visible version is resolved again with its hints
(:meth:`Catalog.relist`), and so is one where some version is on fewer than
its write quorum of pages (``Listed.unsure``): right after a partition heals,
or while drives are down, a write acknowledged through a handoff drive is on
fewer than ``W`` primaries' pages -- and may be newer than what they show.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import trio

from titans3.core.errors import QuorumError, S3Error
from titans3.objects import listing
from titans3.objects.buckets import BucketRecord
from titans3.objects.context import StoreContext
from titans3.objects.listing import Listed
from titans3.objects.lookup import DOUBTFUL, Lookup, object_info
from titans3.objects.resolve import write_quorum
from titans3.objects.types import ListPage, ObjectInfo
from titans3.objects.validate import check_key

PROBE_PAGE = 16  # keys per drive and round while looking for a current object below a prefix


class Catalog:
    def __init__(self, ctx: StoreContext, lookup: Lookup) -> None:
        self.ctx = ctx
        self.lookup = lookup

    async def list_objects(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        start_after: str = "",
        max_keys: int = 1000,
    ) -> ListPage:
        brec = await self.ctx.buckets.get(bucket)
        objects: list[ObjectInfo] = []
        prefixes: list[str] = []
        truncated = False
        last: str | None = None
        if max_keys <= 0:
            return ListPage([], [], False, None)
        async for item in self._walk(brec, bucket, prefix, delimiter, start_after,
                                     page=min(1000, max_keys) + 1):  # +1: truncation known in one round
            if len(objects) + len(prefixes) == max_keys:
                truncated = True
                break
            if isinstance(item, str):
                prefixes.append(item)
                last = item
            else:
                objects.append(item)
                last = item.key
        return ListPage(objects, prefixes, truncated, last if truncated else None)

    async def walk_objects(
        self, bucket: str, *, prefix: str = "", delimiter: str = "", start_after: str = "",
    ) -> AsyncIterator[ObjectInfo | str]:
        """Every current object and common prefix after ``start_after`` (api.py)."""
        brec = await self.ctx.buckets.get(bucket)
        async for item in self._walk(brec, bucket, prefix, delimiter, start_after, page=1000):
            yield item

    async def _walk(
        self, brec: BucketRecord, bucket: str, prefix: str, delimiter: str, start_after: str,
        *, page: int,
    ) -> AsyncIterator[ObjectInfo | str]:
        sch = self.ctx.scheme_for(brec)
        async for e in listing.merged_entries(
            self.ctx.drives, brec.bucket_id, lambda k: self.ctx.placement(brec.bucket_id, k),
            k=sch.k, w=write_quorum(sch.k, sch.m), prefix=prefix.encode(),
            delimiter=delimiter.encode() or None, start_after=start_after.encode() or None,
            page=page, min_answers=self.ctx.list_quorum(), skip=self.ctx.healing, m=sch.m,
            live=True,
        ):
            if e.is_prefix:
                if e.unsure and not await self._has_current(brec, e.key):
                    continue  # only a stale drive (or one of few answering) still had a live key
            elif not e.versions or e.unsure:  # a remnant, or hinted, not replayed yet
                e = await self.relist(brec, e)
            if not e.is_prefix and (not e.versions or e.versions[0].record.dm):
                continue
            name = e.key.decode("utf-8", "surrogateescape")
            yield name if e.is_prefix else object_info(bucket, name, e.versions[0])

    async def has_objects(self, bucket: str, prefix: str) -> bool:
        """Some key below ``prefix`` has a current object (api.py).

        A common prefix in a listing comes from the drives, which group every
        key they hold, current or not: a directory renamed away leaves its keys
        as hidden rename anchors, a deleted one in a versioned bucket delete
        markers.  This resolves the keys below the prefix, a few per drive and
        round, until one is current -- usually the first."""
        return await self._has_current(await self.ctx.buckets.get(bucket), prefix.encode())

    async def _has_current(self, brec: BucketRecord, prefix: bytes) -> bool:
        sch = self.ctx.scheme_for(brec)
        async for e in listing.merged_entries(
            self.ctx.drives, brec.bucket_id, lambda k: self.ctx.placement(brec.bucket_id, k),
            k=sch.k, w=write_quorum(sch.k, sch.m), prefix=prefix, delimiter=None,
            start_after=None, page=PROBE_PAGE, min_answers=self.ctx.list_quorum(),
            skip=self.ctx.healing, m=sch.m, live=True,
        ):
            if not e.versions:
                e = await self.relist(brec, e)
            if e.versions and not e.versions[0].record.dm:
                return True
        return False

    async def head_objects(
        self, bucket: str, keys: Sequence[str], *, concurrency: int = 16
    ) -> list[ObjectInfo | None]:
        """The current version of each key or None (api.py)."""
        brec = await self.ctx.buckets.get(bucket)
        out: list[ObjectInfo | None] = [None] * len(keys)
        errors: list[BaseException] = []
        limiter = trio.CapacityLimiter(max(1, concurrency))

        async def one(i: int, key: str, done: trio.CancelScope) -> None:
            async with limiter:
                try:
                    _, _, resolved = await self.lookup.resolve(brec, check_key(key), doubtful=True)
                    if resolved and not resolved[0].certain:
                        raise QuorumError(DOUBTFUL)
                except S3Error as e:
                    errors.append(e)
                    done.cancel()
                    return
                if resolved and not resolved[0].record.dm:
                    out[i] = object_info(bucket, key, resolved[0])

        async with trio.open_nursery() as nursery:
            for i, key in enumerate(keys):
                nursery.start_soon(one, i, key, nursery.cancel_scope)
        if errors:
            raise errors[0]
        return out

    # ----------------------------------------------------------- admin

    async def relist(self, brec: BucketRecord, entry: Listed) -> Listed:
        """A listed key with no visible version, resolved again with its hints
        (a primary that is back but not replayed yet hides an acknowledged write
        from the drive pages alone).  Remnants of failed writes stay hidden."""
        try:
            _, _, resolved = await self.lookup.resolve(brec, entry.key)
        except QuorumError:
            return entry
        return Listed(entry.key, False, resolved)

    async def is_empty(self, brec: BucketRecord) -> bool:
        """No key of the bucket has a visible version (DeleteBucket's test)."""
        sch = self.ctx.scheme_for(brec)
        async for entry in listing.merged_entries(
            self.ctx.drives, brec.bucket_id, lambda k: self.ctx.placement(brec.bucket_id, k),
            k=sch.k, w=write_quorum(sch.k, sch.m), prefix=b"", delimiter=None,
            start_after=None, page=100, min_answers=self.ctx.list_quorum(), skip=self.ctx.healing,
            m=sch.m,
        ):
            if entry.versions:
                return False
            if entry.unsure and (await self.relist(brec, entry)).versions:  # acknowledged through a hint
                return False
        return True
