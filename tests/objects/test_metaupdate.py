"""replace_metadata: new user metadata over the same fragments
(titans3/objects/metaupdate.py, Renamer.reissue), with its crash states."""

from __future__ import annotations

import os

import pytest

from titans3.core.errors import NoSuchKey, PreconditionFailed
from titans3.drive.records import HIDDEN, MOVING
from titans3.objects.maintenance import Maintenance

from .test_rename import Crash, data_ids, records
from .test_store import SEG, body, read_all, run


@run
async def test_replacing_metadata_moves_no_data_and_keeps_size_etag_and_tags(store, drives):
    data = os.urandom(5 * SEG + 7)
    put = await store.put_object("bkt", "f", body(data), meta={"x-amz-meta-mode": "33188"},
                                 tags={"t": "1"})
    stored = data_ids(drives)
    res = await store.replace_metadata("bkt", "f", {"x-amz-meta-mode": "33261"})
    assert data_ids(drives) == stored  # no byte written, none freed
    assert store.meta_updates.reissued == 1 and store.meta_updates.copied == 0
    info = await store.head_object("bkt", "f")
    assert info.meta == {"x-amz-meta-mode": "33261"}
    assert (info.size, info.etag, info.tags) == (len(data), put.etag, {"t": "1"})
    assert res.put is not None and res.put.etag == put.etag and res.source.meta == {
        "x-amz-meta-mode": "33188"}
    assert info.mtime_ns >= res.source.mtime_ns
    assert await read_all(store, "bkt", "f") == data
    assert await read_all(store, "bkt", "f", byte_range=(SEG - 1, 2 * SEG)) == data[SEG - 1:2 * SEG + 1]
    assert [o.key for o in (await store.list_objects("bkt")).objects] == ["f"]
    assert len((await store.list_object_versions("bkt")).versions) == 1


@run
async def test_repeated_updates_keep_one_anchor_which_gc_frees_after_an_overwrite(store, drives):
    data = os.urandom(3 * SEG)
    await store.put_object("bkt", "f", body(data))
    stored = data_ids(drives)
    for mode in ("1", "2", "3"):
        await store.replace_metadata("bkt", "f", {"x-amz-meta-mode": mode})
    assert (await store.head_object("bkt", "f")).meta == {"x-amz-meta-mode": "3"}
    assert await read_all(store, "bkt", "f") == data
    # one hidden anchor and one reference per drive, not a chain
    assert sorted(r.extra.get(HIDDEN, False) for r in records(drives, b"f")) == [False] * 6 + [True] * 6
    new = os.urandom(SEG)
    await store.put_object("bkt", "f", body(new))
    # As after a rename: GC frees an anchor whose references are gone.
    brec = await store.buckets.get("bkt")
    store.renamer.window = 0
    await Maintenance(store).collect_key(brec.bucket_id, b"f", window=0, now_ns=0)
    assert not (data_ids(drives) & stored)
    assert await read_all(store, "bkt", "f") == new
    assert len(records(drives, b"f")) == 6


@run
async def test_a_renamed_object_takes_new_metadata_and_still_reads(store, drives):
    data = os.urandom(2 * SEG + 5)
    await store.put_object("bkt", "a", body(data))
    await store.rename_object("bkt", "a", "b")
    await store.replace_metadata("bkt", "b", {"x-amz-meta-uid": "7"})
    assert (await store.head_object("bkt", "b")).meta == {"x-amz-meta-uid": "7"}
    assert await read_all(store, "bkt", "b") == data
    await store.delete_object("bkt", "b")
    assert records(drives, b"a") == [] and records(drives, b"b") == []


@run
async def test_a_missing_key_and_a_failed_source_check_change_nothing(store, drives):
    with pytest.raises(NoSuchKey):
        await store.replace_metadata("bkt", "nope", {})
    await store.put_object("bkt", "f", body(b"abc"), meta={"x-amz-meta-a": "1"})

    def check(info):
        raise PreconditionFailed()

    with pytest.raises(PreconditionFailed):
        await store.replace_metadata("bkt", "f", {"x-amz-meta-a": "2"}, check_source=check)
    assert (await store.head_object("bkt", "f")).meta == {"x-amz-meta-a": "1"}
    assert not any(MOVING in r.extra for r in records(drives, b"f"))


@run
async def test_in_a_versioned_bucket_the_old_version_stays_without_a_delete_marker(store, drives):
    await store.put_bucket_versioning("bkt", "Enabled")
    data = os.urandom(SEG + 3)
    v1 = (await store.put_object("bkt", "f", body(data), meta={"x-amz-meta-a": "1"})).version_id
    res = await store.replace_metadata("bkt", "f", {"x-amz-meta-a": "2"})
    assert res.put is not None and res.put.version_id != v1
    versions = (await store.list_object_versions("bkt")).versions
    assert [(v.version_id, v.delete_marker) for v in versions] == [(res.put.version_id, False),
                                                                   (v1, False)]
    assert (await store.head_object("bkt", "f", version_id=v1)).meta == {"x-amz-meta-a": "1"}
    assert (await store.head_object("bkt", "f")).meta == {"x-amz-meta-a": "2"}
    await store.delete_object("bkt", "f", version_id=v1)  # the old version goes, its bytes stay
    assert await read_all(store, "bkt", "f") == data


@run
async def test_a_crash_before_the_new_version_landed_leaves_the_old_one(store, drives):
    data = os.urandom(SEG)
    await store.put_object("bkt", "f", body(data), meta={"x-amz-meta-a": "1"})
    renamer = store.renamer

    async def crash(*a, **kw):
        raise Crash()

    renamer._commit_reference = crash
    with pytest.raises(Crash):
        await store.replace_metadata("bkt", "f", {"x-amz-meta-a": "2"})
    del renamer._commit_reference
    assert (await store.head_object("bkt", "f")).meta == {"x-amz-meta-a": "1"}
    assert await read_all(store, "bkt", "f") == data
    brec = await store.buckets.get("bkt")
    await Maintenance(store).collect_key(brec.bucket_id, b"f", window=0, now_ns=0)
    renamer.window = 0
    await store.replace_metadata("bkt", "f", {"x-amz-meta-a": "3"})  # settles the stale mark first
    assert (await store.head_object("bkt", "f")).meta == {"x-amz-meta-a": "3"}
    assert await read_all(store, "bkt", "f") == data


@run
async def test_a_crash_after_the_new_version_landed_shows_the_new_metadata(store, drives):
    data = os.urandom(SEG + 1)
    await store.put_object("bkt", "f", body(data), meta={"x-amz-meta-a": "1"})
    renamer = store.renamer

    async def crash(*a, **kw):
        raise Crash()

    renamer._flip = crash
    with pytest.raises(Crash):
        await store.replace_metadata("bkt", "f", {"x-amz-meta-a": "2"})
    del renamer._flip
    assert (await store.head_object("bkt", "f")).meta == {"x-amz-meta-a": "2"}
    assert await read_all(store, "bkt", "f") == data
    assert [o.key for o in (await store.list_objects("bkt")).objects] == ["f"]
    brec = await store.buckets.get("bkt")
    vid = next(r.vid for r in records(drives, b"f") if MOVING in r.extra)
    assert await renamer.settle(brec, b"f", vid)
    assert await read_all(store, "bkt", "f") == data
    assert (await store.head_object("bkt", "f")).meta == {"x-amz-meta-a": "2"}


@run
async def test_a_version_with_fields_a_reference_would_drop_is_copied_instead(store, drives):
    await store.put_object("bkt", "f", body(b"data"))
    for d in drives:  # e.g. a newer daemon's field: a reference would not carry it
        for recs in d.versions.values():
            for r in recs:
                r.extra["zz"] = 1
    res = await store.replace_metadata("bkt", "f", {"x-amz-meta-a": "1"})
    assert store.meta_updates.copied == 1 and store.meta_updates.reissued == 0
    assert res.put is not None
    assert (await store.head_object("bkt", "f")).meta == {"x-amz-meta-a": "1"}
    assert await read_all(store, "bkt", "f") == b"data"
