"""CopyObject / UploadPartCopy in the store: streamed, version-exact, nothing visible on failure."""

from __future__ import annotations

import hashlib
import os

import pytest

from titans3.core.errors import (
    InvalidRange,
    InvalidRequest,
    NoSuchBucket,
    NoSuchKey,
    PreconditionFailed,
    QuorumError,
)
from titans3.objects import copy as copy_mod

from .test_store import SEG, body, read_all, run


async def put(store, key, data, bucket="bkt", **kw):
    return await store.put_object(bucket, key, body(data), size=len(data), **kw)


@run
async def test_copy_streams_a_multi_segment_object_across_buckets(store, drives):
    await store.create_bucket("other")
    data = os.urandom(5 * SEG + 17)
    await put(store, "src", data, meta={"content-type": "text/plain", "x-amz-meta-a": "1"},
              tags={"t": "v"}, checksums=lambda: {"CRC32": "AAAAAA=="})
    res = await store.copy_object("bkt", "src", "other", "dst")
    assert res.put.etag == hashlib.md5(data).hexdigest() and res.put.mtime_ns > 0
    assert res.source.key == "src" and res.source.size == len(data)
    assert await read_all(store, "other", "dst") == data
    info = await store.head_object("other", "dst")
    assert info.meta == {"content-type": "text/plain", "x-amz-meta-a": "1"}
    assert info.tags == {"t": "v"} and info.checksums == {"CRC32": "AAAAAA=="}


@run
async def test_copy_of_a_multipart_source_is_one_plain_object(store, drives):
    part = os.urandom(5 << 20)
    up = await store.create_multipart("bkt", "mp")
    e1 = (await store.upload_part("bkt", "mp", up, 1, body(part), size=len(part))).etag
    e2 = (await store.upload_part("bkt", "mp", up, 2, body(b"tail"), size=4)).etag
    await store.complete_multipart("bkt", "mp", up, [(1, e1), (2, e2)])
    res = await store.copy_object("bkt", "mp", "bkt", "flat")
    assert res.put.etag == hashlib.md5(part + b"tail").hexdigest()
    assert (await store.head_object("bkt", "flat")).parts_count == 0


@run
async def test_copy_replace_directives_take_the_callers_metadata_and_tags(store, drives):
    await put(store, "src", b"x", meta={"x-amz-meta-old": "1"}, tags={"a": "b"})
    await store.copy_object("bkt", "src", "bkt", "src", meta={"x-amz-meta-new": "2"}, tags={})
    info = await store.head_object("bkt", "src")
    assert info.meta == {"x-amz-meta-new": "2"} and info.tags == {}


@run
async def test_copy_reads_the_named_source_version(store, drives):
    await store.put_bucket_versioning("bkt", "Enabled")
    v1 = await put(store, "k", b"first")
    await put(store, "k", b"second")
    res = await store.copy_object("bkt", "k", "bkt", "k", src_version_id=v1.version_id)
    assert res.source.version_id == v1.version_id
    assert await read_all(store, "bkt", "k") == b"first"  # restored as the newest version


@run
async def test_copy_source_checks_run_before_any_write(store, drives):
    await put(store, "src", b"data")

    def refuse(info):
        raise PreconditionFailed()

    with pytest.raises(PreconditionFailed):
        await store.copy_object("bkt", "src", "bkt", "dst", check_source=refuse)
    with pytest.raises(NoSuchKey):
        await store.head_object("bkt", "dst")
    assert not any(d.staging for d in drives)


@run
async def test_copy_from_delete_markers(store, drives):
    await store.put_bucket_versioning("bkt", "Enabled")
    await put(store, "k", b"data")
    marker = await store.delete_object("bkt", "k")
    with pytest.raises(NoSuchKey) as current:
        await store.copy_object("bkt", "k", "bkt", "dst")
    assert ("x-amz-delete-marker", "true") in current.value.headers
    with pytest.raises(InvalidRequest):
        await store.copy_object("bkt", "k", "bkt", "dst", src_version_id=marker.version_id)


@run
async def test_copy_to_a_missing_bucket_reads_nothing_and_leaks_nothing(store, drives):
    await put(store, "src", os.urandom(2 * SEG))
    with pytest.raises(NoSuchBucket):
        await store.copy_object("bkt", "src", "nobucket", "dst")


def test_copy_larger_than_5_gib_is_refused(monkeypatch):
    monkeypatch.setattr(copy_mod, "MAX_COPY_SIZE", 1000)

    @run
    async def t(store, drives):
        await put(store, "src", b"x" * 1001)
        with pytest.raises(InvalidRequest):
            await store.copy_object("bkt", "src", "bkt", "dst")
        with pytest.raises(NoSuchKey):
            await store.head_object("bkt", "dst")

    t()


@run
async def test_failed_copy_leaves_destination_untouched(store, drives):
    await put(store, "src", os.urandom(3 * SEG))
    await put(store, "dst", b"old")
    # Three of six down: fewer than k primaries, so not even hinted handoff can write.
    drives[0].offline = drives[1].offline = drives[2].offline = True
    try:
        with pytest.raises(QuorumError):
            await store.copy_object("bkt", "src", "bkt", "dst")
    finally:
        drives[0].offline = drives[1].offline = drives[2].offline = False
    assert await read_all(store, "bkt", "dst") == b"old"


@run
async def test_upload_part_copy_with_range_builds_an_object(store, drives):
    src = os.urandom(6 << 20)
    await put(store, "src", src)
    up = await store.create_multipart("bkt", "dst")
    p1 = await store.upload_part_copy("bkt", "dst", up, 1, "bkt", "src", byte_range=(0, (5 << 20) - 1))
    p2 = await store.upload_part_copy("bkt", "dst", up, 2, "bkt", "src", byte_range=(5 << 20, len(src) - 1))
    assert p1.part.size == 5 << 20 and p1.part.etag == hashlib.md5(src[: 5 << 20]).hexdigest()
    await store.complete_multipart("bkt", "dst", up, [(1, p1.part.etag), (2, p2.part.etag)])
    assert await read_all(store, "bkt", "dst") == src


@run
async def test_upload_part_copy_range_outside_the_source_is_invalid(store, drives):
    await put(store, "src", b"0123456789")
    up = await store.create_multipart("bkt", "dst")
    for bad in [(5, 10), (10, 12), (20, 30)]:
        with pytest.raises(InvalidRange) as e:
            await store.upload_part_copy("bkt", "dst", up, 1, "bkt", "src", byte_range=bad)
        assert e.value.status == 416 and "size 10" in e.value.message
    assert await store.list_parts("bkt", "dst", up) == []
    whole = await store.upload_part_copy("bkt", "dst", up, 1, "bkt", "src")
    assert whole.part.size == 10
