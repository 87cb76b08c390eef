"""An in-memory ObjectStore double for S3 front unit tests.

It follows the contract in ``titans3/objects/types.py`` (errors, range
semantics, the ``checksums`` hook called after the body is consumed) closely
enough to exercise the front; it is not a reference implementation of the
object layer.  Hooks for tests: ``consumed`` (payload bytes read so far, to
observe backpressure), ``chunk_delay`` (awaited with the size of every body chunk read),
``fail_with`` (an exception every call raises), ``min_part_size``.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from titans3.core.errors import (
    BadDigest,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    EntityTooSmall,
    IncompleteBody,
    InvalidPart,
    InvalidPartOrder,
    InvalidRequest,
    NoSuchBucket,
    NoSuchKey,
    NoSuchUpload,
)
from titans3.objects.types import (
    BucketInfo,
    DeleteResult,
    DriveInfo,
    GetResult,
    HostInfo,
    ListPage,
    ObjectInfo,
    PartInfo,
    PutResult,
)
from titans3.s3.ranges import resolve_range


@dataclass
class _Object:
    data: bytes
    etag: str
    mtime_ns: int
    meta: dict[str, str]
    checksums: dict[str, str]
    parts_count: int = 0


@dataclass
class _Upload:
    key: str
    meta: dict[str, str]
    parts: dict[int, tuple[bytes, PartInfo]] = field(default_factory=dict)
    checksum: tuple[str | None, str | None] = (None, None)  # algorithm, type


@dataclass
class _Bucket:
    created_ns: int
    objects: dict[str, _Object] = field(default_factory=dict)
    uploads: dict[str, _Upload] = field(default_factory=dict)
    config: dict[str, bytes] = field(default_factory=dict)


class MemStore:
    def __init__(self, *, min_part_size: int = 5 * 1024 * 1024, read_chunk: int = 64 * 1024) -> None:
        self.buckets: dict[str, _Bucket] = {}
        self.min_part_size = min_part_size
        self.storage_classes: dict[str, tuple[int, int]] = {}
        self.read_chunk = read_chunk
        self.consumed = 0
        self.chunk_delay: Callable[[int], Awaitable[None]] | None = None
        self.fail_with: BaseException | None = None
        self._ids = itertools.count(1)

    # ------------------------------------------------------------- helpers
    def _check(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    def _bucket(self, name: str) -> _Bucket:
        self._check()
        try:
            return self.buckets[name]
        except KeyError:
            raise NoSuchBucket(BucketName=name) from None

    async def _consume(
        self,
        body: AsyncIterator[bytes],
        size: int | None,
        content_md5: str | None,
        checksums: Callable[[], dict[str, str]] | None,
    ) -> tuple[bytes, str, dict[str, str]]:
        buf = bytearray()
        async for chunk in body:
            buf += chunk
            self.consumed += len(chunk)
            if self.chunk_delay is not None:
                await self.chunk_delay(len(chunk))
        data = bytes(buf)
        if size is not None and len(data) != size:
            raise IncompleteBody()
        md5 = hashlib.md5(data)
        if content_md5 is not None and base64.b64decode(content_md5) != md5.digest():
            raise BadDigest()
        stored = checksums() if checksums is not None else {}
        return data, md5.hexdigest(), stored

    # ------------------------------------------------------------- buckets
    async def create_bucket(self, name: str, *, object_lock: bool = False) -> BucketInfo:
        self._check()
        if name in self.buckets:
            raise BucketAlreadyOwnedByYou(BucketName=name)
        self.buckets[name] = _Bucket(time.time_ns())
        return BucketInfo(name, self.buckets[name].created_ns)

    async def head_bucket(self, name: str) -> BucketInfo:
        return BucketInfo(name, self._bucket(name).created_ns)

    async def delete_bucket(self, name: str) -> None:
        if self._bucket(name).objects:
            raise BucketNotEmpty(BucketName=name)
        del self.buckets[name]

    async def list_buckets(self) -> list[BucketInfo]:
        self._check()
        return [BucketInfo(n, b.created_ns) for n, b in sorted(self.buckets.items())]

    async def get_bucket_config(self, bucket: str, name: str) -> bytes | None:
        return self._bucket(bucket).config.get(name)

    async def put_bucket_config(self, bucket: str, name: str, value: bytes | None) -> None:
        config = self._bucket(bucket).config
        if value is None:
            config.pop(name, None)
        else:
            config[name] = value

    # ------------------------------------------------------------- objects
    async def put_object(self, bucket, key, body, *, size=None, meta=None, content_md5=None,
                         checksums=None, tags=None, condition=None, encryption=None,
                         lock=None, storage_class=None) -> PutResult:  # fmt: skip
        b = self._bucket(bucket)
        data, etag, stored = await self._consume(body, size, content_md5, checksums)
        b.objects[key] = _Object(data, etag, time.time_ns(), dict(meta or {}), stored)
        return PutResult(etag, "null", len(data), stored)

    def _info(self, bucket: str, key: str, obj: _Object) -> ObjectInfo:
        return ObjectInfo(bucket, key, "null", len(obj.data), obj.etag, obj.mtime_ns,
                          dict(obj.meta), dict(obj.checksums), parts_count=obj.parts_count)  # fmt: skip

    def _object(self, bucket: str, key: str) -> _Object:
        try:
            return self._bucket(bucket).objects[key]
        except KeyError:
            raise NoSuchKey(Key=key) from None

    async def head_object(self, bucket, key, *, version_id=None, customer_key=None) -> ObjectInfo:
        return self._info(bucket, key, self._object(bucket, key))

    async def get_object(self, bucket, key, *, version_id=None, byte_range=None,
                         part_number=None, customer_key=None) -> GetResult:  # fmt: skip
        obj = self._object(bucket, key)
        span = resolve_range(byte_range, len(obj.data))
        first, last = span if span is not None else (0, len(obj.data) - 1)
        data = obj.data[first : last + 1]

        async def stream() -> AsyncIterator[bytes]:
            for i in range(0, len(data), self.read_chunk):
                yield data[i : i + self.read_chunk]

        return GetResult(self._info(bucket, key, obj), stream(), first, last, span is not None)

    async def delete_object(self, bucket, key, *, version_id=None, bypass_governance=False) -> DeleteResult:
        self._bucket(bucket).objects.pop(key, None)
        return DeleteResult(None, False)

    async def list_objects(self, bucket, *, prefix="", delimiter="", start_after="",
                           max_keys=1000) -> ListPage:  # fmt: skip
        b = self._bucket(bucket)
        objects: list[ObjectInfo] = []
        prefixes: list[str] = []
        last: str | None = None
        for key in sorted(b.objects):
            if not key.startswith(prefix) or key <= start_after:
                continue
            if delimiter:
                cut = key.find(delimiter, len(prefix))
                if cut >= 0:
                    common = key[: cut + len(delimiter)]
                    if common <= start_after or (prefixes and prefixes[-1] == common):
                        continue
                    if len(objects) + len(prefixes) == max_keys:
                        return ListPage(objects, prefixes, True, last)
                    prefixes.append(common)
                    last = common
                    continue
            if len(objects) + len(prefixes) == max_keys:
                return ListPage(objects, prefixes, True, last)
            objects.append(self._info(bucket, key, b.objects[key]))
            last = key
        return ListPage(objects, prefixes, False, None)

    # ----------------------------------------------------------- multipart
    def _upload(self, bucket: str, key: str, upload_id: str) -> _Upload:
        upload = self._bucket(bucket).uploads.get(upload_id)
        if upload is None or upload.key != key:
            raise NoSuchUpload(UploadId=upload_id)
        return upload

    async def create_multipart(self, bucket, key, *, meta=None, tags=None, checksum_algorithm=None,
                               checksum_type=None, encryption=None, lock=None,
                               storage_class=None) -> str:  # fmt: skip
        upload_id = f"upload-{next(self._ids)}"
        upload = _Upload(key, dict(meta or {}))
        upload.checksum = (checksum_algorithm, checksum_type)
        self._bucket(bucket).uploads[upload_id] = upload
        return upload_id

    async def upload_part(self, bucket, key, upload_id, part_number, body, *, size=None,
                          content_md5=None, checksums=None, compute_checksum=None,
                          customer_key=None) -> PartInfo:  # fmt: skip
        upload = self._upload(bucket, key, upload_id)
        data, etag, stored = await self._consume(body, size, content_md5, checksums)
        expected = upload.checksum[0]
        ours = compute_checksum(*upload.checksum) if expected and compute_checksum else None
        if ours is not None and not stored:
            ours.update(data)
            stored = {expected: ours.b64digest()}
        if expected is not None and expected not in stored:
            actual = next(iter(stored), "null")
            raise InvalidRequest("Checksum Type mismatch occurred, expected checksum Type: "
                                 f"{expected.lower()}, actual checksum Type: {actual.lower()}")
        info = PartInfo(part_number, len(data), etag, time.time_ns(), stored)
        upload.parts[part_number] = (data, info)
        return info

    async def complete_multipart(self, bucket, key, upload_id, parts, *, checksums=None,
                                 condition=None) -> PutResult:  # fmt: skip
        upload = self._upload(bucket, key, upload_id)
        numbers = [n for n, _ in parts]
        if numbers != sorted(set(numbers)):
            raise InvalidPartOrder()
        chosen = []
        for number, etag in parts:
            held = upload.parts.get(number)
            if held is None or held[1].etag != etag.strip('"'):
                raise InvalidPart(PartNumber=str(number))
            chosen.append(held)
        for data, _ in chosen[:-1]:
            if len(data) < self.min_part_size:
                raise EntityTooSmall()
        cks = {}
        if checksums is not None:
            cks = dict(checksums(*upload.checksum, [i for _, i in chosen]))
        digest = hashlib.md5(b"".join(bytes.fromhex(i.etag) for _, i in chosen)).hexdigest()
        etag = f"{digest}-{len(chosen)}"
        data = b"".join(d for d, _ in chosen)
        b = self._bucket(bucket)
        b.objects[key] = _Object(data, etag, time.time_ns(), upload.meta, cks, len(chosen))
        del b.uploads[upload_id]
        return PutResult(etag, "null", len(data), cks)

    async def abort_multipart(self, bucket, key, upload_id) -> None:
        self._upload(bucket, key, upload_id)
        del self._bucket(bucket).uploads[upload_id]

    async def list_parts(self, bucket, key, upload_id) -> list[PartInfo]:
        upload = self._upload(bucket, key, upload_id)
        return [info for _, (_, info) in sorted(upload.parts.items())]


class MemAdmin:
    async def info(self) -> HostInfo:
        drive = DriveInfo("d1", "/srv/d1", "online", 1000, 400, 600, 0)
        return HostInfo("node-1", [drive], 4, 2, "0.1.0")
