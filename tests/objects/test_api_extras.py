"""The object API's operations for the file and block fronts: head_objects,
walk_objects, statfs, statistics (titans3/objects/api.py)."""

from __future__ import annotations

import pytest

from titans3.core.errors import NoSuchBucket, QuorumError

from .test_store import body, run


@run
async def test_head_objects_answers_every_key_in_order_with_none_for_missing(store, drives):
    for k in ("a", "c", "d"):
        await store.put_object("bkt", k, body(k.encode() * 10))
    await store.delete_object("bkt", "d")
    got = await store.head_objects("bkt", ["c", "b", "a", "d"], concurrency=2)
    assert [g.key if g is not None else None for g in got] == ["c", None, "a", None]
    assert got[0].size == 10
    with pytest.raises(NoSuchBucket):
        await store.head_objects("nope", ["a"])


@run
async def test_head_objects_fails_whole_when_a_key_cannot_be_resolved(store, drives):
    await store.put_object("bkt", "a", body(b"x"))
    for d in drives[:3]:
        d.offline = True
    with pytest.raises(QuorumError):
        await store.head_objects("bkt", ["a", "b"])


@run
async def test_walk_objects_streams_every_entry_across_pages(store, drives):
    keys = [f"dir/{i:05d}" for i in range(2500)] + ["dir/sub/x", "dir/sub/y", "other"]
    for k in keys:
        await store.put_object("bkt", k, body(b""))
    seen = [e if isinstance(e, str) else e.key async for e in
            store.walk_objects("bkt", prefix="dir/", delimiter="/")]
    assert seen == [f"dir/{i:05d}" for i in range(2500)] + ["dir/sub/"]
    after = [e.key async for e in store.walk_objects("bkt", start_after="dir/sub/x")]
    assert after == ["dir/sub/y", "other"]
    page = await store.list_objects("bkt", prefix="dir/", delimiter="/", max_keys=2500)
    assert page.is_truncated and page.next_start_after == "dir/02499"


@run
async def test_statfs_sums_online_drives_and_scales_by_the_scheme(store, drives):
    st = await store.statfs()
    assert (st.drives, st.drives_online, st.ec_k, st.ec_m) == (6, 6, 4, 2)
    assert st.raw_capacity == 6 << 30
    assert st.usable_capacity == st.raw_capacity * 4 // 6
    await store.put_object("bkt", "k", body(b"z" * 100_000))
    after = await store.statfs()
    assert after.raw_used > st.raw_used and after.raw_free < st.raw_free
    drives[0].offline = True
    assert (await store.statfs()).drives_online == 5


@run
async def test_statistics_reports_counters_without_io(store, drives):
    s = store.statistics()
    assert (s.ec_k, s.ec_m, s.drives, s.healing, s.degraded_reads) == (4, 2, 6, (), 0)
