"""CopyObject and UploadPartCopy: a streamed read of the source into a new write.

Theory of operation
-------------------
A copy is a GET of the source version piped into a PUT (or UploadPart) of the
destination, inside the store: the reader's decoded segments feed the writer's
erasure coder directly, so memory stays at a few segments whatever the size,
and the destination is committed exactly like any other write (two-phase,
quorum, nothing visible on failure).  Data is always re-encoded -- the
destination may have another EC scheme or placement, and a version record
owns its data ids (sharing fragments between records would break freeing).

The source version is resolved once, *before* any byte moves; the caller's
``check_source`` sees its ``ObjectInfo`` (copy-source conditionals: 412) and
the copy then reads exactly that version even if the key is overwritten
meanwhile.  Rules that are AWS's and not the front's:

* a source named by version id that is a delete marker: 400 ``InvalidRequest``;
  a source whose current version is a marker: 404 ``NoSuchKey`` (with the
  marker headers, as for GET);
* a source larger than 5 GiB (or a part range larger than 5 GiB): 400
  ``InvalidRequest`` -- larger objects are copied part by part;
* a part range must lie inside the source: 416 ``InvalidRange`` otherwise
  (a GET would clamp it; a copy does not).

By default the destination gets the source's metadata, tags and checksums
(same bytes, same checksums); the caller passes replacements for REPLACE
directives, and its own checksum hooks when the client names an algorithm.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

import trio

from titans3.core.errors import InvalidRange, InvalidRequest, MethodNotAllowed
from titans3.objects.types import (
    CopyResult,
    Encryption,
    GetResult,
    ObjectInfo,
    ObjectLock,
    WriteCondition,
)

if TYPE_CHECKING:
    from titans3.objects.multipart import Multipart
    from titans3.objects.reads import Reads
    from titans3.objects.writes import Writes

MAX_COPY_SIZE = 5 * 1024**3


async def _aclose(body: AsyncIterator[bytes]) -> None:
    aclose = getattr(body, "aclose", None)
    if aclose is not None:
        with trio.CancelScope(shield=True):
            await aclose()


def _too_large() -> InvalidRequest:
    return InvalidRequest(
        "The specified copy source is larger than the maximum allowable size for a copy "
        f"source: {MAX_COPY_SIZE}"
    )


class Copier:
    """CopyObject and UploadPartCopy: the reads part piped into the writes part."""

    def __init__(self, reads: Reads, writes: Writes, multipart: Multipart) -> None:
        self.reads = reads
        self.writes = writes
        self.multipart = multipart

    async def _open_source(
        self, bucket: str, key: str, version_id: str | None,
        byte_range: tuple[int, int] | None, check_source: Callable[[ObjectInfo], None] | None,
        customer_key: bytes | None = None,
    ) -> GetResult:
        try:
            src = await self.reads.get_object(bucket, key, version_id=version_id, byte_range=byte_range,
                                              customer_key=customer_key)
        except MethodNotAllowed:
            raise InvalidRequest(
                "The source of a copy request may not specifically refer to a delete marker "
                "by version id."
            ) from None
        try:
            if check_source is not None:
                check_source(src.info)
        except BaseException:
            await _aclose(src.body)
            raise
        return src

    async def copy_object(
        self,
        src_bucket: str,
        src_key: str,
        dst_bucket: str,
        dst_key: str,
        *,
        src_version_id: str | None = None,
        meta: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        check_source: Callable[[ObjectInfo], None] | None = None,
        condition: WriteCondition | None = None,
        on_data: Callable[[memoryview], None] | None = None,
        checksums: Callable[[], Mapping[str, str]] | None = None,
        src_customer_key: bytes | None = None,
        encryption: Encryption | None = None,
        lock: ObjectLock | None = None,
        storage_class: str | None = None,
    ) -> CopyResult:
        """Copy one version (``storage_class``: the destination's, None: STANDARD).  ``meta``/``tags`` None: the source's (COPY directive).
        ``on_data``/``checksums``: compute other checksums than the source's.
        ``src_customer_key``: the source's SSE-C key; ``encryption``: the
        destination's (None: its bucket's default -- never the source's)."""
        src = await self._open_source(src_bucket, src_key, src_version_id, None, check_source,
                                      src_customer_key)
        info = src.info
        try:
            if info.size > MAX_COPY_SIZE:
                raise _too_large()
            put = await self.writes.put_object(
                dst_bucket, dst_key, src.body, size=info.size,
                meta=dict(info.meta) if meta is None else meta,
                tags=dict(info.tags) if tags is None else tags,
                checksums=checksums or (lambda: dict(info.checksums)), condition=condition,
                on_data=on_data, encryption=encryption, lock=lock, storage_class=storage_class,
            )  # fmt: skip
        finally:
            await _aclose(src.body)
        return CopyResult(info, put=put)

    async def upload_part_copy(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        src_bucket: str,
        src_key: str,
        *,
        src_version_id: str | None = None,
        byte_range: tuple[int, int] | None = None,
        check_source: Callable[[ObjectInfo], None] | None = None,
        compute_checksum: Callable[[str, str | None], Any] | None = None,
        src_customer_key: bytes | None = None,
        customer_key: bytes | None = None,
    ) -> CopyResult:
        """Copy a source version (or ``byte_range`` of it, inclusive) into a part.
        ``compute_checksum``: see ``upload_part`` (an upload created with a
        checksum algorithm needs the copied part's checksum)."""
        try:
            src = await self._open_source(src_bucket, src_key, src_version_id, byte_range,
                                          check_source, src_customer_key)
        except InvalidRange as e:
            raise _bad_range(e.extra.get("ActualObjectSize", "?")) from None
        info = src.info
        try:
            if byte_range is not None and (src.first, src.last) != byte_range:
                raise _bad_range(str(info.size))  # clamped by the read: past the end
            size = max(0, src.last - src.first + 1)
            if size > MAX_COPY_SIZE:
                raise _too_large()
            part = await self.multipart.upload_part(bucket, key, upload_id, part_number, src.body, size=size,
                                          compute_checksum=compute_checksum,
                                          customer_key=customer_key)  # fmt: skip
        finally:
            await _aclose(src.body)
        return CopyResult(info, part=part)


def _bad_range(size: str) -> InvalidRange:
    """A source range past the source's end: 416 ``InvalidRange``, as AWS answers."""
    return InvalidRange(f"The requested range is not satisfiable for a source object of size {size}",
                        RangeRequested="x-amz-copy-source-range")
