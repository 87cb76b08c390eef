"""LocalDrive's inline blobs: fragments small enough to live in the index.

A fragment of at most ``INLINE_MAX`` bytes is not a file: ``put_inline`` keeps
it in memory (staged, like a file in ``staging/``) until the commit that
promotes it puts it into the ``inline`` table inside the same durable LMDB
transaction as its version record (``LocalDrive._promote``).  Stored as
``xxh3-128 digest || bytes``; a read that finds a mismatch moves the blob to the
``quarantine`` table and raises ``FragmentCorrupt`` -- the same contract as a
bad block in a fragment file.  A staged blob never committed (its PUT died)
is dropped after ``STAGED_INLINE_TTL``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import trio
import xxhash

from titans3.core.errors import FragmentCorrupt
from titans3.drive import fragment as fmt
from titans3.drive.index import INLINE
from titans3.drive.protocol import INLINE_MAX

if TYPE_CHECKING:
    from titans3.drive.local import LocalDrive

log = logging.getLogger("titans3.drive.local")

STAGED_INLINE_TTL = 3600.0  # seconds an uncommitted inline blob is kept in memory
QUARANTINE_TABLE = "quarantine"  # corrupt inline blobs, keyed "<data id>.<ns>"


class InlineBlobsMixin:
    async def put_inline(self: LocalDrive, data_id: str, data: bytes) -> None:
        self._check_id(data_id)
        if len(data) > INLINE_MAX:
            raise ValueError(f"inline fragment of {len(data)} bytes exceeds {INLINE_MAX}")
        self._require_online()
        now = time.monotonic()
        for k in [k for k, (t, _) in self._staged_inline.items() if now - t > STAGED_INLINE_TTL]:
            del self._staged_inline[k]  # an abandoned PUT: never committed
        self._staged_inline[data_id] = (now, bytes(data))
        await trio.lowlevel.checkpoint()

    def _take_inline(self: LocalDrive, ids: Sequence[str]) -> dict[str, bytes]:
        for data_id in ids:
            self._check_id(data_id)
        return {i: self._staged_inline[i][1] for i in ids if i in self._staged_inline}

    def _inline_get(self: LocalDrive, data_id: str) -> bytes | None:
        db = self._index.db(INLINE)
        raw = self._index.read_sync(lambda txn: txn.get(data_id.encode(), db=db))
        if raw is None:
            return None
        data = raw[fmt.DIGEST_SIZE :]
        if xxhash.xxh3_128_digest(data) != raw[: fmt.DIGEST_SIZE]:
            self._quarantine_inline(data_id, raw)
            raise FragmentCorrupt(self.drive_id, f"inline fragment {data_id}: checksum mismatch")
        return data

    def _quarantine_inline(self: LocalDrive, data_id: str, raw: bytes) -> None:
        env = self._index.env
        assert env is not None
        # Rare path, so its own write txn (LMDB's writer mutex orders it with batches).
        with env.begin(write=True) as txn:
            txn.put(f"{data_id}.{time.time_ns()}".encode(), raw, db=self._index.db(QUARANTINE_TABLE))
            txn.delete(data_id.encode(), db=self._index.db(INLINE))
        self._add_stored(-(len(raw) - fmt.DIGEST_SIZE))
        with self._lock:
            self._inline_quarantined += 1
            self._errors += 1
        log.warning("drive %s: inline fragment %s corrupt, quarantined", self.drive_id, data_id)
