"""Multipart uploads over real LocalDrives: what an upload leaves on disk once it ends.

A part whose commit reached fewer than ``k`` drives (the daemon was killed
between the drives' commits; the client saw an error and never re-sent it) is
not a part any Complete can choose, but its part records still name its data.
When the upload ends -- Abort, or a Complete of the other parts -- every part
record of the upload must go, so its data becomes an orphan that GC collects;
the crash torture found the two fragment files such a part left behind.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgpack
import pytest

from tests.objects.localstore import run_on_local_drives
from titans3.drive.local import LocalDrive
from titans3.objects import multipart
from titans3.objects.maintenance import Maintenance
from titans3.objects.multipart import PARTS
from titans3.objects.store import ObjectStore
from titans3.workers.gc import GarbageCollector

SEG = 64 << 10
B = "bkt"
OLD = time.time() - 7200


async def _body(data: bytes):
    yield data


def _run(tmp_path: Path, test: Callable[[ObjectStore, list[LocalDrive]], Awaitable[None]]) -> None:
    run_on_local_drives(tmp_path, B, test, segment=SEG, inline_max=4 << 10)


async def _part_rows(d: LocalDrive) -> list[tuple[bytes, dict]]:
    return [(k, msgpack.unpackb(v, raw=False)) for k, v in await d.list_meta(PARTS)]


async def _commit_cut_short(store: ObjectStore, drives: list[LocalDrive], key: str, uid: str,
                            number: int, reached: int) -> str:
    """Upload part ``number``, then leave the disks as a SIGKILL between the drives'
    commits would: committed (part record + promoted file) on ``reached`` placement
    drives, only staged on the others.  Returns the part's data id."""
    await store.upload_part(B, key, uid, number, _body(os.urandom(SEG + 123)))
    bid = (await store.buckets.get(B)).bucket_id
    placement = store.placement(bid, key.encode())
    data_id = ""
    for pos in placement[reached:]:
        d = drives[pos]
        for k, doc in await _part_rows(d):
            if doc["n"] == number:
                data_id = doc["data"]
                await d.put_meta(PARTS, k, None)
                os.rename(d.chunk_path(data_id), d.root / "staging" / data_id)
    assert data_id
    return data_id


async def _collect_garbage(store: ObjectStore) -> GarbageCollector:
    """Age every file past the commit window, then run one GC pass."""
    for p in store.drives[0].root.parent.rglob("*"):
        if p.is_file() and p.parent.name != "index.lmdb":
            os.utime(p, (OLD, OLD))
    gc = GarbageCollector(Maintenance(store, grace=0), positions=list(range(len(store.drives))),
                          interval=1e9, window=3600)
    await gc.collect()
    return gc


def _fragment_files(drives: list[LocalDrive]) -> set[str]:
    return {p.name for d in drives for p in (d.root / "chunks").rglob("*") if p.is_file()}


async def _referenced(store: ObjectStore, key: str) -> set[str]:
    doc = await store.inspect_object(B, key)
    return {s["data_id"] for v in doc["versions"] for s in v["streams"]}


@pytest.fixture(autouse=True)
def _small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(multipart, "MIN_PART_SIZE", SEG)


def test_abort_removes_a_part_committed_on_too_few_drives_and_gc_takes_its_data(
        tmp_path: Path) -> None:
    async def test(store: ObjectStore, drives: list[LocalDrive]) -> None:
        uid = await store.create_multipart(B, "k")
        await store.upload_part(B, "k", uid, 1, _body(os.urandom(SEG + 5)))
        await _commit_cut_short(store, drives, "k", uid, 2, reached=2)
        assert [p.number for p in await store.list_parts(B, "k", uid)] == [1]
        await store.abort_multipart(B, "k", uid)
        assert [await _part_rows(d) for d in drives] == [[]] * 6
        await _collect_garbage(store)
        assert _fragment_files(drives) == set()
        assert [list((d.root / "staging").iterdir()) for d in drives] == [[]] * 6

    _run(tmp_path, test)


def test_complete_removes_a_part_it_did_not_choose_and_gc_keeps_only_the_object(
        tmp_path: Path) -> None:
    async def test(store: ObjectStore, drives: list[LocalDrive]) -> None:
        data = [os.urandom(SEG + 7), os.urandom(999)]
        uid = await store.create_multipart(B, "k")
        e1 = await store.upload_part(B, "k", uid, 1, _body(data[0]))
        e2 = await store.upload_part(B, "k", uid, 2, _body(data[1]))
        await _commit_cut_short(store, drives, "k", uid, 3, reached=3)
        await store.complete_multipart(B, "k", uid, [(1, e1.etag), (2, e2.etag)])
        assert [await _part_rows(d) for d in drives] == [[]] * 6
        gc = await _collect_garbage(store)
        live = await _referenced(store, "k")
        assert len(live) == 2 and _fragment_files(drives) == live
        assert gc.statistics().errors == 0
        res = await store.get_object(B, "k")
        assert b"".join([x async for x in res.body]) == b"".join(data)

    _run(tmp_path, test)
