"""LocalDrive's inline blobs: fragments small enough to live in the index.

A fragment of at most ``INLINE_MAX`` bytes is not a file: ``put_inline`` keeps
it in memory (staged, like a file in ``staging/``) until the commit that
promotes it puts it into the ``inline`` table inside the same durable LMDB
transaction as its version record (``LocalDrive._promote``).  Stored as
``xxh3-128 digest || bytes``; a read that finds a mismatch moves the blob to the
``quarantine`` table and raises ``FragmentCorrupt`` -- the same contract as a
bad block in a fragment file.  A staged blob never committed (its PUT died)
is dropped after ``STAGED_INLINE_TTL``.

:class:`InlineBlobs` owns the staged blobs and the quarantine count; the
drive (``local.py``) holds one and does the health checks around it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import xxhash

from titans3.core.errors import FragmentCorrupt
from titans3.drive import fragment as fmt
from titans3.drive.index import INLINE, Index
from titans3.drive.protocol import INLINE_MAX

log = logging.getLogger("titans3.drive.local")

STAGED_INLINE_TTL = 3600.0  # seconds an uncommitted inline blob is kept in memory
QUARANTINE_TABLE = "quarantine"  # corrupt inline blobs, keyed "<data id>.<ns>"


class InlineBlobs:
    """Staged and committed inline blobs of one drive's index.

    ``drive_id()`` names the drive in errors; ``on_quarantine(size)`` is
    called (from a worker thread) when a corrupt blob of ``size`` bytes was
    moved aside."""

    def __init__(self, index: Index, *, drive_id: Callable[[], str],
                 on_quarantine: Callable[[int], None]) -> None:
        self._index = index
        self._drive_id = drive_id
        self._on_quarantine = on_quarantine
        self._staged: dict[str, tuple[float, bytes]] = {}
        self.quarantined = 0

    def __len__(self) -> int:
        return len(self._staged)

    def stage(self, data_id: str, data: bytes) -> None:
        if len(data) > INLINE_MAX:
            raise ValueError(f"inline fragment of {len(data)} bytes exceeds {INLINE_MAX}")
        now = time.monotonic()
        for k in [k for k, (t, _) in self._staged.items() if now - t > STAGED_INLINE_TTL]:
            del self._staged[k]  # an abandoned PUT: never committed
        self._staged[data_id] = (now, bytes(data))

    def take(self, ids: Sequence[str]) -> dict[str, bytes]:
        """The staged blobs among ``ids`` (still staged until :meth:`drop`)."""
        return {i: self._staged[i][1] for i in ids if i in self._staged}

    def drop(self, data_id: str) -> None:
        self._staged.pop(data_id, None)

    def get(self, data_id: str) -> bytes | None:
        """A committed blob, verified (blocking: an LMDB read)."""
        db = self._index.db(INLINE)
        raw = self._index.read_sync(lambda txn: txn.get(data_id.encode(), db=db))
        if raw is None:
            return None
        data = raw[fmt.DIGEST_SIZE :]
        if xxhash.xxh3_128_digest(data) != raw[: fmt.DIGEST_SIZE]:
            self._quarantine(data_id, raw)
            raise FragmentCorrupt(self._drive_id(), f"inline fragment {data_id}: checksum mismatch")
        return data

    def _quarantine(self, data_id: str, raw: bytes) -> None:
        env = self._index.env
        assert env is not None
        # Rare path, so its own write txn (LMDB's writer mutex orders it with batches).
        with env.begin(write=True) as txn:
            txn.put(f"{data_id}.{time.time_ns()}".encode(), raw, db=self._index.db(QUARANTINE_TABLE))
            txn.delete(data_id.encode(), db=self._index.db(INLINE))
        self.quarantined += 1
        self._on_quarantine(len(raw) - fmt.DIGEST_SIZE)
        log.warning("drive %s: inline fragment %s corrupt, quarantined", self._drive_id(), data_id)
