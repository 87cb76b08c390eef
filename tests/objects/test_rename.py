"""rename_object: a new name for an object's bytes without moving them
(titans3/objects/rename.py), including every crash state of its three steps."""

from __future__ import annotations

import os

import pytest

from titans3.core.errors import NoSuchKey, PreconditionFailed
from titans3.drive.records import HIDDEN, MOVING, REF, REFS
from titans3.objects import WriteCondition
from titans3.objects.maintenance import Maintenance
from titans3.objects.repair import ObjectRepair

from .test_store import SEG, body, read_all, run


class Crash(Exception):
    """The daemon dies here: nothing after this point of the rename runs."""


def data_ids(drives) -> set[tuple[str, str]]:
    return {(d.drive_id, i) for d in drives for i in d.data}


def records(drives, key: bytes):
    return [r for d in drives for (b, k), recs in d.versions.items() if k == key for r in recs]


async def names(store) -> list[str]:
    return [o.key for o in (await store.list_objects("bkt")).objects]


@run
async def test_rename_moves_no_data_and_the_object_reads_back_under_the_new_name(store, drives):
    data = os.urandom(5 * SEG + 123)
    put = await store.put_object("bkt", "dir/a", body(data), meta={"content-type": "x/y"})
    before_info = await store.head_object("bkt", "dir/a")
    stored = data_ids(drives)
    res = await store.rename_object("bkt", "dir/a", "dir/b")
    assert data_ids(drives) == stored  # no byte copied, none freed
    assert res.source.key == "dir/a" and res.info.key == "dir/b"
    assert await read_all(store, "bkt", "dir/b") == data
    assert await read_all(store, "bkt", "dir/b", byte_range=(SEG - 3, 2 * SEG + 5)) == \
        data[SEG - 3 : 2 * SEG + 6]
    info = await store.head_object("bkt", "dir/b")
    assert (info.size, info.etag, info.meta, info.mtime_ns) == \
        (len(data), put.etag, {"content-type": "x/y"}, before_info.mtime_ns)
    with pytest.raises(NoSuchKey):
        await store.head_object("bkt", "dir/a")
    with pytest.raises(NoSuchKey):
        await store.get_object("bkt", "dir/a")
    assert await names(store) == ["dir/b"]
    assert (await store.list_object_versions("bkt")).versions[0].key == "dir/b"
    assert len((await store.list_object_versions("bkt")).versions) == 1


@run
async def test_rename_replaces_the_destination_and_frees_its_data(store, drives):
    await store.put_object("bkt", "old", body(os.urandom(3 * SEG)))
    replaced = data_ids(drives)
    data = os.urandom(2 * SEG)
    await store.put_object("bkt", "new", body(data))
    await store.rename_object("bkt", "new", "old")
    assert not (data_ids(drives) & replaced)
    assert await read_all(store, "bkt", "old") == data
    assert await names(store) == ["old"]


@run
async def test_noreplace_and_source_conditions_refuse_without_changing_anything(store, drives):
    await store.put_object("bkt", "a", body(b"aaa"))
    await store.put_object("bkt", "b", body(b"bbb"))
    with pytest.raises(PreconditionFailed):
        await store.rename_object("bkt", "a", "b", condition=WriteCondition(if_none_match=True))
    with pytest.raises(PreconditionFailed):
        await store.rename_object("bkt", "a", "c", source_condition=WriteCondition(if_match=("0" * 32,)))
    assert await read_all(store, "bkt", "a") == b"aaa"
    assert await read_all(store, "bkt", "b") == b"bbb"
    assert not any(MOVING in r.extra or REFS in r.extra for r in records(drives, b"a"))
    with pytest.raises(NoSuchKey):
        await store.rename_object("bkt", "missing", "x")
    same = await store.rename_object("bkt", "a", "a")
    assert same.info.key == "a" and await read_all(store, "bkt", "a") == b"aaa"


@run
async def test_writing_and_deleting_the_old_name_leaves_the_renamed_object(store, drives):
    data = os.urandom(SEG + 5)
    await store.put_object("bkt", "a", body(data))
    await store.rename_object("bkt", "a", "b")
    await store.put_object("bkt", "a", body(b"new a"))
    await store.put_object("bkt", "a", body(b"newer a"))  # purges older nulls: not the anchor
    assert await read_all(store, "bkt", "a") == b"newer a"
    await store.delete_object("bkt", "a")
    assert await read_all(store, "bkt", "b") == data
    assert any(r.extra.get(HIDDEN) for r in records(drives, b"a"))


@run
async def test_deleting_the_renamed_object_frees_the_anchor_and_its_data(store, drives):
    before = data_ids(drives)
    await store.put_object("bkt", "a", body(os.urandom(3 * SEG)))
    await store.rename_object("bkt", "a", "b")
    await store.delete_object("bkt", "b")
    assert data_ids(drives) == before
    assert records(drives, b"a") == [] and records(drives, b"b") == []


@run
async def test_overwriting_the_renamed_object_frees_the_anchor(store, drives):
    before = data_ids(drives)
    await store.put_object("bkt", "a", body(os.urandom(3 * SEG)))
    await store.rename_object("bkt", "a", "b")
    await store.put_object("bkt", "c", body(b"c"))
    await store.rename_object("bkt", "c", "b")  # replaces b: a's anchor loses its only referrer
    assert records(drives, b"a") == []
    assert await read_all(store, "bkt", "b") == b"c"
    left = {i for _, i in data_ids(drives) - before}
    assert len(left) == 1  # c's inline fragments; a's are freed


@run
async def test_a_chain_of_renames_references_the_original_data(store, drives):
    data = os.urandom(2 * SEG + 1)
    await store.put_object("bkt", "a", body(data))
    anchor_vid = records(drives, b"a")[0].vid
    stored = data_ids(drives)
    await store.rename_object("bkt", "a", "b")
    await store.rename_object("bkt", "b", "c")
    await store.rename_object("bkt", "c", "d")
    assert data_ids(drives) == stored
    assert await names(store) == ["d"]
    assert await read_all(store, "bkt", "d") == data
    assert {bytes(r.extra[REF][0]) for r in records(drives, b"d")} == {b"a"}
    assert {r.extra[REF][1] for r in records(drives, b"d")} == {anchor_vid}
    assert records(drives, b"b") == [] and records(drives, b"c") == []
    anchor = records(drives, b"a")
    assert all([bytes(k) for k, _ in r.extra[REFS]] == [b"d"] for r in anchor)
    await store.delete_object("bkt", "d")
    assert records(drives, b"a") == [] and not (data_ids(drives) & stored)


@run
async def test_a_crash_after_the_mark_keeps_the_source_and_is_rolled_back(store, drives):
    data = os.urandom(SEG)
    await store.put_object("bkt", "a", body(data))
    renamer = store.renamer

    async def crash(*a, **kw):
        raise Crash()

    renamer._commit_reference = crash
    with pytest.raises(Crash):
        await store.rename_object("bkt", "a", "b")
    del renamer._commit_reference
    assert await read_all(store, "bkt", "a") == data  # marked, still visible
    assert await names(store) == ["a"]
    assert all(MOVING in r.extra for r in records(drives, b"a"))
    vid = records(drives, b"a")[0].vid
    brec = await store.buckets.get("bkt")
    assert not await renamer.settle(brec, b"a", vid)  # young: maybe still running
    renamer.window = 0
    assert await renamer.settle(brec, b"a", vid)
    assert not any(MOVING in r.extra or REFS in r.extra for r in records(drives, b"a"))
    await store.rename_object("bkt", "a", "b")
    assert await read_all(store, "bkt", "b") == data and await names(store) == ["b"]


@run
async def test_a_crash_after_the_reference_shows_both_names_until_settled(store, drives):
    data = os.urandom(SEG + 9)
    await store.put_object("bkt", "a", body(data))
    renamer = store.renamer

    async def crash(*a, **kw):
        raise Crash()

    renamer._flip = crash
    with pytest.raises(Crash):
        await store.rename_object("bkt", "a", "b")
    del renamer._flip
    assert await names(store) == ["a", "b"]  # never neither
    assert await read_all(store, "bkt", "a") == data
    assert await read_all(store, "bkt", "b") == data
    # The next rename of the source (or a read after the window, or GC) completes it.
    brec = await store.buckets.get("bkt")
    vid = records(drives, b"a")[0].vid
    assert await renamer.settle(brec, b"a", vid)  # the destination landed: complete now
    assert await names(store) == ["b"]
    assert await read_all(store, "bkt", "b") == data


@run
async def test_gc_settles_stale_marks_and_frees_anchors_nobody_references(store, drives):
    svc = Maintenance(store)
    brec = await store.buckets.get("bkt")
    await store.put_object("bkt", "a", body(os.urandom(2 * SEG)))
    stored = data_ids(drives)
    await store.rename_object("bkt", "a", "b")
    # A crash between deleting the reference and updating its anchor:
    for d in drives:
        d.versions.pop((brec.bucket_id, b"b"), None)
    store.renamer.window = 0
    assert await svc.collect_key(brec.bucket_id, b"a", window=0, now_ns=0) >= 1
    assert records(drives, b"a") == [] and not (data_ids(drives) & stored)

    await store.put_object("bkt", "x", body(b"x" * 100))

    async def crash(*a, **kw):
        raise Crash()

    store.renamer._commit_reference = crash
    with pytest.raises(Crash):
        await store.rename_object("bkt", "x", "y")
    del store.renamer._commit_reference
    assert await svc.collect_key(brec.bucket_id, b"x", window=0, now_ns=0) >= 1
    assert not any(MOVING in r.extra for r in records(drives, b"x"))
    assert await read_all(store, "bkt", "x") == b"x" * 100


@run
async def test_renamed_objects_survive_lost_drives_and_their_anchor_is_repaired(store, drives):
    data = os.urandom(3 * SEG + 7)
    await store.put_object("bkt", "a", body(data))
    await store.rename_object("bkt", "a", "b")
    brec = await store.buckets.get("bkt")
    positions = store.placement(brec.bucket_id, b"a")
    wiped = drives[positions[0]]
    wiped.versions.clear()
    wiped.data.clear()
    drives[positions[1]].offline = True
    assert await read_all(store, "bkt", "b") == data
    drives[positions[1]].offline = False
    out = await ObjectRepair(store, grace=0).repair(brec.bucket_id, b"a")
    assert out.records_restored == 1 and out.fragments_rebuilt == 1
    assert any(r.extra.get(HIDDEN) for r in wiped.versions[(brec.bucket_id, b"a")])
    for d in drives:
        if d is not drives[positions[0]]:
            d.offline = True
            break
    assert await read_all(store, "bkt", "b") == data


@run
async def test_a_renamed_multipart_object_keeps_its_parts(store, drives):
    up = await store.create_multipart("bkt", "mp")
    p1 = os.urandom(5 << 20)
    p2 = os.urandom(1000)
    e1 = await store.upload_part("bkt", "mp", up, 1, body(p1, 1 << 20))
    e2 = await store.upload_part("bkt", "mp", up, 2, body(p2))
    await store.complete_multipart("bkt", "mp", up, [(1, e1.etag), (2, e2.etag)])
    await store.rename_object("bkt", "mp", "moved")
    info = await store.head_object("bkt", "moved")
    assert info.parts_count == 2 and info.part_sizes == (len(p1), len(p2))
    assert await read_all(store, "bkt", "moved", part_number=2) == p2
    assert await read_all(store, "bkt", "moved") == p1 + p2


@run
async def test_in_a_versioned_bucket_rename_adds_a_version_and_a_delete_marker(store, drives):
    await store.put_bucket_versioning("bkt", "Enabled")
    data = os.urandom(SEG + 1)
    v1 = (await store.put_object("bkt", "a", body(data))).version_id
    res = await store.rename_object("bkt", "a", "b")
    assert res.source_version_id is not None  # the marker
    with pytest.raises(NoSuchKey):
        await store.head_object("bkt", "a")
    assert await read_all(store, "bkt", "a", version_id=v1) == data  # history kept
    assert await read_all(store, "bkt", "b") == data
    listed = [(v.key, v.delete_marker) for v in (await store.list_object_versions("bkt")).versions]
    assert listed == [("a", True), ("a", False), ("b", False)]
    # Deleting the source's old version keeps the renamed copy readable.
    await store.delete_object("bkt", "a", version_id=v1)
    assert [v.key for v in (await store.list_object_versions("bkt")).versions] == ["a", "b"]
    assert await read_all(store, "bkt", "b") == data
    bv = (await store.head_object("bkt", "b")).version_id
    await store.delete_object("bkt", "b", version_id=bv)
    assert not any(r.extra.get(HIDDEN) for r in records(drives, b"a"))
    assert all(not r.data_ids() for r in records(drives, b"a"))  # only the marker is left


@run
async def test_deleting_a_key_while_it_is_being_renamed_wins_either_way(store, drives):
    renamer = store.renamer
    for settle_to_rollback in (True, False):
        data = os.urandom(SEG)
        await store.put_object("bkt", "a", body(data))
        crash_at = "_commit_reference" if settle_to_rollback else "_flip"

        async def crash(*a, **kw):
            raise Crash()

        setattr(renamer, crash_at, crash)
        with pytest.raises(Crash):
            await store.rename_object("bkt", "a", "b")
        delattr(renamer, crash_at)
        await store.delete_object("bkt", "a")  # while the mark is pending
        with pytest.raises(NoSuchKey):
            await store.head_object("bkt", "a")
        renamer.window = 0
        brec = await store.buckets.get("bkt")
        vid = next(r.vid for r in records(drives, b"a") if MOVING in r.extra)
        assert await renamer.settle(brec, b"a", vid)
        renamer.window = 60.0
        with pytest.raises(NoSuchKey):
            await store.head_object("bkt", "a")
        if settle_to_rollback:
            assert await names(store) == []
        else:
            assert await names(store) == ["b"] and await read_all(store, "bkt", "b") == data
            await store.delete_object("bkt", "b")
        svc = Maintenance(store)
        renamer.window = 0
        await svc.collect_key(brec.bucket_id, b"a", window=0, now_ns=0)
        renamer.window = 60.0
        assert records(drives, b"a") == []  # nothing left behind


@run
async def test_has_objects_sees_through_keys_renamed_away_and_delete_markers(store, drives):
    await store.put_object("bkt", "old/x", body(os.urandom(SEG)))
    await store.put_object("bkt", "old/y/", body(b""))
    assert await store.has_objects("bkt", "old/")
    await store.rename_object("bkt", "old/x", "new/x")
    assert await store.has_objects("bkt", "old/")  # old/y/ is still there
    await store.rename_object("bkt", "old/y/", "new/y/")
    assert not await store.has_objects("bkt", "old/")  # hidden anchors only
    assert await store.has_objects("bkt", "new/") and await store.has_objects("bkt", "new/y/")
    assert not await store.has_objects("bkt", "nothing/")
    await store.put_bucket_versioning("bkt", "Enabled")
    await store.put_object("bkt", "gone/z", body(b"z"))
    await store.delete_object("bkt", "gone/z")  # a delete marker on top
    assert not await store.has_objects("bkt", "gone/")
