"""What the object layer keeps for the front's access rules: bucket owner and
configuration at creation, and a version's ACL (written, copied, completed, replaced)."""

from __future__ import annotations

from .test_store import SEG, body, run


@run
async def test_a_bucket_starts_with_its_access_configuration(store, drives):
    await store.create_bucket("owned", config={"owner": b"c" * 64, "ownership": b"ObjectWriter"})
    settings = await store.bucket_settings("owned")
    assert settings.config["ownership"] == b"ObjectWriter"
    assert [b.owner for b in await store.list_buckets() if b.name == "owned"] == ["c" * 64]
    before = settings.vid
    await store.put_bucket_config("owned", "policy", b"{}")
    assert (await store.bucket_settings("owned")).vid > before  # the cache key changes


@run
async def test_a_version_carries_its_acl_through_every_write(store, drives):
    from titans3.objects import multipart

    await store.put_object("bkt", "k", body(b"x"), size=1, acl=b"acl-1")
    assert (await store.head_object("bkt", "k")).acl == b"acl-1"
    await store.put_object_acl("bkt", "k", b"acl-2")
    info = await store.head_object("bkt", "k")
    assert info.acl == b"acl-2" and info.size == 1
    await store.copy_object("bkt", "k", "bkt", "copy", acl=b"acl-3")
    assert (await store.head_object("bkt", "copy")).acl == b"acl-3"
    await store.copy_object("bkt", "k", "bkt", "plain")
    assert (await store.head_object("bkt", "plain")).acl is None  # never the source's
    multipart.MIN_PART_SIZE = SEG
    uid = await store.create_multipart("bkt", "mp", acl=b"acl-4")
    part = await store.upload_part("bkt", "mp", uid, 1, body(b"y" * 10))
    await store.complete_multipart("bkt", "mp", uid, [(1, part.etag)])
    assert (await store.head_object("bkt", "mp")).acl == b"acl-4"
