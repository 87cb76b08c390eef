"""The object API's block-front operations: system buckets, put_extent /
get_extent, new_version_id (titans3/objects/extents.py)."""

from __future__ import annotations

import pytest

from titans3.core.errors import BucketAlreadyOwnedByYou, InvalidBucketName, QuorumError

from .test_store import run


@run
async def test_a_system_bucket_is_not_listed_and_other_names_are_refused(store, drives):
    await store.create_system_bucket("_titans3-volumes")
    assert "_titans3-volumes" not in [b.name for b in await store.list_buckets()]
    assert (await store.head_bucket("_titans3-volumes")).name == "_titans3-volumes"
    with pytest.raises(BucketAlreadyOwnedByYou):
        await store.create_system_bucket("_titans3-volumes")
    with pytest.raises(InvalidBucketName):
        await store.create_system_bucket("ordinary")
    with pytest.raises(InvalidBucketName):
        await store.create_bucket("_titans3-volumes")  # S3's own rules still refuse the name


@run
async def test_extents_round_trip_by_range_and_version_without_an_md5(store, drives):
    await store.create_system_bucket("_titans3-v")
    await store.put_bucket_versioning("_titans3-v", "Enabled")
    data = bytes(range(256)) * 1024
    v1 = await store.put_extent("_titans3-v", "e/0", memoryview(data), meta={"kind": "x"})
    v2 = await store.put_extent("_titans3-v", "e/0", b"\1" * 1000)
    assert v1 != v2 and v1 < v2
    assert await store.get_extent("_titans3-v", "e/0") == b"\1" * 1000
    assert await store.get_extent("_titans3-v", "e/0", version_id=v1) == data
    assert await store.get_extent("_titans3-v", "e/0", version_id=v1, first=300, last=599) == data[300:600]
    assert await store.get_extent("_titans3-v", "e/0", first=5000) == b""  # past the end
    head = await store.head_object("_titans3-v", "e/0", version_id=v1)
    assert head.etag.strip('"') == "" and head.meta.get("kind") == "x"


@run
async def test_a_missing_extent_or_a_delete_marker_is_none(store, drives):
    await store.create_system_bucket("_titans3-v")
    await store.put_bucket_versioning("_titans3-v", "Enabled")
    assert await store.get_extent("_titans3-v", "e/1") is None
    vid = await store.put_extent("_titans3-v", "e/1", b"x" * 10)
    marker = (await store.delete_object("_titans3-v", "e/1")).version_id
    assert await store.get_extent("_titans3-v", "e/1") is None
    assert await store.get_extent("_titans3-v", "e/1", version_id=marker) is None
    assert await store.get_extent("_titans3-v", "e/1", version_id=vid) == b"x" * 10
    assert await store.get_extent("_titans3-v", "e/1", version_id="0" * 32) is None


@run
async def test_new_version_id_cuts_above_every_write(store, drives):
    await store.create_system_bucket("_titans3-v")
    before = await store.put_extent("_titans3-v", "a", b"1")
    cut = store.new_version_id()
    await store.put_bucket_versioning("_titans3-v", "Enabled")
    after = await store.put_extent("_titans3-v", "a", b"2")
    assert before == "null" and cut < after


@run
async def test_get_extent_without_a_read_quorum_raises(store, drives):
    await store.create_system_bucket("_titans3-v")
    await store.put_extent("_titans3-v", "a", b"1" * 100)
    for d in drives[:3]:
        d.offline = True
    with pytest.raises(QuorumError):
        await store.get_extent("_titans3-v", "a")
