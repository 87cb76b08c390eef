"""Object tags: AWS's limits (pure) and tag updates re-committed on every holder."""

from __future__ import annotations

import pytest

from titans3.core.errors import InvalidTag, MethodNotAllowed, NoSuchKey, QuorumError
from titans3.objects.tagging import validate_tags

from .test_store import body, run


# ------------------------------------------------------------------ limits
def test_validate_tags_keeps_order_and_accepts_the_aws_alphabet():
    pairs = [("b", ""), ("a key", "v+-=._:/@"), ("ключ", "значение 1")]
    assert list(validate_tags(pairs).items()) == pairs


@pytest.mark.parametrize(
    ("pairs", "error", "words"),
    [
        ([(f"k{i}", "v") for i in range(11)], InvalidTag, "greater than 10"),
        ([("", "v")], InvalidTag, "TagKey"),
        ([("k" * 129, "v")], InvalidTag, "TagKey"),
        ([("k", "v" * 257)], InvalidTag, "TagValue"),
        ([("a*b", "v")], InvalidTag, "TagKey"),
        ([("k", "semi;colon")], InvalidTag, "TagValue"),
        ([("aws:reserved", "v")], InvalidTag, "aws:"),
        ([("k", "1"), ("k", "2")], InvalidTag, "same key"),
    ],
)
def test_validate_tags_refuses_what_aws_refuses(pairs, error, words):
    with pytest.raises(error) as e:
        validate_tags(pairs)
    assert words in e.value.message


def test_validate_tags_limits_are_inclusive():
    tags = validate_tags([(f"k{i}", "v") for i in range(9)] + [("k" * 128, "v" * 256)])
    assert len(tags) == 10


# ------------------------------------------------------------------- store
@run
async def test_tags_written_with_an_object_are_returned(store, drives):
    await store.put_object("bkt", "k", body(b"x"), size=1, tags={"a": "1"})
    assert await store.get_object_tagging("bkt", "k") == ("null", {"a": "1"})
    assert (await store.head_object("bkt", "k")).tags == {"a": "1"}


@run
async def test_put_and_delete_tagging_update_in_place_without_a_new_version(store, drives):
    await store.put_bucket_versioning("bkt", "Enabled")
    v1 = await store.put_object("bkt", "k", body(b"one"), size=3)
    v2 = await store.put_object("bkt", "k", body(b"two"), size=3, tags={"x": "y"})
    assert await store.put_object_tagging("bkt", "k", {"p": "q"}, version_id=v1.version_id) \
        == v1.version_id
    assert (await store.get_object_tagging("bkt", "k", version_id=v1.version_id))[1] == {"p": "q"}
    assert (await store.get_object_tagging("bkt", "k"))[1] == {"x": "y"}
    info = await store.head_object("bkt", "k", version_id=v1.version_id)
    assert info.mtime_ns > 0 and info.etag  # data and Last-Modified untouched
    assert await store.delete_object_tagging("bkt", "k") == v2.version_id
    assert (await store.get_object_tagging("bkt", "k"))[1] == {}
    page = await store.list_object_versions("bkt")
    assert len(page.versions) == 2


@run
async def test_tag_update_reaches_every_holder_and_wins_over_a_stale_copy(store, drives):
    await store.put_object("bkt", "k", body(b"data"), size=4, tags={"old": "1"})
    brec = await store.buckets.get("bkt")
    positions = store.placement(brec.bucket_id, b"k")
    stale = drives[positions[0]]
    stale.offline = True  # misses the update (5 of 6 still make W)
    await store.put_object_tagging("bkt", "k", {"new": "2"})
    stale.offline = False
    for p in positions[1:]:
        (rec,) = await drives[p].read_versions(brec.bucket_id, b"k")
        assert rec.extra["tags"] == {"new": "2"}
    (old,) = await stale.read_versions(brec.bucket_id, b"k")
    assert old.extra.get("tags") == {"old": "1"}
    assert (await store.get_object_tagging("bkt", "k"))[1] == {"new": "2"}
    assert await store.list_objects("bkt") is not None
    res = await store.get_object("bkt", "k")
    assert b"".join([c async for c in res.body]) == b"data"  # data ids were not freed


@run
async def test_tag_update_without_write_quorum_is_an_error(store, drives):
    await store.put_object("bkt", "k", body(b"data"), size=4)
    drives[0].offline = drives[1].offline = True
    try:
        with pytest.raises(QuorumError):
            await store.put_object_tagging("bkt", "k", {"a": "b"})
    finally:
        drives[0].offline = drives[1].offline = False


@run
async def test_tagging_a_delete_marker(store, drives):
    await store.put_bucket_versioning("bkt", "Enabled")
    await store.put_object("bkt", "k", body(b"data"), size=4)
    marker = await store.delete_object("bkt", "k")
    with pytest.raises(NoSuchKey):
        await store.get_object_tagging("bkt", "k")
    with pytest.raises(MethodNotAllowed):
        await store.get_object_tagging("bkt", "k", version_id=marker.version_id)
    with pytest.raises(MethodNotAllowed) as e:
        await store.put_object_tagging("bkt", "k", {"a": "b"})
    assert ("Allow", "DELETE") in e.value.headers


@run
async def test_multipart_upload_tags_land_on_the_completed_object(store, drives):
    up = await store.create_multipart("bkt", "m", tags={"mp": "yes"})
    e = (await store.upload_part("bkt", "m", up, 1, body(b"abc"), size=3)).etag
    await store.complete_multipart("bkt", "m", up, [(1, e)])
    assert (await store.get_object_tagging("bkt", "m"))[1] == {"mp": "yes"}
