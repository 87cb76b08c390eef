"""ListMultipartUploads: the in-progress uploads of a bucket.

Theory of operation
-------------------
An upload is a record in the ``mpu`` table of its key's placement drives,
keyed ``bucket_id ‖ upload_id`` (``objects/multipart.py``), so the uploads of a
bucket are one prefix range of that table on every drive.  Listing reads that
range on all drives, keeps an upload when it can have been acknowledged --
held by ``count`` placement drives with ``count + unseen >= W`` (the read
quorum rule of ``objects/resolve.py``; a drive that missed an Abort cannot
bring the upload back) -- and sorts by key (UTF-8 binary order), then upload
id.  Upload ids are version-clock ids, so within a key that is initiation
order, which is what AWS promises, and upload-id-marker compares ids as AWS
says ("lexicographically greater").

Markers follow AWS: ``key-marker`` alone resumes after every upload of that
key; with ``upload-id-marker`` the uploads of that key with a greater id come
first.  With a delimiter, uploads whose keys share ``prefix … delimiter`` roll
up into one common prefix (one entry against ``max-uploads``).

Cost: the whole range is read, because the table is ordered by upload id, not
key.  In-progress uploads are few in practice; a bucket with millions of
abandoned uploads makes this listing slow (lifecycle's AbortIncompleteMultipart
is the remedy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgpack
import trio

from titans3.core.errors import DriveError, QuorumError
from titans3.objects.multipart import UPLOAD_ID_BYTES, UPLOADS
from titans3.objects.resolve import write_quorum
from titans3.objects.types import UploadInfo, UploadsPage

if TYPE_CHECKING:
    from titans3.objects.context import StoreContext

PAGE = 1000


class Uploads:
    """ListMultipartUploads (see module doc)."""

    def __init__(self, ctx: StoreContext) -> None:
        self.ctx = ctx

    async def _all_uploads(self, bucket_id: bytes) -> list[tuple[bytes, str, int]]:
        """``(key, upload id, initiated)`` of every visible upload, sorted."""
        answers: list[list[tuple[bytes, bytes]] | None] = [None] * len(self.ctx.drives)

        async def one(i: int) -> None:
            rows: list[tuple[bytes, bytes]] = []
            start: bytes | None = None
            try:
                while True:
                    page = await self.ctx.drives[i].list_meta(UPLOADS, prefix=bucket_id,
                                                          start_after=start, limit=PAGE)
                    rows.extend(page)
                    if len(page) < PAGE:
                        break
                    start = page[-1][0]
            except DriveError:
                return
            answers[i] = rows

        async with trio.open_nursery() as nursery:
            for i in range(len(self.ctx.drives)):
                if i not in self.ctx.healing:
                    nursery.start_soon(one, i)
        if sum(1 for a in answers if a is not None) < self.ctx.list_quorum():
            raise QuorumError("too few drives answered the upload listing")
        # Per upload: the drives holding its own row, and the placement indexes
        # a substitute keeps for it (rows suffixed "/h<j>", objects/multipart.py).
        seen: dict[str, tuple[dict[str, Any], set[int], set[int]]] = {}
        id_end = len(bucket_id) + UPLOAD_ID_BYTES
        for i, rows in enumerate(answers):
            for raw_key, raw in rows or ():
                upload_id = raw_key[len(bucket_id):id_end].hex()
                doc, holders, subbed = seen.setdefault(
                    upload_id, (msgpack.unpackb(raw, raw=False), set(), set()))
                suffix = raw_key[id_end:]
                if not suffix:
                    holders.add(i)
                elif suffix.startswith(b"/h") and suffix[2:].isdigit():
                    subbed.add(int(suffix[2:]))
        out: list[tuple[bytes, str, int]] = []
        for upload_id, (doc, holders, subbed) in seen.items():
            key: bytes = doc["key"]
            k, m, _ = doc.get("ec", (self.ctx.scheme.k, self.ctx.scheme.m, 0))
            placement = self.ctx.placement(bucket_id, key)
            held = {j for j, p in enumerate(placement) if p in holders} | subbed
            unseen = sum(1 for j, p in enumerate(placement) if j not in held and answers[p] is None)
            if len(held) + unseen >= write_quorum(k, m):
                out.append((key, upload_id, int(doc.get("t", 0))))
        out.sort()
        return out

    async def list_multipart_uploads(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        upload_id_marker: str = "",
        max_uploads: int = 1000,
    ) -> UploadsPage:
        brec = await self.ctx.buckets.get(bucket)
        if max_uploads <= 0:
            return UploadsPage([], [], False, None, None)
        pfx, delim, marker = prefix.encode(), delimiter.encode(), key_marker.encode()
        uploads: list[UploadInfo] = []
        prefixes: list[str] = []
        last: tuple[str, str | None] | None = None
        for key, upload_id, initiated in await self._all_uploads(brec.bucket_id):
            if not key.startswith(pfx):
                continue
            if key_marker and not (
                key > marker or (key == marker and upload_id_marker and upload_id > upload_id_marker)
            ):
                continue
            group: bytes | None = None
            if delim:
                cut = key.find(delim, len(pfx))
                if cut >= 0:
                    group = key[: cut + len(delim)]
                    if (prefixes and prefixes[-1].encode() == group) or (
                        marker.startswith(group) and key_marker
                    ):
                        continue  # already listed (this page or the one before)
            if len(uploads) + len(prefixes) >= max_uploads:
                name, uid = last if last is not None else (None, None)
                return UploadsPage(uploads, prefixes, True, name, uid)
            if group is not None:
                prefixes.append(group.decode("utf-8", "surrogateescape"))
                last = (prefixes[-1], None)
            else:
                name = key.decode("utf-8", "surrogateescape")
                uploads.append(UploadInfo(name, upload_id, initiated))
                last = (name, upload_id)
        return UploadsPage(uploads, prefixes, False, None, None)
