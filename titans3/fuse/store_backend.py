"""The daemon's backend: the object layer itself, no HTTP (issue 10, adapter 1).

Theory of operation
-------------------
Each call is one ``ObjectStore`` call on the mount's bucket, so a FUSE
operation inside the daemon costs what the same S3 request costs minus the
HTTP, SigV4 and XML.  Listings of the object layer already carry every
version record's metadata, so ``listing_has_meta`` is True and ``ls -l``
needs no HEAD per file.

A listing's common prefixes have a current object below them: the drives
group only keys that are live on them (drive/liveness.py), so a directory
renamed away (its keys now hidden rename anchors) is not listed.

Errors: ``NoSuchKey`` -> ``NotFound``; ``KeyTooLongError`` -> ``NameTooLong``;
a version that changed under a ranged read -> ``Changed``; quorum and drive
failures -> ``Unavailable`` with the reason, or ``NoSpace`` when the drives
that would hold the data report less free space than the write needs (a full
drive surfaces as a failed fragment write, then a lost quorum).

A copy of a key onto itself (the core's metadata writes) is the object
layer's ``replace_metadata``: a new version over the same fragments, moving
no byte whatever the size.

Rename is the object layer's ``rename_object``: a few metadata commits,
whatever the size, and atomic for readers -- every read sees the file under
the old or the new name (for an instant both), never neither, and a crash
in the middle leaves it readable (docs/architecture.md, "Rename").  The
destination keeps the source's ETag, metadata and mtime, so open handles
and the kernel's page cache stay valid.  ``atomic_rename`` tells the core.
A rename of the same source running on another host answers
``OperationAborted`` until it is done -- to a rename and to a metadata write
(a reference to the current version) alike; both are retried for a moment
(``RENAME_BUSY_WAIT``), then reported as ``Unavailable``.  A metadata write
that waited out a rename finds the key gone (``NotFound``: ``ENOENT``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from titans3.core.errors import (
    DriveError,
    KeyTooLongError,
    NoSuchBucket,
    NoSuchKey,
    NoSuchUpload,
    OperationAborted,
    PreconditionFailed,
    S3Error,
)
from titans3.fuse.backend import Body, Capacity, Entry, Page
from titans3.fuse.errors import Changed, NameTooLong, NoSpace, NotFound, Unavailable

if TYPE_CHECKING:
    from titans3.objects import ObjectAPI as ObjectStore  # the API the daemon hands over
    from titans3.objects import ObjectInfo

log = logging.getLogger(__name__)
T = TypeVar("T")

COPY_PART_MAX = 5 << 30
# s a rename waits for another host's rename of the same source to finish
# (normally milliseconds: a few metadata commits) before it reports EIO.
RENAME_BUSY_WAIT = 5.0


def _entry(info: ObjectInfo) -> Entry:
    return Entry(info.key, info.size, info.etag, info.mtime_ns, dict(info.meta))


class StoreBackend:
    atomic_rename = True
    listing_has_meta = True
    complete_sets_meta = True

    def __init__(self, store_of: Any, bucket: str) -> None:
        """``store_of``: the ObjectStore, or a callable returning the current one
        (a cluster replaces the daemon's store while it forms)."""
        self._store_of = store_of if callable(store_of) else (lambda: store_of)
        self.bucket = bucket
        self.name = "store"

    @property
    def store(self) -> ObjectStore:
        return self._store_of()

    async def _fail(self, e: Exception, what: str, size: int = 0) -> Exception:
        if isinstance(e, NoSuchKey | NoSuchUpload):
            return NotFound(f"{what}: {e}")
        if isinstance(e, NoSuchBucket):
            return NotFound(f"{what}: bucket {self.bucket} does not exist")
        if isinstance(e, KeyTooLongError):
            return NameTooLong(f"{what}: key too long")
        if isinstance(e, PreconditionFailed):
            return Changed(f"{what}: the object changed")
        if size:
            try:
                cap = await self.statfs()
                if cap.free < size:
                    return NoSpace(f"{what}: {cap.free} bytes free, {size} needed")
            except Exception:  # noqa: BLE001 -- the original failure is the one to report
                pass
        if isinstance(e, S3Error):
            return Unavailable(f"{what}: {e.code}: {e}")
        return Unavailable(f"{what}: {type(e).__name__}: {e}")

    async def head(self, key: str) -> Entry:
        try:
            return _entry(await self.store.head_object(self.bucket, key))
        except (S3Error, DriveError) as e:
            raise await self._fail(e, f"HEAD {key}") from None

    async def read(self, key: str, first: int, last: int, *, etag: str | None = None
                   ) -> AsyncIterator[bytes]:
        try:
            got = await self.store.get_object(self.bucket, key, byte_range=(first, last))
        except (S3Error, DriveError) as e:
            raise await self._fail(e, f"GET {key}") from None
        body = got.body
        try:
            if etag is not None and got.info.etag != etag:
                raise Changed(f"GET {key}: now version {got.info.etag}, wanted {etag}")
            try:
                async for chunk in body:
                    yield chunk
            except (S3Error, DriveError) as e:
                raise await self._fail(e, f"GET {key}") from None
        finally:
            aclose = getattr(body, "aclose", None)
            if aclose is not None:
                await aclose()

    async def put(self, key: str, body: Body, size: int, meta: Mapping[str, str]) -> Entry:
        try:
            res = await self.store.put_object(self.bucket, key, body(), size=size, meta=dict(meta))
        except (S3Error, DriveError) as e:
            raise await self._fail(e, f"PUT {key}", size) from None
        return Entry(key, res.size, res.etag, res.mtime_ns, dict(meta))

    async def upload_start(self, key: str, meta: Mapping[str, str]) -> str:
        try:
            return await self.store.create_multipart(self.bucket, key, meta=dict(meta))
        except (S3Error, DriveError) as e:
            raise await self._fail(e, f"CreateMultipartUpload {key}") from None

    async def upload_part(self, key: str, upload_id: str, number: int,
                          body: Body, size: int) -> str:
        try:
            part = await self.store.upload_part(self.bucket, key, upload_id, number, body(),
                                                size=size)
        except (S3Error, DriveError) as e:
            raise await self._fail(e, f"UploadPart {key} #{number}", size) from None
        return part.etag

    async def copy_part(self, key: str, upload_id: str, number: int, src_key: str,
                        first: int, last: int, src_etag: str) -> str:
        def check(info: ObjectInfo) -> None:
            if info.etag != src_etag:
                raise PreconditionFailed()

        try:
            res = await self.store.upload_part_copy(
                self.bucket, key, upload_id, number, self.bucket, src_key,
                byte_range=(first, last), check_source=check)
        except (S3Error, DriveError) as e:
            raise await self._fail(e, f"UploadPartCopy {key} #{number}", last - first + 1) from None
        assert res.part is not None
        return res.part.etag

    async def upload_complete(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]],
                              meta: Mapping[str, str] | None = None) -> Entry:
        try:
            await self.store.complete_multipart(self.bucket, key, upload_id, list(parts),
                                                meta=None if meta is None else dict(meta))
            return await self.head(key)
        except (S3Error, DriveError) as e:
            raise await self._fail(e, f"CompleteMultipartUpload {key}") from None

    async def upload_abort(self, key: str, upload_id: str) -> None:
        try:
            await self.store.abort_multipart(self.bucket, key, upload_id)
        except (S3Error, DriveError) as e:
            log.warning("abort of upload %s of %s failed: %s", upload_id, key, e)

    async def list(self, prefix: str, *, delimiter: str = "/", start_after: str = "",
                   limit: int = 1000) -> Page:
        try:
            page = await self.store.list_objects(self.bucket, prefix=prefix, delimiter=delimiter,
                                                 start_after=start_after, max_keys=limit)
        except (S3Error, DriveError) as e:
            raise await self._fail(e, f"LIST {prefix}") from None
        return Page([_entry(o) for o in page.objects], list(page.prefixes), page.is_truncated,
                    page.next_start_after)

    async def delete(self, key: str) -> None:
        try:
            await self.store.delete_object(self.bucket, key)
        except NoSuchKey:
            return
        except (S3Error, DriveError) as e:
            raise await self._fail(e, f"DELETE {key}") from None

    async def copy(self, src: str, dst: str, meta: Mapping[str, str]) -> Entry:
        if src == dst:  # chmod, chown, utimens, setxattr: new metadata, no data moved
            # A reference to the current version: a rename of the key in flight
            # (another host's) answers OperationAborted until it is done -- then
            # the key is gone (NotFound) or ours again.
            res = await self._unless_renaming(
                f"COPY {src} (metadata)",
                lambda: self.store.replace_metadata(self.bucket, src, dict(meta)))
            assert res.put is not None
            return Entry(dst, res.put.size, res.put.etag, res.put.mtime_ns, dict(meta))
        try:
            info = await self.store.head_object(self.bucket, src)
            if info.size <= COPY_PART_MAX:
                res = await self.store.copy_object(self.bucket, src, self.bucket, dst,
                                                   meta=dict(meta), tags={})
                assert res.put is not None
                return Entry(dst, res.put.size, res.put.etag, res.put.mtime_ns, dict(meta))
        except (S3Error, DriveError) as e:
            raise await self._fail(e, f"COPY {src} -> {dst}") from None
        return await self._copy_large(src, dst, info, meta)

    async def _copy_large(self, src: str, dst: str, info: ObjectInfo,
                          meta: Mapping[str, str]) -> Entry:
        uid = await self.upload_start(dst, meta)
        try:
            parts = []
            part = 1 << 30
            for n, first in enumerate(range(0, info.size, part), start=1):
                last = min(info.size, first + part) - 1
                parts.append((n, await self.copy_part(dst, uid, n, src, first, last, info.etag)))
            return await self.upload_complete(dst, uid, parts)
        except BaseException:
            await self.upload_abort(dst, uid)
            raise

    async def rename(self, src: str, dst: str) -> Entry:
        res = await self._unless_renaming(
            f"RENAME {src} -> {dst}", lambda: self.store.rename_object(self.bucket, src, dst))
        return _entry(res.info)

    async def _unless_renaming(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """``call()``, again while the key's rename by another host is in flight
        (``OperationAborted``, normally milliseconds), for ``RENAME_BUSY_WAIT``."""
        deadline = time.monotonic() + RENAME_BUSY_WAIT
        pause = 0.02
        while True:
            try:
                return await call()
            except OperationAborted as e:
                if time.monotonic() + pause > deadline:
                    raise await self._fail(e, f"{what}: another host is renaming it") from None
            except (S3Error, DriveError) as e:
                raise await self._fail(e, what) from None
            await trio.sleep(pause)
            pause = min(pause * 2, 0.5)

    async def statfs(self) -> Capacity:
        try:
            st = await self.store.statfs()  # the online drives, times k / (k + m)
        except (S3Error, DriveError) as e:
            raise await self._fail(e, "STATFS") from None
        return Capacity(st.usable_capacity, st.usable_free)

    async def aclose(self) -> None:
        return None


__all__ = ["StoreBackend"]
