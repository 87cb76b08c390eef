"""ObjectStore over real LocalDrives: the drives' synchronous fast paths
(``read_versions_nowait``, ``read_inline_nowait``) give the same answers as
the awaited calls, also with a demoted, an offline and a corrupt drive."""

from __future__ import annotations

import os
from pathlib import Path

import trio

from titans3.drive.index import INLINE
from titans3.drive.local import LocalDrive
from titans3.drive.protocol import DriveState
from titans3.erasure.codec import ECScheme
from titans3.objects.store import ObjectStore
from titans3.ring.builder import Member, build_ring

B = "fast"


async def _body(data: bytes):
    yield data


async def _read(store: ObjectStore, key: str) -> bytes:
    res = await store.get_object(B, key)
    return b"".join([x async for x in res.body])


def _run(tmp_path: Path, test) -> None:  # noqa: ANN001
    async def main() -> None:
        drives = [LocalDrive(tmp_path / f"d{i}", create=True) for i in range(6)]
        for d in drives:
            await d.open()
        ring = build_ring([Member(d.drive_id, "h") for d in drives], 6, partition_power=4)
        store = ObjectStore(drives, ring, ECScheme(4, 2, 64 << 10), inline_max=16 << 10)
        async with trio.open_nursery() as n:
            await n.start(store.run)
            await store.create_bucket(B)
            await test(store, drives)
            n.cancel_scope.cancel()
        for d in drives:
            await d.close()

    trio.run(main)


def test_reads_through_the_fast_paths_match_what_was_written(tmp_path: Path) -> None:
    small, big = os.urandom(5000), os.urandom(300_000)  # inline / fragment files

    async def test(store: ObjectStore, drives: list[LocalDrive]) -> None:
        await store.put_object(B, "small", _body(small), size=len(small))
        await store.put_object(B, "big", _body(big), size=len(big))
        assert drives[0].read_versions_nowait(b"x" * 8, b"missing") == []
        assert await _read(store, "small") == small
        assert await _read(store, "big") == big
        assert (await store.head_object(B, "small")).size == len(small)
        assert [o.key for o in (await store.list_objects(B)).objects] == ["big", "small"]

    _run(tmp_path, test)


def test_demoted_offline_and_corrupt_drives_still_read_right(tmp_path: Path) -> None:
    small = os.urandom(5000)

    async def test(store: ObjectStore, drives: list[LocalDrive]) -> None:
        await store.put_object(B, "k", _body(small), size=len(small))
        degraded: list[set[str]] = []
        store.reads.on_degraded = lambda bid, key, vid, bad: degraded.append(bad)
        drives[0]._slow_until = 1e18  # demoted: answers through worker threads
        assert drives[0].read_versions_nowait(b"x" * 8, b"k") is None
        drives[1]._state = DriveState.OFFLINE
        assert await _read(store, "k") == small
        # Corrupt the inline fragment on the drive holding fragment 0.
        brec = await store.context.buckets.get(B)
        pos = store.context.placement(brec.bucket_id, b"k")[0]
        d = drives[pos]
        if d._state is not DriveState.ONLINE:
            pos = store.context.placement(brec.bucket_id, b"k")[2]
            d = drives[pos]
        d._slow_until = 0.0
        rec = (await d.read_versions(brec.bucket_id, b"k"))[0]
        db = d._index.db(INLINE)
        with d._index.env.begin(write=True) as txn:
            raw = bytearray(txn.get(rec.data.encode(), db=db))
            raw[-1] ^= 0xFF
            txn.put(rec.data.encode(), bytes(raw), db=db)
        assert await _read(store, "k") == small
        assert degraded and d.drive_id in degraded[-1]
        assert d.statistics().quarantined == 1

    _run(tmp_path, test)
