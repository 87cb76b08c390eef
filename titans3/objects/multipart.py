"""Multipart uploads: parts are erasure-coded as they arrive; Complete copies nothing.

Theory of operation
-------------------
An upload is a record in the ``mpu`` table of the object's placement drives
(``bucket_id ‖ upload_id``).  Each part is written exactly like an object --
staged fragments on the same placement, fragment ``j`` on drive ``j`` -- and
committed by writing its part record to the ``mpp`` table
(``upload_id ‖ part_number``) *in the same durable step* that promotes its
fragments, so an acknowledged part survives a crash.  Complete validates the
client's list against the part records seen on a quorum and commits one
version record whose part table points at the parts' data ids; no byte moves.
Re-uploading a part number replaces the record; the older data is freed after
the new record reached quorum.  Parts never stored inline: a part is usually
large, and the version record must find every part the same way.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import suppress
from typing import TYPE_CHECKING, Any

import msgpack
import trio

from titans3.core.errors import (
    DriveError,
    EntityTooSmall,
    InvalidArgument,
    InvalidPart,
    InvalidPartOrder,
    InvalidRequest,
    NoSuchUpload,
    QuorumError,
)
from titans3.drive.protocol import DriveState
from titans3.drive.records import Part, VersionRecord
from titans3.objects.conditional import WriteCondition
from titans3.objects.resolve import write_quorum
from titans3.objects.tagging import with_tags
from titans3.objects.types import PartInfo, PutResult
from titans3.objects.validate import check_key

if TYPE_CHECKING:
    from titans3.objects.buckets import BucketRecord
    from titans3.objects.store import ObjectStore

log = logging.getLogger(__name__)

UPLOADS = "mpu"
PARTS = "mpp"
MIN_PART_SIZE = 5 << 20
MAX_PARTS = 10_000


def _upload_key(bucket_id: bytes, upload_id: str) -> bytes:
    return bucket_id + bytes.fromhex(upload_id)


def _part_key(upload_id: str, number: int) -> bytes:
    return bytes.fromhex(upload_id) + struct.pack(">I", number)


# (upload's checksum algorithm, its type) -> a running checksum to compute, or None
ComputeChecksum = Callable[[str, str | None], Any]
# (upload's checksum algorithm, its type, the chosen parts) -> the object's checksums
CompleteChecksums = Callable[[str | None, str | None, Sequence[PartInfo]], Mapping[str, str]]


def _check_part_checksum(expected: str | None, got: Mapping[str, str]) -> None:
    """A part of an upload created with a checksum algorithm must carry that checksum."""
    if expected is not None and expected not in got:
        actual = next(iter(got), None)
        raise InvalidRequest(
            "Checksum Type mismatch occurred, expected checksum Type: "
            f"{expected.lower()}, actual checksum Type: {actual.lower() if actual else 'null'}"
        )


def _valid_upload_id(upload_id: str) -> bool:
    return len(upload_id) == 32 and all(c in "0123456789abcdef" for c in upload_id)


class MultipartMixin:
    """Multipart operations of :class:`~titans3.objects.store.ObjectStore`."""

    async def _upload(self: ObjectStore, brec: BucketRecord, kb: bytes, upload_id: str) -> dict[str, Any]:
        if not _valid_upload_id(upload_id):
            raise NoSuchUpload(UploadId=upload_id)
        positions = self.placement(brec.bucket_id, kb)
        found: list[dict[str, Any]] = []
        unseen = 0

        async def one(pos: int) -> None:
            nonlocal unseen
            try:
                raw = await self.drives[pos].get_meta(UPLOADS, _upload_key(brec.bucket_id, upload_id))
                if raw is not None:
                    found.append(msgpack.unpackb(raw, raw=False))
            except DriveError:
                unseen += 1

        async with trio.open_nursery() as nursery:
            for pos in positions:
                nursery.start_soon(one, pos)
        sch = self.scheme_for(brec)
        mine = [u for u in found if u.get("key") == kb]
        if not mine or len(mine) + unseen < write_quorum(sch.k, sch.m):
            raise NoSuchUpload(UploadId=upload_id)
        return mine[0]

    async def create_multipart(
        self: ObjectStore, bucket: str, key: str, *, meta: Mapping[str, str] | None = None,
        checksum_algorithm: str | None = None, checksum_type: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """``checksum_algorithm``/``checksum_type`` (validated by the caller) bind
        every part to carry that checksum; Complete hands them to its hook."""
        brec = await self.buckets.get(bucket)
        kb = check_key(key)
        sch = self.scheme_for(brec)
        # Clock ids: unique, and ordered by initiation (ListMultipartUploads order).
        upload_id = self.clock.new_id()
        doc = msgpack.packb(
            {"key": kb, "t": time.time_ns(), "meta": dict(meta or {}),
             "ec": [sch.k, sch.m, sch.segment_size],
             "ca": checksum_algorithm, "ct": checksum_type, "tags": dict(tags or {})},
            use_bin_type=True,
        )
        ok = await self._put_meta_all(brec, kb, UPLOADS, _upload_key(brec.bucket_id, upload_id), doc)
        if ok < write_quorum(sch.k, sch.m):
            raise QuorumError()
        return upload_id

    async def _put_meta_all(
        self: ObjectStore, brec: BucketRecord, kb: bytes, table: str, key: bytes, value: bytes | None,
        *, promote: Callable[[int], list[str]] | None = None, only: Sequence[int] | None = None,
    ) -> int:
        positions = self.placement(brec.bucket_id, kb)
        landed = 0

        async def one(j: int) -> None:
            nonlocal landed
            d = self.drives[positions[j]]
            try:
                await d.put_meta(table, key, value, promote=promote(j) if promote else ())
                landed += 1
            except DriveError as e:
                log.warning("%s write on %s failed: %s", table, d.drive_id, e)

        async with trio.open_nursery() as nursery:
            for j in only if only is not None else range(len(positions)):
                if self.drives[positions[j]].state == DriveState.ONLINE:
                    nursery.start_soon(one, j)
        return landed

    async def _parts(
        self: ObjectStore, brec: BucketRecord, kb: bytes, upload_id: str
    ) -> tuple[dict[int, dict[str, Any]], dict[int, set[str]]]:
        """Part records seen on a quorum: number -> record, and per position the
        data ids that drive holds."""
        positions = self.placement(brec.bucket_id, kb)
        per: list[list[dict[str, Any]] | None] = [None] * len(positions)
        prefix = bytes.fromhex(upload_id)

        async def one(j: int) -> None:
            rows: list[dict[str, Any]] = []
            start: bytes | None = None
            try:
                while True:
                    page = await self.drives[positions[j]].list_meta(
                        PARTS, prefix=prefix, start_after=start, limit=1000
                    )
                    rows.extend(msgpack.unpackb(v, raw=False) for _, v in page)
                    if len(page) < 1000:
                        break
                    start = page[-1][0]
                per[j] = rows
            except DriveError:
                per[j] = None

        async with trio.open_nursery() as nursery:
            for j in range(len(positions)):
                nursery.start_soon(one, j)
        sch = self.scheme_for(brec)
        w = write_quorum(sch.k, sch.m)
        unseen = sum(1 for p in per if p is None)
        counts: dict[str, int] = {}
        recs: dict[str, dict[str, Any]] = {}
        held: dict[int, set[str]] = {}
        for j, rows in enumerate(per):
            held[j] = set()
            for r in rows or ():
                counts[r["data"]] = counts.get(r["data"], 0) + 1
                recs[r["data"]] = r
                held[j].add(r["data"])
        best: dict[int, dict[str, Any]] = {}
        for data_id, r in recs.items():
            c = counts[data_id]
            if c < sch.k or c + unseen < w:
                continue
            cur = best.get(r["n"])
            if cur is None or r["t"] > cur["t"]:
                best[r["n"]] = r
        return best, held

    async def upload_part(
        self: ObjectStore,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        body: AsyncIterator[bytes],
        *,
        size: int | None = None,
        content_md5: str | None = None,
        checksums: Callable[[], Mapping[str, str]] | None = None,
        on_data: Callable[[memoryview], None] | None = None,
        compute_checksum: ComputeChecksum | None = None,
    ) -> PartInfo:
        """``compute_checksum(algorithm, type)`` may return a running checksum
        (``update``/``b64digest``) for the upload's algorithm; the store feeds it
        the part and stores its value when the request brought none (AWS computes
        the part checksum of a copied part, and of a FULL_OBJECT upload's part)."""
        if not 1 <= part_number <= MAX_PARTS:
            raise InvalidArgument("Part number must be an integer between 1 and 10000, inclusive",
                                  ArgumentName="partNumber", ArgumentValue=str(part_number))
        brec = await self.buckets.get(bucket)
        kb = check_key(key)
        upload = await self._upload(brec, kb, upload_id)
        old, _ = await self._parts(brec, kb, upload_id)
        algo = upload.get("ca")
        ours = compute_checksum(algo, upload.get("ct")) if algo and compute_checksum else None
        feed = on_data
        if ours is not None:
            def feed(chunk: memoryview) -> None:
                ours.update(chunk)
                if on_data is not None:
                    on_data(chunk)
        # Parts are never inline (see module docstring).
        positions, sch, written = await self._stage(
            brec, kb, body, size, content_md5, feed, inline_max=-1
        )
        try:
            cks = dict(checksums()) if checksums is not None else {}
            if ours is not None and not cks:  # a request checksum of another kind stays a mismatch
                cks[algo] = ours.b64digest()
            _check_part_checksum(algo, cks)
        except BaseException:
            await self._discard(positions, written)
            raise
        now = time.time_ns()
        etag = written.md5.hex()
        doc = msgpack.packb(
            {"n": part_number, "size": written.size, "etag": etag, "data": written.data_id,
             "t": now, "cks": cks},
            use_bin_type=True,
        )
        landed = await self._put_meta_all(
            brec, kb, PARTS, _part_key(upload_id, part_number), doc,
            promote=lambda j: [written.data_id], only=written.ok,
        )
        if landed < write_quorum(sch.k, sch.m):
            raise QuorumError(f"only {landed} drives committed the part")
        prev = old.get(part_number)
        if prev is not None and prev["data"] != written.data_id:
            await self._free(positions, [prev["data"]])
        return PartInfo(part_number, written.size, etag, now, cks)

    async def _free(self: ObjectStore, positions: Sequence[int], data_ids: Sequence[str]) -> None:
        async def one(pos: int) -> None:
            with suppress(DriveError):
                await self.drives[pos].delete_data(list(data_ids))

        async with trio.open_nursery() as nursery:
            for pos in positions:
                nursery.start_soon(one, pos)

    async def list_parts(self: ObjectStore, bucket: str, key: str, upload_id: str) -> list[PartInfo]:
        brec = await self.buckets.get(bucket)
        kb = check_key(key)
        await self._upload(brec, kb, upload_id)
        best, _ = await self._parts(brec, kb, upload_id)
        return [
            PartInfo(r["n"], r["size"], r["etag"], r["t"], dict(r.get("cks", {})))
            for _, r in sorted(best.items())
        ]

    async def complete_multipart(
        self: ObjectStore, bucket: str, key: str, upload_id: str, parts: Sequence[tuple[int, str]],
        *, checksums: CompleteChecksums | None = None, condition: WriteCondition | None = None,
    ) -> PutResult:
        """``checksums(algorithm, type, parts)`` gets the upload's checksum algorithm
        and type (None when created without) and the chosen parts; it returns the
        object's ``{algo: b64}`` to store, or raises to refuse the Complete."""
        brec = await self.buckets.get(bucket)
        kb = check_key(key)
        upload = await self._upload(brec, kb, upload_id)
        seen = await self._precheck(brec, bucket, key, kb, condition)
        if not parts:
            raise InvalidArgument("You must specify at least one part")  # AWS: MalformedXML in front
        if len(parts) > MAX_PARTS:
            raise InvalidArgument("Part number must be an integer between 1 and 10000, inclusive")
        numbers = [n for n, _ in parts]
        if any(not 1 <= n <= MAX_PARTS for n in numbers):
            raise InvalidArgument("Part number must be an integer between 1 and 10000, inclusive",
                                  ArgumentName="partNumber")
        if any(b <= a for a, b in zip(numbers, numbers[1:], strict=False)):
            raise InvalidPartOrder(UploadId=upload_id)
        best, held = await self._parts(brec, kb, upload_id)
        chosen: list[Part] = []
        for i, (n, etag) in enumerate(parts):
            r = best.get(n)
            if r is None or r["etag"] != etag.strip().strip('"').lower():
                raise InvalidPart(UploadId=upload_id, PartNumber=str(n), ETag=etag)
            if i < len(parts) - 1 and r["size"] < MIN_PART_SIZE:
                raise EntityTooSmall(UploadId=upload_id, PartNumber=str(n),
                                     ProposedSize=str(r["size"]), MinSizeAllowed=str(MIN_PART_SIZE))
            chosen.append(Part(n, r["size"], r["etag"], r["data"], dict(r.get("cks", {}))))
        cks: dict[str, str] = {}
        if checksums is not None:
            cks = dict(checksums(upload.get("ca"), upload.get("ct"), [
                PartInfo(p.number, p.size, p.etag, 0, dict(p.checksums)) for p in chosen
            ]))  # fmt: skip
        md5s = b"".join(bytes.fromhex(p.etag) for p in chosen)
        etag = f"{hashlib.md5(md5s).hexdigest()}-{len(chosen)}"
        size = sum(p.size for p in chosen)
        k, m, seg = upload["ec"]
        versioned = brec.versioning == "Enabled"
        positions = self.placement(brec.bucket_id, kb)
        need = {p.data_id for p in chosen}
        ok = [j for j in range(len(positions)) if need <= held.get(j, set())
              and self.drives[positions[j]].state == DriveState.ONLINE]
        extra = with_tags(None, upload.get("tags"))

        # A conditional Complete re-checks the key under its lock (objects/conditional.py).
        async with self._commit_guard(brec, bucket, key, kb, condition, seen):
            vid = self.clock.new_id()
            now = time.time_ns()

            def make(j: int) -> VersionRecord:
                return VersionRecord(
                    vid=vid, mtime_ns=now, null=not versioned, size=size, etag=etag,
                    ec=(k, m, seg), frag_index=j, parts=list(chosen),
                    meta=dict(upload.get("meta", {})), checksums=cks, extra=dict(extra),
                )

            older = await self._commit_or_rollback(
                brec, kb, positions, ok, write_quorum(k, m), make, lambda j: []
            )
        await self._finish_upload(brec, kb, upload_id, best, keep=need)
        if not versioned:
            self._purge_older_nulls(brec, kb, positions, vid, older)
        return PutResult(etag, vid if versioned else "null", size, cks, now)

    async def _finish_upload(
        self: ObjectStore, brec: BucketRecord, kb: bytes, upload_id: str,
        parts: Mapping[int, dict[str, Any]], *, keep: set[str],
    ) -> None:
        positions = self.placement(brec.bucket_id, kb)
        for n in parts:
            await self._put_meta_all(brec, kb, PARTS, _part_key(upload_id, n), None)
        await self._put_meta_all(brec, kb, UPLOADS, _upload_key(brec.bucket_id, upload_id), None)
        unused = [r["data"] for r in parts.values() if r["data"] not in keep]
        if unused:
            await self._free(positions, unused)

    async def abort_multipart(self: ObjectStore, bucket: str, key: str, upload_id: str) -> None:
        brec = await self.buckets.get(bucket)
        kb = check_key(key)
        await self._upload(brec, kb, upload_id)
        best, _ = await self._parts(brec, kb, upload_id)
        await self._finish_upload(brec, kb, upload_id, best, keep=set())
