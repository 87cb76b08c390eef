"""ObjectStore over real LocalDrives: the drives' synchronous fast paths
(``read_versions_nowait``, ``read_inline_nowait``) give the same answers as
the awaited calls, also with a demoted, an offline and a corrupt drive."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.objects.localstore import run_on_local_drives
from titans3.core.errors import NoSuchKey, QuorumError
from titans3.drive.index import INLINE
from titans3.drive.local import LocalDrive
from titans3.drive.protocol import DriveState
from titans3.drive.records import VersionRecord
from titans3.objects.store import ObjectStore

B = "fast"


async def _body(data: bytes):
    yield data


async def _read(store: ObjectStore, key: str) -> bytes:
    res = await store.get_object(B, key)
    return b"".join([x async for x in res.body])


def _run(tmp_path: Path, test) -> None:  # noqa: ANN001
    run_on_local_drives(tmp_path, B, test, segment=64 << 10, inline_max=16 << 10)


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


async def _answer(store: ObjectStore, key: str) -> bytes | str | None:
    """What a client sees: the bytes, None (404) or "503"."""
    try:
        return await _read(store, key)
    except NoSuchKey:
        return None
    except QuorumError:
        return "503"


async def _cut_short(store: ObjectStore, drives: list[LocalDrive], key: str, body: bytes,
                     holders: int) -> list[int]:
    """Leave ``key``'s new version on its first ``holders`` placement drives only:
    what a PUT whose gateway was SIGKILLed mid-commit leaves (issue #17)."""
    await store.put_object(B, key, _body(body), size=len(body))
    brec = await store.context.buckets.get(B)
    positions = store.context.placement(brec.bucket_id, key.encode())
    rec = max(await drives[positions[0]].read_versions(brec.bucket_id, key.encode()),
              key=lambda r: r.vid)
    for p in positions[holders:]:
        await drives[p].commit_version(brec.bucket_id, key.encode(),
                                       VersionRecord(vid=rec.vid, tomb=True))
    return positions


async def _with_each_drive_away(store: ObjectStore, drives: list[LocalDrive], key: str,
                                positions: list[int]) -> list[bytes | str | None]:
    seen = [await _answer(store, key)]
    for p in positions:
        drives[p]._state = DriveState.OFFLINE
        seen.append(await _answer(store, key))
        drives[p]._state = DriveState.ONLINE
    return seen


def test_a_put_cut_short_after_k_commits_reads_the_same_whichever_drive_is_away(
        tmp_path: Path) -> None:
    body = os.urandom(70_000)

    async def test(store: ObjectStore, drives: list[LocalDrive]) -> None:
        positions = await _cut_short(store, drives, "w50/k00", body, holders=4)
        seen = await _with_each_drive_away(store, drives, "w50/k00", positions)
        # Before the fix: absent with every drive answering, the body with a
        # drive that lacks it away -- a client saw the key absent, then present.
        assert seen[0] == body
        assert {s for s in seen if s != "503"} == {body}, [type(s) for s in seen]
        assert seen.count("503") == 4  # a drive holding it away: the others cannot tell
        assert [o.key for o in (await store.list_objects(B)).objects] == ["w50/k00"]

    _run(tmp_path, test)


def test_a_put_cut_short_before_k_commits_is_never_served(tmp_path: Path) -> None:
    old, new = os.urandom(70_000), os.urandom(70_000)

    async def test(store: ObjectStore, drives: list[LocalDrive]) -> None:
        await store.put_bucket_versioning(B, "Enabled")  # the old version stays beside the new
        await store.put_object(B, "k", _body(old), size=len(old))
        positions = await _cut_short(store, drives, "k", new, holders=3)
        seen = await _with_each_drive_away(store, drives, "k", positions)
        assert seen[0] == old
        assert {s for s in seen if s != "503"} == {old}
        assert new not in seen
        assert [o.size for o in (await store.list_objects(B)).objects] == [len(old)]

    _run(tmp_path, test)


def test_a_delete_while_a_holder_of_a_cut_short_put_is_away_removes_it(tmp_path: Path) -> None:
    body = os.urandom(70_000)

    async def test(store: ObjectStore, drives: list[LocalDrive]) -> None:
        positions = await _cut_short(store, drives, "k", body, holders=4)
        assert await _answer(store, "k") == body
        drives[positions[0]]._state = DriveState.OFFLINE  # holds it: the others cannot tell
        await store.delete_object(B, "k")  # acknowledged
        drives[positions[0]]._state = DriveState.ONLINE
        assert await _with_each_drive_away(store, drives, "k", positions) == [None] * 7
        assert (await store.list_objects(B)).objects == []

    _run(tmp_path, test)


def test_deleting_a_cut_short_version_by_id_while_a_holder_is_away_removes_it(
        tmp_path: Path) -> None:
    old, new = os.urandom(70_000), os.urandom(70_000)

    async def test(store: ObjectStore, drives: list[LocalDrive]) -> None:
        await store.put_bucket_versioning(B, "Enabled")
        await store.put_object(B, "k", _body(old), size=len(old))
        positions = await _cut_short(store, drives, "k", new, holders=4)
        vid = (await store.head_object(B, "k")).version_id
        drives[positions[0]]._state = DriveState.OFFLINE
        await store.delete_object(B, "k", version_id=vid)  # acknowledged
        drives[positions[0]]._state = DriveState.ONLINE
        assert set(await _with_each_drive_away(store, drives, "k", positions)) == {old}

    _run(tmp_path, test)


def test_a_delete_through_a_host_whose_clock_is_behind_still_removes_the_object(
        tmp_path: Path) -> None:
    body = os.urandom(70_000)

    async def test(store: ObjectStore, drives: list[LocalDrive]) -> None:
        await store.put_object(B, "k", _body(body), size=len(body))
        clock = store.context.clock  # now the clock of a host running an hour behind
        clock._wall_ms = lambda: time.time_ns() // 1_000_000 - 3_600_000
        clock._last_ms = clock._logical = 0
        await store.delete_object(B, "k")
        assert await _answer(store, "k") is None

    _run(tmp_path, test)


def test_a_rename_whose_newest_version_the_silent_drives_decide_answers_503(
        tmp_path: Path) -> None:
    old, new = os.urandom(70_000), os.urandom(70_000)

    async def test(store: ObjectStore, drives: list[LocalDrive]) -> None:
        await store.put_object(B, "src", _body(old), size=len(old))
        positions = await _cut_short(store, drives, "src", new, holders=4)
        drives[positions[0]]._state = DriveState.OFFLINE  # holds the new one: undecided
        with pytest.raises(QuorumError):  # not the old version moved under the new name
            await store.rename_object(B, "src", "dst")
        drives[positions[0]]._state = DriveState.ONLINE
        assert await _answer(store, "src") == new and await _answer(store, "dst") is None

    _run(tmp_path, test)
