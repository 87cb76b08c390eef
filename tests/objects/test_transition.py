"""Storage-class transitions over in-memory drives: the re-encode keeps the
version, and every interrupted state reads as the old or the new encoding."""

from __future__ import annotations

import os

import pytest

from titans3.core.errors import InvalidStorageClass
from titans3.objects.repair import ObjectRepair

from .test_store import body, read_all, run

CLASSES = {"STANDARD_IA": (2, 2)}


def _recs(drives, key: bytes = b"k"):
    return [next(iter(v for (b, k), v in d.versions.items() if k == key), []) for d in drives]


async def _put(store, data: bytes, **kw):
    store.storage_classes = dict(CLASSES)
    return await store.put_object("bkt", "k", body(data), size=len(data), **kw)


@pytest.mark.parametrize("size", [0, 1000, 300_000])
def test_transition_keeps_version_etag_and_bytes(size):
    run(_keeps)(size)


async def _keeps(store, drives, size):
    data = os.urandom(size)
    put = await _put(store, data)
    old_ids = {r.data for recs in _recs(drives) for r in recs}
    assert await store.transition_object("bkt", "k", "STANDARD_IA")
    info = await store.head_object("bkt", "k")
    assert (info.version_id, info.etag, info.storage_class) == (put.version_id, put.etag, "STANDARD_IA")
    assert await read_all(store, "bkt", "k") == data
    recs = _recs(drives)
    held = [j for j, r in enumerate(recs) if r]
    assert len(held) == 4 and all(r[0].ec[:2] == (2, 2) for r in recs if r)
    assert not {r[0].data for r in recs if r} & old_ids  # a new data id; the old is freed
    assert not await store.transition_object("bkt", "k", "STANDARD_IA")  # idempotent
    assert await store.transition_object("bkt", "k", "STANDARD")  # and back
    assert await read_all(store, "bkt", "k") == data
    assert (await store.head_object("bkt", "k")).storage_class == "STANDARD"


@run
async def test_unmapped_class_is_refused(store, drives):
    await _put(store, b"x")
    with pytest.raises(InvalidStorageClass):
        await store.transition_object("bkt", "k", "GLACIER")
    with pytest.raises(InvalidStorageClass):
        await store.put_object("bkt", "k2", body(b"x"), storage_class="GLACIER")


@pytest.mark.parametrize("landed", [1, 2, 3])
def test_interrupted_switch_reads_old_or_new_never_neither(landed):
    run(_interrupted)(landed)


async def _interrupted(store, drives, landed):
    """A kill after ``landed`` drives switched: 1 new fragment of 2+2 cannot be
    read, so the old 4+2 encoding (5 drives) is; with 2 or more the new one is."""
    data = os.urandom(200_000)
    put = await _put(store, data)
    commit = store.committer.commit

    async def cut(brec, key, positions, ok, make, promote, *a, **kw):
        await commit(brec, key, positions, list(ok)[:landed], make, promote, *a, **kw)
        raise KeyboardInterrupt  # the process dies here

    store.committer.commit = cut
    with pytest.raises(KeyboardInterrupt):
        await store.transition_object("bkt", "k", "STANDARD_IA")
    store.committer.commit = commit
    assert await read_all(store, "bkt", "k") == data
    info = await store.head_object("bkt", "k")
    assert (info.version_id, info.etag) == (put.version_id, put.etag)
    assert info.storage_class == ("STANDARD" if landed < 2 else "STANDARD_IA")
    # Repair or the next transition finishes it: one encoding left, on 4 drives.
    if landed >= 2:
        await ObjectRepair(store.context, grace=0).repair(
            (await store.buckets.get("bkt")).bucket_id, b"k")
    await store.transition_object("bkt", "k", "STANDARD_IA")
    recs = [r for r in _recs(drives) if r]
    assert len(recs) == 4 and len({r[0].data for r in recs}) == 1
    assert await read_all(store, "bkt", "k") == data


@run
async def test_encrypted_version_moves_as_ciphertext(store, drives):
    from titans3.objects.types import Encryption

    key = os.urandom(32)
    data = b"secret " * 40_000
    put = await _put(store, data, encryption=Encryption("SSE-C", customer_key=key))
    assert await store.transition_object("bkt", "k", "STANDARD_IA")  # no key given: none needed
    assert await read_all(store, "bkt", "k", customer_key=key) == data
    info = await store.head_object("bkt", "k", customer_key=key)
    assert info.etag == put.etag and info.sse_customer_md5
