"""LocalDrive's version lists: reading one key's records and listing ranges of keys.

The records live in the index's ``versions`` table under the key encoding of
``drive/keys.py`` (exact binary order for keys up to 1,024 bytes).  Point
reads run inline on the event loop (``DriveIO.fast``), range scans in a
worker thread (``DriveIO.read``).
"""

from __future__ import annotations

from collections.abc import Callable

import lmdb

from titans3.drive import keys
from titans3.drive.index import VERSIONS, Index
from titans3.drive.liveness import packed_is_live
from titans3.drive.protocol import ListEntry
from titans3.drive.records import VersionRecord, unpack_versions
from titans3.drive.tables import DriveIO


class VersionLists:
    def __init__(self, index: Index, io: DriveIO) -> None:
        self._index = index
        self._io = io

    async def read_versions(self, bucket_id: bytes, key: bytes) -> list[VersionRecord]:
        keys.encode_key(bucket_id, key)
        db = self._index.db(VERSIONS)
        raw = await self._io.fast(self._index.read_sync, keys.read_record, db, bucket_id, key)
        return unpack_versions(raw) if raw else []

    def read_versions_sync(
        self, bucket_id: bytes, key: bytes, fast: Callable[..., bytes | None]
    ) -> list[VersionRecord]:
        """``read_versions`` through a synchronous guarded runner (DriveGuard.fast_sync)."""
        keys.encode_key(bucket_id, key)
        raw = fast(self._index.read_sync, keys.read_record, self._index.db(VERSIONS), bucket_id, key)
        return unpack_versions(raw) if raw else []

    async def list_versions(
        self,
        bucket_id: bytes,
        *,
        prefix: bytes = b"",
        start_after: bytes | None = None,
        delimiter: bytes | None = None,
        limit: int = 1000,
        live: bool = False,
    ) -> list[ListEntry]:
        keys.check_bucket_id(bucket_id)
        db = self._index.db(VERSIONS)
        keep = packed_is_live if live else None

        def walk(txn: lmdb.Transaction) -> list[tuple[bytes, bytes | None]]:
            with txn.cursor(db=db) as cur:
                return keys.walk_listing(
                    cur, bucket_id, prefix=prefix, start_after=start_after,
                    delimiter=delimiter, limit=limit, keep=keep,
                )

        # The cursor walk (which may fault pages in from the disk) runs in a
        # worker thread; records are decoded on the loop, when used, and a
        # listing mostly decodes one drive's copy per key (ListEntry.packed).
        # Decoding in the six drives' threads made six GIL-bound threads per
        # page fight the loop for the GIL: LIST got slower with concurrency.
        rows = await self._io.read(walk)
        return [
            ListEntry(k, None, True) if v is None else ListEntry(k, None, packed=v)
            for k, v in rows
        ]

    async def bucket_ids(self) -> list[bytes]:
        """Every bucket id with version records on this drive, in order.

        GC asks the drive itself rather than the bucket table: data must never
        look unreferenced just because a bucket record is missing or stale here.
        """
        db = self._index.db(VERSIONS)

        def scan(txn: lmdb.Transaction) -> list[bytes]:
            out: list[bytes] = []
            with txn.cursor(db=db) as cur:
                found = cur.first()
                while found:
                    bid = bytes(cur.key()[: keys.BUCKET_ID_LEN])
                    out.append(bid)
                    nxt = int.from_bytes(bid, "big") + 1
                    if nxt >> (8 * keys.BUCKET_ID_LEN):
                        break
                    found = cur.set_range(nxt.to_bytes(keys.BUCKET_ID_LEN, "big"))
            return out

        return await self._io.read(scan)
