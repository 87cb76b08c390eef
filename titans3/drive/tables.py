"""LocalDrive's small generic tables (buckets, multipart uploads, worker state).

Each table is an LMDB sub-database ``meta:<name>`` created on first write.
Writes go through the drive's grouped durable commit and may promote staged
data in the same transaction (a multipart part becomes durable together with
its part record); point reads run inline like version lookups.

:class:`MetaTables` gets the drive's guarded ways to run work (``DriveIO``)
and its promotion step in its constructor; it keeps no state of its own
beyond the index it writes to.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

import lmdb
import trio

from titans3.drive import keys
from titans3.drive.index import META_PREFIX, Index, WriteContext
from titans3.drive.inline import InlineBlobs

T = TypeVar("T")


class DriveIO(Protocol):
    """How a drive part runs work: health-checked, counted, errors typed."""

    def require_online(self) -> None: ...

    async def ensure_table(self, name: str) -> None: ...

    async def fast(self, fn: Callable[..., T], *args: Any) -> T: ...

    async def read(self, fn: Callable[..., T], *args: Any) -> T: ...

    def write(self, fn: Callable[[WriteContext], T]) -> Awaitable[T]: ...


Promote = Callable[[WriteContext, Sequence[str], dict[str, bytes]], None]


class MetaTables:
    def __init__(self, index: Index, io: DriveIO, inline: InlineBlobs, promote: Promote,
                 check_id: Callable[[str], None]) -> None:
        self._index = index
        self._io = io
        self._inline = inline
        self._promote = promote
        self._check_id = check_id

    @staticmethod
    def _check_meta_key(key: bytes) -> None:
        if not 0 < len(key) <= keys.LMDB_MAX_KEY:
            raise ValueError(f"meta key must be 1..{keys.LMDB_MAX_KEY} bytes")

    async def _table(self, table: str) -> str:
        name = META_PREFIX + table
        self._io.require_online()
        if self._index.db(name) is None:
            await self._io.ensure_table(name)
        return name

    async def put_meta(
        self, table: str, key: bytes, value: bytes | None, *, promote: Sequence[str] = ()
    ) -> None:
        self._check_meta_key(key)
        ids = list(promote)
        for data_id in ids:
            self._check_id(data_id)
        inline = self._inline.take(ids)
        name = await self._table(table)

        def apply(ctx: WriteContext) -> None:
            self._promote(ctx, ids, inline)
            if value is None:
                ctx.txn.delete(key, db=ctx.db(name))
            else:
                ctx.txn.put(key, value, db=ctx.db(name))

        await self._io.write(apply)
        for data_id in inline:
            self._inline.drop(data_id)

    async def swap_meta(
        self, table: str, key: bytes, value: bytes | None, expect: bytes | None
    ) -> bool:
        self._check_meta_key(key)
        name = await self._table(table)

        def apply(ctx: WriteContext) -> bool:
            db = ctx.db(name)
            if ctx.txn.get(key, db=db) != expect:
                return False
            if value is None:
                ctx.txn.delete(key, db=db)
            else:
                ctx.txn.put(key, value, db=db)
            return True

        return await self._io.write(apply)

    async def get_meta(self, table: str, key: bytes) -> bytes | None:
        self._check_meta_key(key)
        db = self._index.db(META_PREFIX + table)
        if db is None:
            self._io.require_online()
            await trio.lowlevel.checkpoint()
            return None
        return await self._io.fast(self._index.read_sync, lambda txn: txn.get(key, db=db))

    async def list_meta(
        self, table: str, *, prefix: bytes = b"", start_after: bytes | None = None, limit: int = 1000
    ) -> list[tuple[bytes, bytes]]:
        db = self._index.db(META_PREFIX + table)
        if db is None:
            self._io.require_online()
            await trio.lowlevel.checkpoint()
            return []

        def scan(txn: lmdb.Transaction) -> list[tuple[bytes, bytes]]:
            with txn.cursor(db=db) as cur:
                return keys.scan_range(cur, prefix=prefix, start_after=start_after, limit=limit)

        return await self._io.read(scan)
