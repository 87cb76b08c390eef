"""In-memory double of the Drive protocol for object-layer unit tests.

It follows the protocol's semantics (staging invisible until promoted, merge
rule from records.merge_commit, delimiter push-down) so the store's quorum,
listing and failure logic can be tested fast and deterministically; the real
LocalDrive has its own tests and the integration tests run the real daemon.
"""

from __future__ import annotations

from collections.abc import Sequence

import trio

from titans3.core.errors import DriveOffline, FragmentMissing
from titans3.drive.liveness import records_are_live
from titans3.drive.protocol import DriveStat, DriveState, ListEntry
from titans3.drive.records import VersionRecord, has_older_null, merge_commit


class _Writer:
    def __init__(self, drive: MemDrive, data_id: str) -> None:
        self.drive, self.data_id, self.buf = drive, data_id, bytearray()

    async def write(self, data: bytes | memoryview) -> None:
        self.drive._check()
        self.buf += data
        await trio.lowlevel.checkpoint()

    async def finish(self) -> int:
        self.drive._check()
        self.drive.staging[self.data_id] = bytes(self.buf)
        return len(self.buf)

    async def abort(self) -> None:
        self.drive.staging.pop(self.data_id, None)


class MemDrive:
    def __init__(self, drive_id: str) -> None:
        self.drive_id = drive_id
        self.offline = False
        self.staging: dict[str, bytes] = {}
        self.data: dict[str, bytes] = {}
        self.versions: dict[tuple[bytes, bytes], list[VersionRecord]] = {}
        self.tables: dict[str, dict[bytes, bytes]] = {}

    def _check(self) -> None:
        if self.offline:
            raise DriveOffline(self.drive_id)

    @property
    def state(self) -> DriveState:
        return DriveState.OFFLINE if self.offline else DriveState.ONLINE

    async def stat(self) -> DriveStat:
        used = sum(len(v) for v in self.data.values())
        return DriveStat(self.drive_id, "mem", self.state, 1 << 30, used, (1 << 30) - used, 0, 0)

    async def create_fragment(self, data_id: str, frag_index: int) -> _Writer:
        self._check()
        return _Writer(self, data_id)

    async def put_inline(self, data_id: str, data: bytes) -> None:
        self._check()
        self.staging[data_id] = bytes(data)

    async def read_fragment(self, data_id: str, offset: int, length: int) -> bytes:
        self._check()
        if data_id not in self.data:
            raise FragmentMissing(self.drive_id, data_id)
        return self.data[data_id][offset : offset + length]

    async def fragment_size(self, data_id: str) -> int:
        self._check()
        if data_id not in self.data:
            raise FragmentMissing(self.drive_id, data_id)
        return len(self.data[data_id])

    def _promote(self, ids: Sequence[str]) -> None:
        for i in ids:
            if i in self.staging:
                self.data[i] = self.staging.pop(i)

    async def commit_version(self, bucket_id, key, record, *, promote=()):  # type: ignore[no-untyped-def]
        self._check()
        self._promote(promote)
        recs, freed = merge_commit(self.versions.get((bucket_id, key), []), record)
        if recs:
            self.versions[(bucket_id, key)] = recs
        else:
            self.versions.pop((bucket_id, key), None)
        for d in freed:
            self.data.pop(d, None)
        await trio.lowlevel.checkpoint()
        return record.null and not record.tomb and has_older_null(recs, record.vid)

    async def read_versions(self, bucket_id: bytes, key: bytes) -> list[VersionRecord]:
        self._check()
        await trio.lowlevel.checkpoint()
        return list(self.versions.get((bucket_id, key), []))

    async def list_versions(self, bucket_id, *, prefix=b"", start_after=None, delimiter=None, limit=1000,  # type: ignore[no-untyped-def]
                            live=False):
        self._check()
        await trio.lowlevel.checkpoint()
        keys = sorted(k for b, k in self.versions if b == bucket_id and k.startswith(prefix))
        out: list[ListEntry] = []
        last_prefix = None
        for k in keys:
            if start_after is not None and k <= start_after:
                continue
            if live and not records_are_live(self.versions[(bucket_id, k)]):
                continue
            if delimiter:
                cut = k.find(delimiter, len(prefix))
                if cut >= 0:
                    p = k[: cut + len(delimiter)]
                    if p == last_prefix or (start_after is not None and p <= start_after < p + b"\xff"):
                        continue
                    last_prefix = p
                    out.append(ListEntry(p, None, True))
                    if len(out) == limit:
                        break
                    continue
            out.append(ListEntry(k, list(self.versions[(bucket_id, k)])))
            if len(out) == limit:
                break
        return out

    async def delete_data(self, data_ids: Sequence[str]) -> None:
        self._check()
        for d in data_ids:
            self.data.pop(d, None)
            self.staging.pop(d, None)

    async def put_meta(self, table, key, value, *, promote=()):  # type: ignore[no-untyped-def]
        self._check()
        self._promote(promote)
        t = self.tables.setdefault(table, {})
        if value is None:
            t.pop(key, None)
        else:
            t[key] = value

    async def swap_meta(self, table, key, value, expect):  # type: ignore[no-untyped-def]
        self._check()
        t = self.tables.setdefault(table, {})
        await trio.lowlevel.checkpoint()
        if t.get(key) != expect:
            return False
        if value is None:
            t.pop(key, None)
        else:
            t[key] = value
        return True

    async def get_meta(self, table: str, key: bytes) -> bytes | None:
        self._check()
        return self.tables.get(table, {}).get(key)

    async def list_meta(self, table, *, prefix=b"", start_after=None, limit=1000):  # type: ignore[no-untyped-def]
        self._check()
        rows = sorted((k, v) for k, v in self.tables.get(table, {}).items() if k.startswith(prefix))
        rows = [(k, v) for k, v in rows if start_after is None or k > start_after]
        return rows[:limit]

    async def close(self) -> None:
        pass
