"""Repair of one key over in-memory drives: what is rebuilt, where, and byte for byte."""

from __future__ import annotations

import os

import trio

from titans3.erasure.codec import ECScheme
from titans3.objects.inspect import inspect_object
from titans3.objects.repair import MISSING, OK, STALE, ObjectRepair
from titans3.objects.store import ObjectStore
from titans3.ring.builder import Member, build_ring

from .memdrive import MemDrive

SEG = 64 << 10


def make_store() -> tuple[ObjectStore, list[MemDrive]]:
    drives = [MemDrive(f"d{i}") for i in range(6)]
    ring = build_ring([Member(d.drive_id, "h") for d in drives], 6, partition_power=4)
    return ObjectStore(drives, ring, ECScheme(4, 2, SEG), inline_max=4 << 10), drives


async def body(data: bytes):
    for i in range(0, len(data), 50_000):
        yield data[i : i + 50_000]
        await trio.lowlevel.checkpoint()


async def read_all(store: ObjectStore, key: str, bucket: str = "bkt") -> bytes:
    res = await store.get_object(bucket, key)
    out = bytearray()
    async for chunk in res.body:
        out += chunk
    return bytes(out)


def run(fn):
    def wrapper():
        async def main():
            store, drives = make_store()
            async with trio.open_nursery() as nursery:
                await nursery.start(store.run)
                await store.create_bucket("bkt")
                await fn(store, drives, ObjectRepair(store, grace=0))
                nursery.cancel_scope.cancel()

        trio.run(main)

    wrapper.__name__ = fn.__name__
    return wrapper


def expected_fragment(store: ObjectStore, data: bytes, index: int) -> bytes:
    """Fragment stream ``index`` as the writer would produce it."""
    codec = store.codec(4, 2)
    return b"".join(codec.encode(data[s : s + SEG])[index] for s in range(0, len(data), SEG))


async def where(store: ObjectStore, key: bytes) -> tuple[bytes, list[int]]:
    brec = await store.buckets.get("bkt")
    return brec.bucket_id, store.placement(brec.bucket_id, key)


@run
async def test_deleted_fragment_is_rebuilt_byte_identical(store, drives, rep):
    data = os.urandom(3 * SEG + 100)
    await store.put_object("bkt", "k", body(data))
    bid, pos = await where(store, b"k")
    victim = drives[pos[2]]
    (data_id,) = victim.data
    original = victim.data.pop(data_id)
    out = await rep.repair(bid, b"k")
    assert out.fragments_rebuilt == 1 and out.records_restored == 0 and out.healthy
    assert victim.data[data_id] == original
    assert out.bytes_rebuilt == len(original)
    # Nothing left to do: a second repair changes nothing.
    again = await rep.repair(bid, b"k")
    assert not again.changed and again.healthy


@run
async def test_drive_offline_during_put_gets_record_and_fragment(store, drives, rep):
    data = os.urandom(2 * SEG + 7)
    bid, pos = await where(store, b"k")
    absent = drives[pos[4]]  # a parity position
    absent.offline = True
    await store.put_object("bkt", "k", body(data))
    absent.offline = False
    assert not absent.versions
    out = await rep.repair(bid, b"k")
    assert out.records_restored == 1 and out.fragments_rebuilt == 1
    (rec,) = absent.versions[(bid, b"k")]
    assert rec.frag_index == 4
    assert absent.data[rec.data] == expected_fragment(store, data, 4)
    # The repaired drive alone with three others serves the object.
    for d in drives:
        d.offline = d is not absent and d is not drives[pos[0]] and d is not drives[pos[1]] \
            and d is not drives[pos[2]]
    assert await read_all(store, "k") == data


@run
async def test_only_the_named_drive_is_repaired(store, drives, rep):
    await store.put_object("bkt", "k", body(os.urandom(SEG + 1)))
    bid, pos = await where(store, b"k")
    for j in (1, 3):
        drives[pos[j]].data.clear()
    out = await rep.repair(bid, b"k", only={pos[3]})
    assert out.fragments_rebuilt == 1
    assert drives[pos[3]].data and not drives[pos[1]].data


@run
async def test_inline_object_fragment_is_rebuilt(store, drives, rep):
    data = os.urandom(3000)
    await store.put_object("bkt", "small", body(data))
    bid, pos = await where(store, b"small")
    (rec,) = drives[pos[0]].versions[(bid, b"small")]
    assert rec.inline
    original = drives[pos[0]].data.pop(rec.data)
    out = await rep.repair(bid, b"small")
    assert out.fragments_rebuilt == 1
    assert drives[pos[0]].data[rec.data] == original


@run
async def test_multipart_rebuilds_only_the_damaged_part(store, drives, rep):
    part = 5 << 20
    parts_data = [os.urandom(part), os.urandom(1000)]
    uid = await store.create_multipart("bkt", "mp")
    etags = []
    for n, chunk in enumerate(parts_data, 1):
        etags.append((n, (await store.upload_part("bkt", "mp", uid, n, body(chunk))).etag))
    await store.complete_multipart("bkt", "mp", uid, etags)
    bid, pos = await where(store, b"mp")
    (rec,) = drives[pos[1]].versions[(bid, b"mp")]
    second = rec.parts[1].data_id
    original = drives[pos[1]].data.pop(second)
    out = await rep.repair(bid, b"mp")
    assert out.fragments_rebuilt == 1
    assert drives[pos[1]].data[second] == original
    assert await read_all(store, "mp") == b"".join(parts_data)


@run
async def test_delete_marker_is_restored_on_a_drive_that_missed_it(store, drives, rep):
    await store.put_bucket_versioning("bkt", "Enabled")
    await store.put_object("bkt", "k", body(b"x" * 10))
    bid, pos = await where(store, b"k")
    drives[pos[5]].offline = True
    await store.delete_object("bkt", "k")
    drives[pos[5]].offline = False
    assert not any(r.dm for r in drives[pos[5]].versions[(bid, b"k")])
    out = await rep.repair(bid, b"k")
    assert out.records_restored == 1
    assert any(r.dm for r in drives[pos[5]].versions[(bid, b"k")])


@run
async def test_too_few_fragments_is_reported_lost_and_nothing_half_written(store, drives, rep):
    await store.put_object("bkt", "k", body(os.urandom(2 * SEG)))
    bid, pos = await where(store, b"k")
    for j in (0, 1, 2):
        drives[pos[j]].data.clear()
    out = await rep.repair(bid, b"k")
    assert out.lost == 1 and out.fragments_rebuilt == 0 and not out.healthy
    assert all(not drives[pos[j]].data and not drives[pos[j]].staging for j in (0, 1, 2))


@run
async def test_young_versions_are_left_to_their_put(store, drives, rep):
    await store.put_object("bkt", "k", body(os.urandom(SEG)))
    bid, pos = await where(store, b"k")
    drives[pos[0]].data.clear()
    out = await ObjectRepair(store, grace=3600).repair(bid, b"k")
    assert out.deferred and not out.changed
    assert not drives[pos[0]].data


@run
async def test_inspect_names_stale_missing_and_ok_fragments(store, drives, rep):
    await store.put_object("bkt", "k", body(os.urandom(SEG)))
    bid, pos = await where(store, b"k")
    drives[pos[3]].offline = True
    new = os.urandom(SEG + 5)
    await store.put_object("bkt", "k", body(new))
    drives[pos[3]].offline = False
    newest = drives[pos[0]].versions[(bid, b"k")][0]
    drives[pos[0]].data.pop(newest.data)
    doc = await inspect_object(store, "bkt", "k")
    health = {f["index"]: f["health"] for f in doc["versions"][0]["fragments"]}
    assert health[3] == STALE and health[0] == MISSING
    assert [health[i] for i in (1, 2, 4, 5)] == [OK] * 4
    assert not doc["healthy"] and doc["versions"][0]["ec"]["k"] == 4
    out = await rep.repair(bid, b"k")
    assert out.records_restored == 1 and out.fragments_rebuilt == 2
    doc = await inspect_object(store, "bkt", "k")
    assert doc["healthy"]
    assert await read_all(store, "k") == new


@run
async def test_fragments_on_drives_that_are_away_defer_instead_of_declaring_loss(store, drives, rep):
    await store.put_object("bkt", "k", body(os.urandom(SEG)))
    bid, pos = await where(store, b"k")
    drives[pos[0]].data.clear()
    drives[pos[1]].data.clear()
    drives[pos[2]].offline = True  # three healthy left, one more is merely unreachable
    out = await rep.repair(bid, b"k")
    assert out.deferred and out.lost == 0 and not out.changed
    drives[pos[2]].offline = False
    out = await rep.repair(bid, b"k")
    assert out.fragments_rebuilt == 2 and out.healthy
