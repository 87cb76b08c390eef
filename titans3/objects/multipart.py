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

**Hinted handoff for a whole upload.**  If placement drives are down when the
upload is created, :func:`titans3.objects.handoff.substitute` picks a handoff
drive for each, and the upload record remembers them (``sub``: position ->
slot).  For the whole life of the upload, position ``j``'s metadata and data
live on its substitute: the upload and part records under keys suffixed
``/h<j>`` (:func:`_sub_key`, so they never collide with the drive's own rows),
the fragments under :func:`~titans3.objects.handoff.hinted_id`.  Reads of the
upload and parts ask the substitute for position ``j``; Complete commits
position ``j``'s version record as a *hint* on the substitute, which the
hint-replay worker moves to the primary when it is back -- exactly as for a
single PUT.  Acknowledgement follows handoff's durability rule (losing any one
drive still leaves ``k`` fragments).  A primary that returns mid-upload is not
used by that upload: its position stays with the substitute until Complete.

**A repeated Complete is answered, not refused.**  Clients retry Complete
after a lost response, by which time the upload record is gone.  The version
a Complete commits carries its upload id (``extra["upload"]``); a Complete of
an upload that no longer exists answers 200 with that version's ETag when the
key still has a version made by this upload from exactly the listed parts
(AWS does the same), and ``NoSuchUpload`` otherwise.

This module does the I/O; the rules it applies (which part list a Complete
accepts, which part records count, when a write is durable) are pure, in
:mod:`titans3.objects.partrules`.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import suppress
from typing import TYPE_CHECKING, Any

import msgpack
import trio

from titans3.core import sse
from titans3.core.errors import DriveError, InvalidRequest, NoSuchUpload, QuorumError
from titans3.drive.protocol import Drive, DriveState
from titans3.drive.records import VersionRecord
from titans3.objects import handoff
from titans3.objects.lockrules import initial_lock
from titans3.objects.partrules import MAX_PARTS as MAX_PARTS  # its old home: keep the name
from titans3.objects.partrules import (
    check_complete_list,
    check_part_checksum,
    check_part_number,
    choose_parts,
    composite_etag,
    durable,
    quorum_parts,
    valid_upload_id,
)
from titans3.objects.resolve import write_quorum
from titans3.objects.sse import SSE, Sealed, bucket_default, encryption_info
from titans3.objects.tagging import with_tags
from titans3.objects.tags import ACL
from titans3.objects.types import (
    CompleteChecksums,
    ComputeChecksum,
    Encryption,
    ObjectLock,
    PartInfo,
    PutResult,
    WriteCondition,
)
from titans3.objects.validate import check_key

if TYPE_CHECKING:
    from titans3.objects.buckets import BucketRecord
    from titans3.objects.commit import Committer
    from titans3.objects.conditional import Conditions
    from titans3.objects.context import StoreContext
    from titans3.objects.lookup import Lookup

log = logging.getLogger(__name__)

UPLOADS = "mpu"
COMPLETED_FROM = "upload"  # VersionRecord.extra key: the upload a Complete made it from
PARTS = "mpp"
UPLOAD_ID_BYTES = 16  # an upload id is a clock id: 32 hex digits
PART_KEY_BYTES = UPLOAD_ID_BYTES + 4  # upload id, part number (see _part_key)
MIN_PART_SIZE = 5 << 20  # read at each Complete (tests lower it); see objects/partrules.py


def _upload_key(bucket_id: bytes, upload_id: str) -> bytes:
    return bucket_id + bytes.fromhex(upload_id)


def _part_key(upload_id: str, number: int) -> bytes:
    return bytes.fromhex(upload_id) + struct.pack(">I", number)


def _sub_key(key: bytes, j: int) -> bytes:
    """The key under which a substitute drive keeps position ``j``'s row."""
    return key + b"/h%d" % j


def _sub_of(upload: Mapping[str, Any]) -> dict[int, str]:
    return {int(j): str(slot) for j, slot in (upload.get("sub") or {}).items()}


class Multipart:
    """Create, upload parts, complete, abort, list parts."""

    def __init__(
        self, ctx: StoreContext, committer: Committer, conditions: Conditions, lookup: Lookup
    ) -> None:
        self.ctx = ctx
        self.committer = committer
        self.conditions = conditions
        self.lookup = lookup  # a repeated Complete finds the version the first one made
        # (bucket, key, version id, storage class) after a Complete of an upload
        # created with a storage class: the store re-encodes it (objects/transition.py).
        self.on_complete_class: Callable[[str, str, str, str], None] | None = None

    def _sites(
        self, positions: Sequence[int], sub: Mapping[int, str]
    ) -> list[tuple[int, handoff.HintedDrive | None]]:
        """Per placement index: the store position that keeps it for this
        upload, and the HintedDrive when that is a substitute (else None)."""
        out: list[tuple[int, handoff.HintedDrive | None]] = []
        for j, pos in enumerate(positions):
            slot = sub.get(j)
            spos = self.ctx._by_id.get(slot) if slot is not None else None
            if spos is None:
                out.append((pos, None))
            else:
                out.append((spos, handoff.HintedDrive(self.ctx.drives[spos], j, self.ctx.slots[pos])))
        return out

    async def _upload(self, brec: BucketRecord, kb: bytes, upload_id: str) -> dict[str, Any]:
        if not valid_upload_id(upload_id):
            raise NoSuchUpload(UploadId=upload_id)
        positions = self.ctx.placement(brec.bucket_id, kb)
        ukey = _upload_key(brec.bucket_id, upload_id)
        docs: dict[int, dict[str, Any]] = {}
        unseen: set[int] = set()

        async def one(j: int, pos: int, key: bytes) -> None:
            try:
                raw = await self.ctx.drives[pos].get_meta(UPLOADS, key)
                if raw is not None:
                    doc = msgpack.unpackb(raw, raw=False)
                    if doc.get("key") == kb:
                        docs[j] = doc
                unseen.discard(j)
            except DriveError:
                unseen.add(j)

        async with trio.open_nursery() as nursery:
            for j, pos in enumerate(positions):
                nursery.start_soon(one, j, pos, ukey)
        sub = _sub_of(next(iter(docs.values()))) if docs else {}
        if sub:  # positions kept by substitutes: ask them instead
            sites = self._sites(positions, sub)
            for j in sub:
                docs.pop(j, None)
                unseen.add(j)
            async with trio.open_nursery() as nursery:
                for j in sub:
                    nursery.start_soon(one, j, sites[j][0], _sub_key(ukey, j))
        sch = self.ctx.scheme_for(brec)
        if not docs or len(docs) + len(unseen) < write_quorum(sch.k, sch.m):
            raise NoSuchUpload(UploadId=upload_id)
        return next(iter(docs.values()))

    async def create_multipart(
        self, bucket: str, key: str, *, meta: Mapping[str, str] | None = None,
        checksum_algorithm: str | None = None, checksum_type: str | None = None,
        tags: Mapping[str, str] | None = None,
        acl: bytes | None = None,
        encryption: Encryption | None = None,
        lock: ObjectLock | None = None,
        storage_class: str | None = None,
    ) -> str:
        """``storage_class``: a mapped class (else ``InvalidStorageClass``); the
        parts are written in the bucket's scheme and the completed object is
        re-encoded into the class's in the background (``on_complete_class``).
        ``checksum_algorithm``/``checksum_type`` (validated by the caller) bind
        every part to carry that checksum; Complete hands them to its hook.
        ``acl``: the object's ACL, applied by Complete (like ``tags``).
        ``encryption``: SSE for every part (None: the bucket's default); the
        upload keeps the *wrapped* data key, each part its own salt."""
        brec = await self.ctx.buckets.get(bucket)
        kb = check_key(key)
        initial_lock(brec.config, lock, time.time_ns())  # refuse a bad lock now, not at Complete
        enc = encryption or bucket_default(brec.config)
        sealed = await self.ctx.keys.seal_new(brec.bucket_id, kb, enc) if enc else None
        self.ctx.scheme_of_class(brec, storage_class)  # refuse an unmapped class now
        sch = self.ctx.scheme_for(brec)
        # Clock ids: unique, and ordered by initiation (ListMultipartUploads order).
        upload_id = self.ctx.clock.new_id()
        positions = self.ctx.placement(brec.bucket_id, kb)
        live: list[Drive | None] = [
            self.ctx.drives[p] if self.ctx.drives[p].state == DriveState.ONLINE else None for p in positions
        ]
        chosen = handoff.substitute(self.ctx, brec.bucket_id, kb, positions, live, sch.k, sch.m)
        pos_of = {id(d): i for i, d in enumerate(self.ctx.drives)}
        sub = {j: self.ctx.slots[pos_of[id(hd.inner)]]
               for j, hd in enumerate(chosen) if isinstance(hd, handoff.HintedDrive)}
        doc = msgpack.packb(
            {"key": kb, "t": time.time_ns(), "meta": dict(meta or {}),
             "ec": [sch.k, sch.m, sch.segment_size],
             "ca": checksum_algorithm, "ct": checksum_type, "tags": dict(tags or {}), "acl": acl,
             "sub": {str(j): slot for j, slot in sub.items()},
             **({"sse": sealed.doc} if sealed else {}),
             **({"sc": storage_class} if storage_class not in (None, "STANDARD") else {}),
             **({"lock": [lock.mode, lock.until_ns, lock.legal_hold]} if lock else {})},
            use_bin_type=True,
        )
        where: list[int] = []
        ukey = _upload_key(brec.bucket_id, upload_id)
        await self._put_meta_all(brec, kb, UPLOADS, ukey, doc, sub=sub, landed_at=where)
        if not durable(where, sch.k, write_quorum(sch.k, sch.m)):
            # Take back what landed: a refused upload must not linger as a remnant.
            with trio.CancelScope(shield=True):
                await self._put_meta_all(brec, kb, UPLOADS, ukey, None, sub=sub)
            raise QuorumError()
        return upload_id

    async def _put_meta_all(
        self, brec: BucketRecord, kb: bytes, table: str, key: bytes, value: bytes | None,
        *, promote: Callable[[int], list[str]] | None = None, only: Sequence[int] | None = None,
        sub: Mapping[int, str] | None = None, landed_at: list[int] | None = None,
    ) -> int:
        """Write one row on every placement index (or ``only`` those); an index a
        substitute keeps (``sub``) goes there under :func:`_sub_key`, promoting
        the hinted ids.  Returns how many landed; ``landed_at`` gets their store
        positions (for :func:`~titans3.objects.partrules.durable`)."""
        positions = self.ctx.placement(brec.bucket_id, kb)
        sites = self._sites(positions, sub or {})
        landed = 0

        async def one(j: int) -> None:
            nonlocal landed
            pos, hd = sites[j]
            d = self.ctx.drives[pos]
            ids = promote(j) if promote else []
            try:
                if hd is not None:
                    await d.put_meta(table, _sub_key(key, j), value,
                                     promote=[handoff.hinted_id(i, j) for i in ids])
                else:
                    await d.put_meta(table, key, value, promote=ids)
                landed += 1
                if landed_at is not None:
                    landed_at.append(pos)
            except DriveError as e:
                log.warning("%s write on %s failed: %s", table, d.drive_id, e)

        async with trio.open_nursery() as nursery:
            for j in only if only is not None else range(len(positions)):
                if self.ctx.drives[sites[j][0]].state == DriveState.ONLINE:
                    nursery.start_soon(one, j)
        return landed

    async def _parts(
        self, brec: BucketRecord, kb: bytes, upload_id: str,
        sub: Mapping[int, str] | None = None,
    ) -> tuple[dict[int, dict[str, Any]], dict[int, set[str]]]:
        """Part records seen on a quorum: number -> record, and per placement
        index the data ids its drive (or its substitute) holds."""
        sch = self.ctx.scheme_for(brec)
        per = await self._part_rows(brec, kb, upload_id, sub)
        return quorum_parts(per, sch.k, write_quorum(sch.k, sch.m))

    async def _part_rows(
        self, brec: BucketRecord, kb: bytes, upload_id: str,
        sub: Mapping[int, str] | None = None,
    ) -> list[list[dict[str, Any]] | None]:
        """Per placement index, every part record of the upload its drive (or
        its substitute) holds; None where it did not answer."""
        positions = self.ctx.placement(brec.bucket_id, kb)
        sites = self._sites(positions, sub or {})
        per: list[list[dict[str, Any]] | None] = [None] * len(positions)
        prefix = bytes.fromhex(upload_id)
        plain = len(_part_key(upload_id, 1))

        async def one(j: int) -> None:
            rows: list[dict[str, Any]] = []
            start: bytes | None = None
            pos, hd = sites[j]
            suffix = _sub_key(b"", j)

            def mine(k: bytes) -> bool:  # this index's rows, not the drive's other ones
                if hd is None:
                    return len(k) == plain
                return len(k) == plain + len(suffix) and k.endswith(suffix)

            try:
                while True:
                    page = await self.ctx.drives[pos].list_meta(
                        PARTS, prefix=prefix, start_after=start, limit=1000
                    )
                    rows.extend(msgpack.unpackb(v, raw=False) for k, v in page if mine(k))
                    if len(page) < 1000:
                        break
                    start = page[-1][0]
                per[j] = rows
            except DriveError:
                per[j] = None

        async with trio.open_nursery() as nursery:
            for j in range(len(positions)):
                nursery.start_soon(one, j)
        return per

    async def upload_part(
        self,
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
        customer_key: bytes | None = None,
    ) -> PartInfo:
        """``compute_checksum(algorithm, type)`` may return a running checksum
        (``update``/``b64digest``) for the upload's algorithm; the store feeds it
        the part and stores its value when the request brought none (AWS computes
        the part checksum of a copied part, and of a FULL_OBJECT upload's part)."""
        check_part_number(part_number)
        brec = await self.ctx.buckets.get(bucket)
        kb = check_key(key)
        upload = await self._upload(brec, kb, upload_id)
        opened = None
        if upload.get("sse"):
            opened = await self.ctx.keys.open(brec.bucket_id, kb, upload["sse"], customer_key)
        elif customer_key is not None:
            raise InvalidRequest("The encryption parameters are not applicable to this upload.")
        salt = sse.new_salt().hex()
        sub = _sub_of(upload)
        old, _ = await self._parts(brec, kb, upload_id, sub)
        algo = upload.get("ca")
        ours = compute_checksum(algo, upload.get("ct")) if algo and compute_checksum else None
        feed = on_data
        if ours is not None:
            def feed(chunk: memoryview) -> None:
                ours.update(chunk)
                if on_data is not None:
                    on_data(chunk)
        # Parts are never inline (see module docstring).
        sites = self._sites(self.ctx.placement(brec.bucket_id, kb), sub)
        override = {j: hd for j, (_, hd) in enumerate(sites) if hd is not None}
        positions, sch, written = await self.committer.stage(
            brec, kb, body, size, content_md5, feed, inline_max=-1, override=override,
            stream_key=opened.stream_key(salt) if opened else None,
        )
        self.ctx.handoffs.pop(written.data_id, None)  # parts commit here, not through _commit
        try:
            cks = dict(checksums()) if checksums is not None else {}
            if ours is not None and not cks:  # a request checksum of another kind stays a mismatch
                cks[algo] = ours.b64digest()
            check_part_checksum(algo, cks)
        except BaseException:
            await self.committer.discard(positions, written)
            raise
        now = time.time_ns()
        etag = Sealed(dict(opened.doc), b"").etag(written.md5, salt) if opened else written.md5.hex()
        doc = msgpack.packb(
            {"n": part_number, "size": written.size, "etag": etag, "data": written.data_id,
             "t": now, "cks": cks, **({"salt": salt} if opened else {})},
            use_bin_type=True,
        )
        where: list[int] = []
        landed = await self._put_meta_all(
            brec, kb, PARTS, _part_key(upload_id, part_number), doc,
            promote=lambda j: [written.data_id], only=written.ok, sub=sub, landed_at=where,
        )
        if not durable(where, sch.k, write_quorum(sch.k, sch.m)):
            raise QuorumError(f"only {landed} drives committed the part")
        prev = old.get(part_number)
        if prev is not None and prev["data"] != written.data_id:
            await self._free(positions, [prev["data"]], sub)
        return PartInfo(part_number, written.size, etag, now, cks,
                        info=encryption_info(bucket, key, upload.get("sse")))

    async def _free(
        self, positions: Sequence[int], data_ids: Sequence[str],
        sub: Mapping[int, str] | None = None,
    ) -> None:
        async def one(pos: int, ids: list[str]) -> None:
            with suppress(DriveError):
                await self.ctx.drives[pos].delete_data(ids)

        async with trio.open_nursery() as nursery:
            for j, (pos, hd) in enumerate(self._sites(positions, sub or {})):
                ids = [handoff.hinted_id(i, j) for i in data_ids] if hd is not None else list(data_ids)
                nursery.start_soon(one, pos, ids)

    async def list_parts(self, bucket: str, key: str, upload_id: str) -> list[PartInfo]:
        brec = await self.ctx.buckets.get(bucket)
        kb = check_key(key)
        upload = await self._upload(brec, kb, upload_id)
        best, _ = await self._parts(brec, kb, upload_id, _sub_of(upload))
        return [
            PartInfo(r["n"], r["size"], r["etag"], r["t"], dict(r.get("cks", {})))
            for _, r in sorted(best.items())
        ]

    async def complete_multipart(
        self, bucket: str, key: str, upload_id: str, parts: Sequence[tuple[int, str]],
        *, checksums: CompleteChecksums | None = None, condition: WriteCondition | None = None,
        meta: Mapping[str, str] | None = None,
    ) -> PutResult:
        """``checksums(algorithm, type, parts)`` gets the upload's checksum algorithm
        and type (None when created without) and the chosen parts; it returns the
        object's ``{algo: b64}`` to store, or raises to refuse the Complete."""
        brec = await self.ctx.buckets.get(bucket)
        kb = check_key(key)
        try:
            upload = await self._upload(brec, kb, upload_id)
        except NoSuchUpload:
            done = await self._completed(brec, kb, upload_id, parts)
            if done is None:
                raise
            return done
        seen = await self.conditions.precheck(brec, bucket, key, kb, condition)
        check_complete_list(upload_id, parts)
        sub = _sub_of(upload)
        sch = self.ctx.scheme_for(brec)
        rows = await self._part_rows(brec, kb, upload_id, sub)
        best, held = quorum_parts(rows, sch.k, write_quorum(sch.k, sch.m))
        chosen = choose_parts(upload_id, parts, best, MIN_PART_SIZE)
        cks: dict[str, str] = {}
        if checksums is not None:
            cks = dict(checksums(upload.get("ca"), upload.get("ct"), [
                PartInfo(p.number, p.size, p.etag, 0, dict(p.checksums)) for p in chosen
            ]))  # fmt: skip
        etag = composite_etag([p.etag for p in chosen])
        size = sum(p.size for p in chosen)
        k, m, seg = upload["ec"]
        versioned = brec.versioning == "Enabled"
        positions = self.ctx.placement(brec.bucket_id, kb)
        sites = self._sites(positions, sub)
        need = {p.data_id for p in chosen}
        ok = [j for j in range(len(positions)) if need <= held.get(j, set())
              and self.ctx.drives[sites[j][0]].state == DriveState.ONLINE]
        extra = with_tags(None, upload.get("tags"))
        if upload.get("acl") is not None:
            extra[ACL] = upload["acl"]
        if upload.get("sse"):
            extra[SSE] = {**upload["sse"], "ps": [best[n]["salt"] for n, _ in parts]}
        lk = upload.get("lock")
        extra.update(initial_lock(brec.config, ObjectLock(lk[0], lk[1], bool(lk[2])) if lk else None,
                                  time.time_ns()))
        extra[COMPLETED_FROM] = upload_id

        # A conditional Complete re-checks the key under its lock (objects/conditional.py).
        async with self.conditions.guard(brec, bucket, key, kb, condition, seen):
            vid = self.ctx.clock.new_id()
            now = time.time_ns()

            def make(j: int) -> VersionRecord:
                return VersionRecord(
                    vid=vid, mtime_ns=now, null=not versioned, size=size, etag=etag,
                    ec=(k, m, seg), frag_index=j, parts=list(chosen),
                    meta=dict(upload.get("meta", {}) if meta is None else meta),
                    checksums=cks, extra=dict(extra),
                )

            plan = {j: hd for j, (_, hd) in enumerate(sites) if hd is not None}
            if plan:  # indexes kept by substitutes commit as hints there (handoff.pending)
                self.ctx.handoffs[vid] = plan
            older = await self.committer.commit_or_rollback(
                brec, kb, positions, ok, write_quorum(k, m), make, lambda j: []
            )
        # An earlier Complete that died before removing the part rows: keep its parts too.
        keep = need | await self._referenced_by_versions(brec, kb)
        await self._finish_upload(brec, kb, upload_id, rows, keep=keep, sub=sub)
        if not versioned:
            self.committer.purge_older_nulls(brec, kb, positions, vid, older)
        if upload.get("sc") and self.on_complete_class is not None:
            self.on_complete_class(bucket, key, vid if versioned else "null", upload["sc"])
        return PutResult(etag, vid if versioned else "null", size, cks, now,
                         info=encryption_info(bucket, key, upload.get("sse")))

    async def _completed(
        self, brec: BucketRecord, kb: bytes, upload_id: str,
        parts: Sequence[tuple[int, str]],
    ) -> PutResult | None:
        """What an earlier Complete of ``upload_id`` with these ``parts`` made, if
        the key still has that version (module doc: a repeated Complete)."""
        try:
            want = composite_etag([etag.strip().strip('"') for _, etag in parts])
        except ValueError:
            return None
        _, _, resolved = await self.lookup.resolve(brec, kb)
        for r in resolved:
            rec = r.record
            if not rec.dm and rec.extra.get(COMPLETED_FROM) == upload_id and rec.etag == want:
                vid = "null" if rec.null else rec.vid
                return PutResult(rec.etag, vid, rec.size, dict(rec.checksums), rec.mtime_ns,
                                 info=encryption_info("", "", rec.extra.get(SSE)))
        return None

    async def _finish_upload(
        self, brec: BucketRecord, kb: bytes, upload_id: str,
        rows: Sequence[Sequence[dict[str, Any]] | None], *, keep: set[str],
        sub: Mapping[int, str] | None = None,
    ) -> None:
        """Remove every part record any drive answered with, not only those that
        count (a part committed on < ``k`` drives counts for no Complete, but its
        rows name its data: left, GC would keep it for ever), then the upload."""
        positions = self.ctx.placement(brec.bucket_id, kb)
        seen = [r for per in rows for r in per or ()]
        for n in sorted({r["n"] for r in seen}):
            await self._put_meta_all(brec, kb, PARTS, _part_key(upload_id, n), None, sub=sub)
        await self._put_meta_all(brec, kb, UPLOADS, _upload_key(brec.bucket_id, upload_id), None,
                                 sub=sub)
        unused = sorted({r["data"] for r in seen} - keep)
        if unused:
            await self._free(positions, unused, sub)

    async def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        brec = await self.ctx.buckets.get(bucket)
        kb = check_key(key)
        upload = await self._upload(brec, kb, upload_id)
        sub = _sub_of(upload)
        rows = await self._part_rows(brec, kb, upload_id, sub)
        # A Complete cut short (the daemon died between committing the version
        # and removing the part records) leaves the upload listed; its parts'
        # data then belongs to the object and must not be freed.
        keep = await self._referenced_by_versions(brec, kb)
        await self._finish_upload(brec, kb, upload_id, rows, keep=keep, sub=sub)

    async def _referenced_by_versions(self, brec: BucketRecord, kb: bytes) -> set[str]:
        """Data ids any version record of the key names, on any placement drive
        that answers (a committed version is on ``W`` of them)."""
        found: set[str] = set()

        async def one(d: Drive) -> None:
            with suppress(DriveError):
                for rec in await d.read_versions(brec.bucket_id, kb):
                    found.update(p.data_id for p in rec.parts or ())
                    if rec.data:
                        found.add(rec.data)

        async with trio.open_nursery() as nursery:
            for pos in self.ctx.placement(brec.bucket_id, kb):
                d = self.ctx.drives[pos]
                if d.state == DriveState.ONLINE:
                    nursery.start_soon(one, d)
        return found
