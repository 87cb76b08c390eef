"""ListMultipartUploads ordering, markers, delimiter and quorum."""

from __future__ import annotations

from titans3.objects.multipart import UPLOADS

from .test_store import run


# ----------------------------------------------------------------- listing
async def start(store, keys):
    return [(k, await store.create_multipart("bkt", k)) for k in keys]


@run
async def test_uploads_are_listed_by_key_then_initiation(store, drives):
    made = await start(store, ["b", "a", "b", "c/x", "c/y"])
    page = await store.list_multipart_uploads("bkt")
    assert [(u.key, u.upload_id) for u in page.uploads] == sorted(made)
    b_ids = [u.upload_id for u in page.uploads if u.key == "b"]
    assert b_ids == [uid for k, uid in made if k == "b"]  # initiation order
    assert not page.is_truncated and all(u.initiated_ns > 0 for u in page.uploads)


@run
async def test_upload_listing_markers_and_paging(store, drives):
    made = sorted(await start(store, ["a", "b", "b", "b", "c"]))
    page = await store.list_multipart_uploads("bkt", max_uploads=2)
    assert page.is_truncated
    assert (page.next_key_marker, page.next_upload_id_marker) == made[1]
    rest = await store.list_multipart_uploads(
        "bkt", key_marker=page.next_key_marker, upload_id_marker=page.next_upload_id_marker
    )
    assert [(u.key, u.upload_id) for u in rest.uploads] == made[2:]
    after_b = await store.list_multipart_uploads("bkt", key_marker="b")
    assert [u.key for u in after_b.uploads] == ["c"]


@run
async def test_upload_listing_prefix_and_delimiter(store, drives):
    await start(store, ["logs/1", "logs/2", "photos/a/1", "photos/b", "top"])
    page = await store.list_multipart_uploads("bkt", delimiter="/")
    assert page.prefixes == ["logs/", "photos/"] and [u.key for u in page.uploads] == ["top"]
    page = await store.list_multipart_uploads("bkt", prefix="photos/", delimiter="/")
    assert page.prefixes == ["photos/a/"] and [u.key for u in page.uploads] == ["photos/b"]
    first = await store.list_multipart_uploads("bkt", delimiter="/", max_uploads=1)
    assert first.prefixes == ["logs/"] and first.next_key_marker == "logs/"
    second = await store.list_multipart_uploads("bkt", delimiter="/", key_marker="logs/")
    assert second.prefixes == ["photos/"]


@run
async def test_completed_and_aborted_uploads_disappear(store, drives):
    (_, a), (_, b) = await start(store, ["x", "y"])
    await store.abort_multipart("bkt", "x", a)
    page = await store.list_multipart_uploads("bkt")
    assert [u.upload_id for u in page.uploads] == [b]


@run
async def test_upload_record_on_too_few_drives_is_not_listed(store, drives):
    (_, uid), = await start(store, ["k"])
    brec = await store.buckets.get("bkt")
    positions = store.placement(brec.bucket_id, b"k")
    for p in positions[:3]:  # only 3 of 6 still hold it: cannot have been acknowledged
        drives[p].tables[UPLOADS].pop(brec.bucket_id + bytes.fromhex(uid))
    assert (await store.list_multipart_uploads("bkt")).uploads == []
