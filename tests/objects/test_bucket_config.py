"""Bucket configurations in the bucket record (titans3.objects.bucket_config)."""

from __future__ import annotations

import msgpack
import pytest
import trio

from titans3.core.errors import NoSuchBucket
from titans3.objects.buckets import BucketRecord, BucketTable
from titans3.objects.versionid import HybridClock

from .test_store import make_store


def test_record_without_config_packs_exactly_as_before() -> None:
    rec = BucketRecord("b", b"\x01" * 8, 5, "v1")
    assert "cfg" not in msgpack.unpackb(rec.pack(), raw=False)
    old = msgpack.packb({"name": "b", "id": b"\x01" * 8, "t": 5, "vid": "v1", "ver": "",
                         "del": False, "ec": None}, use_bin_type=True)  # fmt: skip
    assert BucketRecord.unpack(old) == rec
    with_cfg = BucketRecord("b", b"\x01" * 8, 5, "v1", config={"cors": b"[]"})
    assert BucketRecord.unpack(with_cfg.pack()) == with_cfg


def test_configs_round_trip_and_survive_a_fresh_table() -> None:
    async def main() -> None:
        store, drives = make_store()
        await store.create_bucket("bkt")
        assert await store.get_bucket_config("bkt", "cors") is None
        await store.put_bucket_config("bkt", "cors", b"rules")
        await store.put_bucket_config("bkt", "tagging", b"tags")
        await store.put_bucket_config("bkt", "cors", None)
        # A new table (another process) reads the newest record from the drives.
        fresh = BucketTable(drives, HybridClock())
        rec = await fresh.get("bkt")
        assert rec.config == {"tagging": b"tags"}
        with pytest.raises(NoSuchBucket):
            await store.put_bucket_config("nobkt", "cors", b"x")

    trio.run(main)


def test_concurrent_updates_of_different_items_are_not_lost() -> None:
    async def main() -> None:
        store, _ = make_store()
        await store.create_bucket("bkt")
        async with trio.open_nursery() as nursery:
            for i in range(8):
                nursery.start_soon(store.put_bucket_config, "bkt", f"item{i}", b"%d" % i)
        rec = await store.buckets.get("bkt")
        assert rec.config == {f"item{i}": b"%d" % i for i in range(8)}

    trio.run(main)


def test_recreated_bucket_starts_without_configuration() -> None:
    async def main() -> None:
        store, _ = make_store()
        await store.create_bucket("bkt")
        await store.put_bucket_config("bkt", "cors", b"rules")
        await store.delete_bucket("bkt")
        await store.create_bucket("bkt")
        assert await store.get_bucket_config("bkt", "cors") is None

    trio.run(main)
