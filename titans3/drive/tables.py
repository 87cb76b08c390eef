"""LocalDrive's small generic tables (buckets, multipart uploads, worker state).

Each table is an LMDB sub-database ``meta:<name>`` created on first write.
Writes go through the drive's grouped durable commit and may promote staged
data in the same transaction (a multipart part becomes durable together with
its part record); point reads run inline like version lookups.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import lmdb
import trio

from titans3.drive import keys
from titans3.drive.index import META_PREFIX, WriteContext

if TYPE_CHECKING:
    from titans3.drive.local import LocalDrive


class MetaTablesMixin:
    @staticmethod
    def _check_meta_key(key: bytes) -> None:
        if not 0 < len(key) <= keys.LMDB_MAX_KEY:
            raise ValueError(f"meta key must be 1..{keys.LMDB_MAX_KEY} bytes")

    async def put_meta(
        self: LocalDrive, table: str, key: bytes, value: bytes | None, *, promote: Sequence[str] = ()
    ) -> None:
        self._check_meta_key(key)
        name = META_PREFIX + table
        ids = list(promote)
        inline = self._take_inline(ids)
        self._require_online()
        if self._index.db(name) is None:
            self._inflight += 1
            try:
                await self._index.ensure_table(name)
            except (OSError, lmdb.Error) as e:
                raise self._io_failed(e) from e
            finally:
                self._inflight -= 1

        def apply(ctx: WriteContext) -> None:
            self._promote(ctx, ids, inline)
            if value is None:
                ctx.txn.delete(key, db=ctx.db(name))
            else:
                ctx.txn.put(key, value, db=ctx.db(name))

        await self._write(apply)
        for data_id in inline:
            self._staged_inline.pop(data_id, None)

    async def swap_meta(
        self: LocalDrive, table: str, key: bytes, value: bytes | None, expect: bytes | None
    ) -> bool:
        self._check_meta_key(key)
        name = META_PREFIX + table
        self._require_online()
        if self._index.db(name) is None:
            self._inflight += 1
            try:
                await self._index.ensure_table(name)
            except (OSError, lmdb.Error) as e:
                raise self._io_failed(e) from e
            finally:
                self._inflight -= 1

        def apply(ctx: WriteContext) -> bool:
            db = ctx.db(name)
            if ctx.txn.get(key, db=db) != expect:
                return False
            if value is None:
                ctx.txn.delete(key, db=db)
            else:
                ctx.txn.put(key, value, db=db)
            return True

        return await self._write(apply)

    async def get_meta(self: LocalDrive, table: str, key: bytes) -> bytes | None:
        self._check_meta_key(key)
        db = self._index.db(META_PREFIX + table)
        if db is None:
            self._require_online()
            await trio.lowlevel.checkpoint()
            return None
        return await self._fast(self._index.read_sync, lambda txn: txn.get(key, db=db))

    async def list_meta(
        self: LocalDrive, table: str, *, prefix: bytes = b"", start_after: bytes | None = None, limit: int = 1000
    ) -> list[tuple[bytes, bytes]]:
        db = self._index.db(META_PREFIX + table)
        if db is None:
            self._require_online()
            await trio.lowlevel.checkpoint()
            return []

        def scan(txn: lmdb.Transaction) -> list[tuple[bytes, bytes]]:
            with txn.cursor(db=db) as cur:
                return keys.scan_range(cur, prefix=prefix, start_after=start_after, limit=limit)

        return await self._read(scan)


