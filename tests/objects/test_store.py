"""ObjectStore semantics over in-memory drives: quorums, versions, listing, multipart."""

from __future__ import annotations

import hashlib
import os

import pytest
import trio
import trio.testing

from titans3.core.errors import (
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    EntityTooSmall,
    InvalidPart,
    InvalidPartOrder,
    InvalidRange,
    NoSuchBucket,
    NoSuchKey,
    NoSuchUpload,
    QuorumError,
)
from titans3.erasure.codec import ECScheme
from titans3.objects.store import ObjectStore
from titans3.ring.builder import Member, build_ring

from .memdrive import MemDrive

SEG = 64 << 10


def make_store(n: int = 6, k: int = 4, m: int = 2, inline_max: int = 4 << 10):
    drives = [MemDrive(f"d{i}") for i in range(n)]
    ring = build_ring([Member(d.drive_id, "h") for d in drives], k + m, partition_power=4)
    return ObjectStore(drives, ring, ECScheme(k, m, SEG), inline_max=inline_max), drives


async def body(data: bytes, piece: int = 10_000):
    for i in range(0, len(data), piece):
        yield data[i : i + piece]
        await trio.lowlevel.checkpoint()


async def read_all(store: ObjectStore, bucket: str, key: str, **kw) -> bytes:
    res = await store.get_object(bucket, key, **kw)
    out = bytearray()
    async for chunk in res.body:
        out += chunk
    return bytes(out)


def run(fn):
    """Run an async test with a store whose background nursery is live."""

    def wrapper(*args, **kwargs):
        async def main():
            store, drives = make_store(**kwargs.pop("store_kw", {}))
            async with trio.open_nursery() as nursery:
                await nursery.start(store.run)
                await store.create_bucket("bkt")
                await fn(store, drives, *args, **kwargs)
                nursery.cancel_scope.cancel()

        trio.run(main)

    wrapper.__name__ = fn.__name__
    return wrapper


SIZES = [0, 1, 1000, 4 << 10, SEG - 1, SEG, SEG + 1, 5 * SEG + 123]


@pytest.mark.parametrize("size", SIZES)
def test_put_get_round_trip_at_segment_edges(size):
    @run
    async def t(store, drives):
        data = os.urandom(size)
        res = await store.put_object("bkt", "k", body(data), size=size)
        assert res.etag == hashlib.md5(data).hexdigest()
        assert await read_all(store, "bkt", "k") == data
        info = await store.head_object("bkt", "k")
        assert info.size == size

    t()


@run
async def test_range_reads_return_exact_bytes(store, drives):
    data = os.urandom(3 * SEG + 77)
    await store.put_object("bkt", "k", body(data))
    for first, last in [(0, 0), (5, SEG + 5), (SEG - 1, SEG), (3 * SEG, None), (None, 100), (10, 10**9)]:
        got = await read_all(store, "bkt", "k", byte_range=(first, last))
        if first is None:
            assert got == data[-last:]
        else:
            end = len(data) - 1 if last is None else min(last, len(data) - 1)
            assert got == data[first : end + 1]
    with pytest.raises(InvalidRange):
        await store.get_object("bkt", "k", byte_range=(len(data), None))


@run
async def test_get_survives_any_two_lost_drives(store, drives):
    data = os.urandom(4 * SEG + 5)
    small = os.urandom(300)
    await store.put_object("bkt", "big", body(data))
    await store.put_object("bkt", "small", body(small))
    for a in range(6):
        for b in range(a + 1, 6):
            drives[a].offline = drives[b].offline = True
            assert await read_all(store, "bkt", "big") == data
            assert await read_all(store, "bkt", "small") == small
            drives[a].offline = drives[b].offline = False


@run
async def test_three_lost_drives_is_unavailable_not_wrong(store, drives):
    await store.put_object("bkt", "k", body(os.urandom(SEG * 2)))
    for d in drives[:3]:
        d.offline = True
    with pytest.raises(QuorumError):
        await read_all(store, "bkt", "k")


@run
async def test_put_needs_write_quorum(store, drives):
    # Two down is handled by hinted handoff (tests/objects/test_handoff.py);
    # three down leaves fewer than k primaries: refused, nothing visible.
    drives[0].offline = drives[1].offline = drives[2].offline = True
    with pytest.raises(QuorumError):
        await store.put_object("bkt", "k", body(b"x" * SEG * 2))
    drives[0].offline = drives[1].offline = drives[2].offline = False
    with pytest.raises(NoSuchKey):
        await store.head_object("bkt", "k")


@run
async def test_put_with_one_drive_down_succeeds_and_reads_back(store, drives):
    drives[3].offline = True
    data = os.urandom(SEG * 3)
    await store.put_object("bkt", "k", body(data))
    drives[3].offline = False
    assert await read_all(store, "bkt", "k") == data


@run
async def test_a_write_acknowledged_short_of_a_drive_is_reported_for_repair(store, drives):
    reported: list[tuple[bytes, bytes]] = []
    store.on_partial_write = lambda b, k: reported.append((b, k))
    await store.put_object("bkt", "whole", body(os.urandom(SEG * 2)))
    assert reported == []  # all six drives landed

    async def dies_mid_stream():  # drive 2 takes the first segment, then fails
        yield os.urandom(SEG)
        drives[2].offline = True
        yield os.urandom(SEG)

    await store.put_object("bkt", "short", dies_mid_stream())
    assert [k for _, k in reported] == [b"short"] and store.partial_writes == 1
    drives[2].offline = False
    # A drive down *before* the write gets a hint instead, which replay restores.
    drives[4].offline = True
    await store.put_object("bkt", "hinted", body(os.urandom(SEG * 2)))
    drives[4].offline = False
    assert [k for _, k in reported] == [b"short"]


@run
async def test_overwrite_in_unversioned_bucket_frees_old_data(store, drives):
    await store.put_object("bkt", "k", body(b"a" * SEG * 2))
    await store.put_object("bkt", "k", body(b"b" * SEG * 2))
    await trio.testing.wait_all_tasks_blocked()
    assert await read_all(store, "bkt", "k") == b"b" * SEG * 2
    assert all(len(d.data) == 1 for d in drives)
    assert all(len(v) == 1 for d in drives for v in d.versions.values())


@run
async def test_partial_commit_leaves_previous_version(store, drives):
    await store.put_object("bkt", "k", body(b"old" * 1000))
    # Simulate a crash after only 3 drives committed a newer version.
    from titans3.drive.records import VersionRecord

    bid = (await store.buckets.get("bkt")).bucket_id
    vid = store.clock.new_id()
    for i, d in enumerate(drives[:3]):
        d.versions[(bid, b"k")].insert(0, VersionRecord(vid=vid, null=True, size=3, ec=(4, 2, SEG),
                                                        frag_index=i, data="gone", inline=True))
    assert await read_all(store, "bkt", "k") == b"old" * 1000


@run
async def test_delete_then_get_is_no_such_key_and_listing_hides_it(store, drives):
    await store.put_object("bkt", "a", body(b"1"))
    await store.put_object("bkt", "z", body(b"2"))
    await store.delete_object("bkt", "a")
    with pytest.raises(NoSuchKey):
        await store.head_object("bkt", "a")
    page = await store.list_objects("bkt")
    assert [o.key for o in page.objects] == ["z"]


@run
async def test_listing_prefix_delimiter_and_pagination(store, drives):
    keys = ["a/1", "a/2", "b", "c/x/1", "c/y", "d"] + [f"p{i:03d}" for i in range(25)]
    for k in keys:
        await store.put_object("bkt", k, body(b"x"))
    page = await store.list_objects("bkt", delimiter="/")
    assert page.prefixes == ["a/", "c/"]
    assert [o.key for o in page.objects] == ["b", "d"] + [f"p{i:03d}" for i in range(25)]
    seen, start = [], ""
    while True:
        pg = await store.list_objects("bkt", start_after=start, max_keys=7)
        seen += [o.key for o in pg.objects]
        if not pg.is_truncated:
            break
        start = pg.next_start_after
    assert seen == sorted(keys)
    pg = await store.list_objects("bkt", prefix="c/", delimiter="/")
    assert pg.prefixes == ["c/x/"] and [o.key for o in pg.objects] == ["c/y"]
    pg = await store.list_objects("bkt", delimiter="/", max_keys=1)
    assert pg.prefixes == ["a/"] and pg.is_truncated
    pg2 = await store.list_objects("bkt", delimiter="/", max_keys=1, start_after=pg.next_start_after)
    assert [o.key for o in pg2.objects] == ["b"]


@run
async def test_listing_stays_complete_with_a_drive_down(store, drives):
    for i in range(30):
        await store.put_object("bkt", f"k{i:02d}", body(b"x"))
    drives[2].offline = True
    page = await store.list_objects("bkt")
    assert len(page.objects) == 30


@run
async def test_bucket_lifecycle(store, drives):
    with pytest.raises(BucketAlreadyOwnedByYou):
        await store.create_bucket("bkt")
    await store.put_object("bkt", "k", body(b"x"))
    with pytest.raises(BucketNotEmpty):
        await store.delete_bucket("bkt")
    await store.delete_object("bkt", "k")
    await store.delete_bucket("bkt")
    with pytest.raises(NoSuchBucket):
        await store.head_bucket("bkt")
    await store.create_bucket("bkt")
    assert (await store.list_objects("bkt")).objects == []


@run
async def test_multipart_upload_complete_and_read(store, drives):
    from titans3.objects import multipart

    multipart.MIN_PART_SIZE = SEG  # keep the test small
    parts = [os.urandom(SEG + 10), os.urandom(SEG * 2), os.urandom(5)]
    uid = await store.create_multipart("bkt", "mp", meta={"content-type": "x/y"})
    etags = []
    for n, p in enumerate(parts, 1):
        info = await store.upload_part("bkt", "mp", uid, n, body(p))
        etags.append((n, info.etag))
    assert [p.number for p in await store.list_parts("bkt", "mp", uid)] == [1, 2, 3]
    with pytest.raises(InvalidPartOrder):
        await store.complete_multipart("bkt", "mp", uid, [etags[1], etags[0]])
    with pytest.raises(InvalidPart):
        await store.complete_multipart("bkt", "mp", uid, [(1, "0" * 32)])
    res = await store.complete_multipart("bkt", "mp", uid, etags)
    whole = b"".join(parts)
    md5s = b"".join(hashlib.md5(p).digest() for p in parts)
    assert res.etag == hashlib.md5(md5s).hexdigest() + "-3"
    assert await read_all(store, "bkt", "mp") == whole
    assert await read_all(store, "bkt", "mp", byte_range=(SEG, SEG * 3 + 5)) == whole[SEG : SEG * 3 + 6]
    with pytest.raises(NoSuchUpload):
        await store.list_parts("bkt", "mp", uid)
    assert (await store.head_object("bkt", "mp")).meta["content-type"] == "x/y"


@run
async def test_multipart_complete_with_meta_gives_the_version_that_metadata(store, drives):
    from titans3.objects import multipart

    multipart.MIN_PART_SIZE = SEG
    uid = await store.create_multipart("bkt", "mp", meta={"mtime": "1", "mode": "33188"})
    a = await store.upload_part("bkt", "mp", uid, 1, body(b"x" * SEG))
    b = await store.upload_part("bkt", "mp", uid, 2, body(b"y" * 10))
    await store.complete_multipart("bkt", "mp", uid, [(1, a.etag), (2, b.etag)],
                                   meta={"mtime": "2", "mode": "33152"})
    assert (await store.head_object("bkt", "mp")).meta == {"mtime": "2", "mode": "33152"}
    assert await read_all(store, "bkt", "mp") == b"x" * SEG + b"y" * 10


@run
async def test_multipart_small_middle_part_is_rejected(store, drives):
    from titans3.objects import multipart

    multipart.MIN_PART_SIZE = SEG
    uid = await store.create_multipart("bkt", "mp")
    a = await store.upload_part("bkt", "mp", uid, 1, body(b"x" * 10))
    b = await store.upload_part("bkt", "mp", uid, 2, body(b"y" * 10))
    with pytest.raises(EntityTooSmall):
        await store.complete_multipart("bkt", "mp", uid, [(1, a.etag), (2, b.etag)])
    await store.abort_multipart("bkt", "mp", uid)
    assert all(not d.data for d in drives)


@run
async def test_versioned_bucket_keeps_versions_and_delete_markers(store, drives):
    await store.buckets.update("bkt", versioning="Enabled")
    v1 = await store.put_object("bkt", "k", body(b"one"))
    v2 = await store.put_object("bkt", "k", body(b"two"))
    assert v1.version_id != v2.version_id != "null"
    assert await read_all(store, "bkt", "k", version_id=v1.version_id) == b"one"
    d = await store.delete_object("bkt", "k")
    assert d.delete_marker
    with pytest.raises(NoSuchKey):
        await store.head_object("bkt", "k")
    await store.delete_object("bkt", "k", version_id=d.version_id)
    assert await read_all(store, "bkt", "k") == b"two"


@run
async def test_concurrent_writers_to_one_key_never_mix(store, drives):
    blobs = [bytes([i]) * (SEG * 2 + i) for i in range(8)]

    async def put(b):
        await store.put_object("bkt", "k", body(b, piece=4096))

    async with trio.open_nursery() as n:
        for b in blobs:
            n.start_soon(put, b)
    got = await read_all(store, "bkt", "k")
    assert got in blobs


@run
async def test_deleting_every_key_under_a_prefix_removes_the_prefix(store, drives):
    await store.put_object("bkt", "dir/a", body(b"1"))
    await store.delete_object("bkt", "dir/a")
    page = await store.list_objects("bkt", delimiter="/")
    assert page.prefixes == [] and page.objects == []
    assert all(not d.versions for d in drives)


@run
async def test_blank_replacement_drives_do_not_hide_acknowledged_objects(store, drives):
    data = os.urandom(SEG * 3)
    await store.put_object("bkt", "k", body(data))
    await store.put_object("bkt", "small", body(b"tiny"))
    # Two drives wiped and replaced by blank ones while the host was down.
    for i in (1, 4):
        fresh = MemDrive(drives[i].drive_id)
        store.drives[i] = drives[i] = fresh
    store.healing = {1, 4}
    assert await read_all(store, "bkt", "k") == data
    assert await read_all(store, "bkt", "small") == b"tiny"
    assert [o.key for o in (await store.list_objects("bkt")).objects] == ["k", "small"]


@run
async def test_abort_after_a_complete_cut_short_keeps_the_objects_data(store, drives):
    """Found by the crash torture: SIGKILL between Complete's version commit and the
    removal of its part records left the upload listed; an Abort (the client's, or
    GC's stale-upload sweep) then freed part data the committed object reads."""
    from titans3.objects import multipart

    multipart.MIN_PART_SIZE = SEG  # keep the test small (as the test above)
    parts = [os.urandom(SEG + 10), os.urandom(SEG * 2)]
    uid = await store.create_multipart("bkt", "cut", meta={})
    etags = [(n, (await store.upload_part("bkt", "cut", uid, n, body(p))).etag)
             for n, p in enumerate(parts, 1)]

    class Crash(Exception):
        pass

    real = store.multipart._put_meta_all
    calls = 0

    async def dies_after_one(*args, **kw):
        nonlocal calls
        calls += 1
        if calls > 1:
            raise Crash  # the daemon is gone: part 2's record and the upload stay
        return await real(*args, **kw)

    store.multipart._put_meta_all = dies_after_one
    with pytest.raises(Crash):
        await store.complete_multipart("bkt", "cut", uid, etags)
    store.multipart._put_meta_all = real
    assert await read_all(store, "bkt", "cut") == b"".join(parts)
    await store.abort_multipart("bkt", "cut", uid)
    assert await read_all(store, "bkt", "cut") == b"".join(parts)


def test_the_bucket_table_survives_every_disk_being_replaced_one_by_one():
    """Found by the crash torture: refills copy objects, not the bucket table, so after
    every disk of a host had been swapped for a blank one, a restart found no bucket."""

    async def main():
        store, drives = make_store()
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            await store.create_bucket("kept")
            for i in range(len(drives)):
                drives[i] = MemDrive(f"new{i}")
                store.replace_drive(i, drives[i])
                assert (await store.buckets.get("kept")).name == "kept"  # reads repair the table
            nursery.cancel_scope.cancel()
        ring = build_ring([Member(f"d{i}", "h") for i in range(len(drives))], 6, partition_power=4)
        restarted = ObjectStore(drives, ring, ECScheme(4, 2, SEG))  # nothing cached
        assert (await restarted.buckets.get("kept")).name == "kept"

    trio.run(main)
