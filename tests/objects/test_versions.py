"""Versioning state machine, null-version rules, delete markers and ListObjectVersions
over in-memory drives."""

from __future__ import annotations

import random

import pytest
import trio

from titans3.core.errors import (
    BucketNotEmpty,
    InvalidArgument,
    MethodNotAllowed,
    NoSuchBucket,
    NoSuchKey,
    NoSuchVersion,
)
from titans3.objects.versions import VersionsPage

from .test_store import body, read_all, run


async def put(store, key: str, data: bytes, bucket: str = "bkt"):
    return await store.put_object(bucket, key, body(data), size=len(data))


async def all_versions(store, bucket: str = "bkt", **kw) -> list[tuple[str, str, bool, bool]]:
    """Every (key, version id, is_latest, delete marker), paging with max_keys."""
    out: list[tuple[str, str, bool, bool]] = []
    key_marker, vid_marker = "", ""
    for _ in range(1000):
        page: VersionsPage = await store.list_object_versions(
            bucket, key_marker=key_marker, version_id_marker=vid_marker, **kw
        )
        out += [(v.key, v.version_id, v.is_latest, v.delete_marker) for v in page.versions]
        if not page.is_truncated:
            return out
        key_marker, vid_marker = page.next_key_marker or "", page.next_version_id_marker or ""
    raise AssertionError("listing did not end")


# ------------------------------------------------------------------ state
@run
async def test_versioning_state_starts_empty_and_never_returns_to_it(store, drives):
    assert await store.get_bucket_versioning("bkt") == ""
    await store.put_bucket_versioning("bkt", "Enabled")
    assert await store.get_bucket_versioning("bkt") == "Enabled"
    await store.put_bucket_versioning("bkt", "Suspended")
    assert (await store.head_bucket("bkt")).versioning == "Suspended"
    with pytest.raises(InvalidArgument):
        await store.put_bucket_versioning("bkt", "")
    with pytest.raises(NoSuchBucket):
        await store.put_bucket_versioning("nope", "Enabled")


@run
async def test_enabled_bucket_gives_every_write_its_own_version(store, drives):
    await store.put_bucket_versioning("bkt", "Enabled")
    ids = [(await put(store, "k", b"v%d" % i)).version_id for i in range(3)]
    assert len(set(ids)) == 3 and "null" not in ids
    for i, vid in enumerate(ids):
        assert await read_all(store, "bkt", "k", version_id=vid) == b"v%d" % i
    assert await read_all(store, "bkt", "k") == b"v2"
    listed = await all_versions(store)
    assert listed == [("k", ids[2], True, False), ("k", ids[1], False, False),
                      ("k", ids[0], False, False)]


@run
async def test_suspended_put_replaces_only_the_null_version(store, drives):
    pre = await put(store, "k", b"before versioning")  # a null version
    assert pre.version_id == "null"
    await store.put_bucket_versioning("bkt", "Enabled")
    v1 = await put(store, "k", b"numbered")
    await store.put_bucket_versioning("bkt", "Suspended")
    s1 = await put(store, "k", b"suspended one")
    s2 = await put(store, "k", b"suspended two")
    assert s1.version_id == s2.version_id == "null"
    assert await read_all(store, "bkt", "k") == b"suspended two"
    assert await read_all(store, "bkt", "k", version_id="null") == b"suspended two"
    assert await read_all(store, "bkt", "k", version_id=v1.version_id) == b"numbered"
    listed = await all_versions(store)
    assert listed == [("k", "null", True, False), ("k", v1.version_id, False, False)]


@run
async def test_suspended_delete_makes_a_null_marker_that_replaces_the_null_version(store, drives):
    await store.put_bucket_versioning("bkt", "Enabled")
    v1 = await put(store, "k", b"numbered")
    await store.put_bucket_versioning("bkt", "Suspended")
    await put(store, "k", b"null data")
    d = await store.delete_object("bkt", "k")
    assert (d.version_id, d.delete_marker) == ("null", True)
    with pytest.raises(NoSuchKey) as e:
        await store.head_object("bkt", "k")
    assert ("x-amz-delete-marker", "true") in e.value.headers
    assert ("x-amz-version-id", "null") in e.value.headers
    assert await all_versions(store) == [("k", "null", True, True),
                                         ("k", v1.version_id, False, False)]
    # Removing the null marker uncovers the numbered version; the null data is gone.
    await store.delete_object("bkt", "k", version_id="null")
    assert await read_all(store, "bkt", "k") == b"numbered"
    with pytest.raises(NoSuchVersion):
        await store.head_object("bkt", "k", version_id="null")


@run
async def test_delete_marker_reads_are_404_or_405_with_marker_headers(store, drives):
    await store.put_bucket_versioning("bkt", "Enabled")
    await put(store, "k", b"data")
    marker = await store.delete_object("bkt", "k")
    assert marker.delete_marker
    with pytest.raises(NoSuchKey) as latest:
        await store.get_object("bkt", "k")
    assert dict(latest.value.headers) == {"x-amz-delete-marker": "true",
                                          "x-amz-version-id": marker.version_id}
    for op in (store.get_object, store.head_object):
        with pytest.raises(MethodNotAllowed) as named:
            await op("bkt", "k", version_id=marker.version_id)
        headers = dict(named.value.headers)
        assert headers["x-amz-delete-marker"] == "true"
        assert headers["x-amz-version-id"] == marker.version_id
        assert headers["Allow"] == "DELETE" and headers["Last-Modified"].endswith("GMT")
        assert named.value.extra["ResourceType"] == "DeleteMarker"


@run
async def test_deleting_the_marker_by_version_restores_the_object(store, drives):
    await store.put_bucket_versioning("bkt", "Enabled")
    await put(store, "k", b"data")
    marker = await store.delete_object("bkt", "k")
    removed = await store.delete_object("bkt", "k", version_id=marker.version_id)
    assert (removed.version_id, removed.delete_marker) == (marker.version_id, True)
    assert await read_all(store, "bkt", "k") == b"data"


@run
async def test_enabled_delete_of_a_missing_key_still_adds_a_marker(store, drives):
    await store.put_bucket_versioning("bkt", "Enabled")
    d = await store.delete_object("bkt", "ghost")
    assert d.delete_marker and d.version_id != "null"
    assert await all_versions(store) == [("ghost", d.version_id, True, True)]
    assert (await store.list_objects("bkt")).objects == []


@run
async def test_bad_version_id_is_invalid_argument_and_unknown_is_no_such_version(store, drives):
    await put(store, "k", b"x")
    with pytest.raises(InvalidArgument):
        await store.get_object("bkt", "k", version_id="not-a-version")
    with pytest.raises(NoSuchVersion):
        await store.head_object("bkt", "k", version_id="0" * 32)


# ---------------------------------------------------------------- listing
@run
async def test_version_listing_pages_through_versions_of_one_key(store, drives):
    await store.put_bucket_versioning("bkt", "Enabled")
    ids = [(await put(store, "k", b"%d" % i)).version_id for i in range(7)]
    await put(store, "l", b"other")
    page = await store.list_object_versions("bkt", max_keys=3)
    assert page.is_truncated and page.next_key_marker == "k"
    assert page.next_version_id_marker == ids[4]
    assert [v.version_id for v in page.versions] == ids[:3:-1]
    assert [v.is_latest for v in page.versions] == [True, False, False]
    full = await all_versions(store, max_keys=2)
    assert [v for k, v, _, _ in full if k == "k"] == ids[::-1]
    assert [(k, latest) for k, _, latest, _ in full if k == "l"] == [("l", True)]


@run
async def test_version_listing_key_marker_alone_skips_all_versions_of_that_key(store, drives):
    await store.put_bucket_versioning("bkt", "Enabled")
    for key in ("a", "b", "c"):
        await put(store, key, b"1")
        await put(store, key, b"2")
    page = await store.list_object_versions("bkt", key_marker="b")
    assert {v.key for v in page.versions} == {"c"} and len(page.versions) == 2


@run
async def test_version_listing_resumes_after_a_vanished_marker_version(store, drives):
    await store.put_bucket_versioning("bkt", "Enabled")
    ids = [(await put(store, "k", b"%d" % i)).version_id for i in range(4)]
    await store.delete_object("bkt", "k", version_id=ids[2])
    page = await store.list_object_versions("bkt", key_marker="k", version_id_marker=ids[2])
    assert [v.version_id for v in page.versions] == [ids[1], ids[0]]


@run
async def test_version_listing_with_prefix_and_delimiter(store, drives):
    await store.put_bucket_versioning("bkt", "Enabled")
    for key in ("dir/a", "dir/b", "dir/sub/x", "top", "zz/y"):
        await put(store, key, b"1")
        await put(store, key, b"2")
    page = await store.list_object_versions("bkt", delimiter="/")
    assert page.prefixes == ["dir/", "zz/"]
    assert [v.key for v in page.versions] == ["top", "top"]
    page = await store.list_object_versions("bkt", prefix="dir/", delimiter="/")
    assert page.prefixes == ["dir/sub/"]
    assert [v.key for v in page.versions] == ["dir/a", "dir/a", "dir/b", "dir/b"]
    # Paging one item at a time: prefixes count one each and resume after themselves.
    seen, marker, vmarker = [], "", ""
    while True:
        p = await store.list_object_versions("bkt", delimiter="/", max_keys=1,
                                             key_marker=marker, version_id_marker=vmarker)
        seen += p.prefixes + [v.key for v in p.versions]
        if not p.is_truncated:
            break
        marker, vmarker = p.next_key_marker, p.next_version_id_marker or ""
    assert seen == ["dir/", "top", "top", "zz/"]


@run
async def test_version_id_marker_without_key_marker_is_invalid(store, drives):
    with pytest.raises(InvalidArgument):
        await store.list_object_versions("bkt", version_id_marker="null")
    with pytest.raises(InvalidArgument):
        await store.list_object_versions("bkt", key_marker="k", version_id_marker="bogus")


@run
async def test_version_listing_hides_a_version_held_by_too_few_drives(store, drives):
    await store.put_bucket_versioning("bkt", "Enabled")
    ok = await put(store, "k", b"acknowledged")
    # A remnant of a failed write: the record reached 2 drives only.
    brec = await store.buckets.get("bkt")
    positions = store.placement(brec.bucket_id, b"k")
    ghost = (await drives[positions[0]].read_versions(brec.bucket_id, b"k"))[0]
    from dataclasses import replace

    ghost = replace(ghost, vid=store.clock.new_id())
    for p in positions[:2]:
        await drives[p].commit_version(brec.bucket_id, b"k", ghost)
    assert await all_versions(store) == [("k", ok.version_id, True, False)]


# ------------------------------------------------------------ concurrency
@run
async def test_concurrent_writers_in_a_versioned_bucket_all_become_versions(store, drives):
    await store.put_bucket_versioning("bkt", "Enabled")
    payloads = [bytes([i]) * (1000 + 9000 * i) for i in range(8)]
    results: dict[int, str] = {}

    async def writer(i: int) -> None:
        await trio.sleep(random.random() / 100)
        results[i] = (await put(store, "hot", payloads[i])).version_id

    async with trio.open_nursery() as nursery:
        for i in range(len(payloads)):
            nursery.start_soon(writer, i)
    listed = await all_versions(store, max_keys=3)
    assert sorted(v for _, v, _, _ in listed) == sorted(results.values())
    assert [latest for _, _, latest, _ in listed] == [True] + [False] * 7
    newest = max(results, key=lambda i: results[i])
    assert await read_all(store, "bkt", "hot") == payloads[newest]
    for i, vid in results.items():
        assert await read_all(store, "bkt", "hot", version_id=vid) == payloads[i]


@run
async def test_concurrent_writers_and_deleters_leave_a_consistent_history(store, drives):
    await store.put_bucket_versioning("bkt", "Enabled")
    written: dict[str, bytes] = {}
    markers: set[str] = set()

    async def writer(i: int) -> None:
        data = b"w%d" % i * 500
        written[(await put(store, "k", data)).version_id] = data

    async def deleter() -> None:
        markers.add((await store.delete_object("bkt", "k")).version_id)

    async with trio.open_nursery() as nursery:
        for i in range(6):
            nursery.start_soon(writer, i)
            if i % 2:
                nursery.start_soon(deleter)
    listed = await all_versions(store)
    assert {v for _, v, _, dm in listed if not dm} == set(written)
    assert {v for _, v, _, dm in listed if dm} == markers
    newest = max(set(written) | markers)
    if newest in markers:
        with pytest.raises(NoSuchKey):
            await store.get_object("bkt", "k")
    else:
        assert await read_all(store, "bkt", "k") == written[newest]


@run
async def test_listings_show_a_hinted_version_that_hides_an_older_one_before_replay(store, drives):
    # Two drives down: the new version is acknowledged through hinted handoff and is
    # on fewer than W primaries' pages until the hints are replayed.  Both listings
    # must still show it as the current one, not the older version that every page has.
    await store.put_bucket_versioning("bkt", "Enabled")
    old = await store.put_object("bkt", "k", body(b"old" * 3000))
    for d in drives[:2]:
        d.offline = True
    new = await store.put_object("bkt", "k", body(b"new" * 5000))
    hinted_only = await store.put_object("bkt", "j", body(b"j" * 10))
    for d in drives[:2]:
        d.offline = False
    page = await store.list_object_versions("bkt")
    assert [(v.key, v.version_id, v.is_latest) for v in page.versions] == [
        ("j", hinted_only.version_id, True), ("k", new.version_id, True), ("k", old.version_id, False)]
    listed = await store.list_objects("bkt")
    assert [(o.key, o.size) for o in listed.objects] == [("j", 10), ("k", 15000)]


@run
async def test_a_bucket_holding_only_a_hinted_object_is_not_empty(store, drives):
    for d in drives[:2]:
        d.offline = True
    await store.put_object("bkt", "only", body(b"x" * 100))
    for d in drives[:2]:
        d.offline = False
    with pytest.raises(BucketNotEmpty):
        await store.delete_bucket("bkt")
