"""The lifecycle worker (titans3/workers/lifecycle.py) over a real object store on
in-memory drives, with its clock moved by the test."""

from __future__ import annotations

from pathlib import Path

import trio

from titans3.core import lifecycle as lc
from titans3.objects.api import ObjectLock
from titans3.workers.lifecycle import LifecycleWorker, rendezvous_owner

from ..objects.test_store import body, make_store

DAY = 10.0  # seconds in a test "day"
NS = 10**9


class Clock:
    def __init__(self) -> None:
        import time

        self.now = time.time_ns()

    def __call__(self) -> int:
        return self.now

    def days(self, n: float) -> None:
        self.now += int(n * DAY * NS)


def _worker(store, tmp_path: Path, clock: Clock, **kw) -> LifecycleWorker:
    return LifecycleWorker(lambda: store, state=tmp_path / "lc.json", day_seconds=DAY, rate=0,
                           clock=clock, first_delay=0, **kw)


async def _keys(store, bucket: str) -> list[tuple[str, str, bool]]:
    page = await store.list_object_versions(bucket)
    return [(v.key, v.version_id, v.delete_marker) for v in page.versions]


def test_expiration_by_prefix_purges_unversioned_objects(tmp_path: Path) -> None:
    async def main() -> None:
        store, _ = make_store()
        clock = Clock()
        await store.create_bucket("lc-plain")
        await store.put_bucket_config("lc-plain", lc.NAME, lc.dump([
            lc.Rule("tmp", prefix="tmp/", expiration_days=2)]))
        for k in ("tmp/a", "tmp/b", "keep/c"):
            await store.put_object("lc-plain", k, body(b"x"))
        w = _worker(store, tmp_path, clock)
        await w.run_pass()
        assert w.expired == 0
        clock.days(3)
        await w.run_pass()
        assert w.expired == 2
        assert [k for k, _, _ in await _keys(store, "lc-plain")] == ["keep/c"]
        await w.run_pass()  # nothing left to do: nothing done twice
        assert w.expired == 2 and w.statistics().passes == 3

    trio.run(main)


def test_noncurrent_versions_beyond_the_limit_go_and_locked_ones_stay(tmp_path: Path) -> None:
    async def main() -> None:
        store, _ = make_store()
        clock = Clock()
        await store.create_bucket("lc-ver", object_lock=True)
        await store.put_bucket_config("lc-ver", lc.NAME, lc.dump([
            lc.Rule("nc", noncurrent_days=1, newer_noncurrent=1),
            lc.Rule("mpu", abort_days=1),
            lc.Rule("dm", expired_delete_marker=True)]))
        locked = await store.put_object("lc-ver", "k", body(b"v0"),
                                        lock=ObjectLock(legal_hold=True))
        for i in range(1, 5):
            await store.put_object("lc-ver", "k", body(f"v{i}".encode()))
        await store.create_multipart("lc-ver", "upload")
        clock.days(2)
        w = _worker(store, tmp_path, clock)
        await w.run_pass()
        left = await _keys(store, "lc-ver")
        # current v4, the newest noncurrent v3 kept, v1..v2 gone, v0 locked and kept.
        assert len(left) == 3 and left[-1][1] == locked.version_id
        assert w.noncurrent_expired == 2 and w.locked_kept == 1 and w.uploads_aborted == 1
        assert (await store.list_multipart_uploads("lc-ver")).uploads == []
        # A lone delete marker is removed once its versions are gone.
        await store.create_bucket("lc-dm")
        await store.put_bucket_versioning("lc-dm", "Enabled")
        await store.put_bucket_config("lc-dm", lc.NAME, lc.dump([
            lc.Rule("nc", noncurrent_days=1), lc.Rule("dm", expired_delete_marker=True)]))
        await store.put_object("lc-dm", "gone", body(b"x"))
        await store.delete_object("lc-dm", "gone")
        clock.days(2)
        await w.run_pass()  # removes the noncurrent version
        await w.run_pass()  # then the marker, now alone
        assert await _keys(store, "lc-dm") == [] and w.markers_removed == 1

    trio.run(main)


def test_a_host_applies_only_the_buckets_it_owns(tmp_path: Path) -> None:
    async def main() -> None:
        store, _ = make_store()
        clock = Clock()
        hosts = ["h1", "h2", "h3"]
        names = [f"own-{i}" for i in range(6)]
        for n in names:
            await store.create_bucket(n)
            await store.put_bucket_config(n, lc.NAME, lc.dump([lc.Rule("all", expiration_days=1)]))
            await store.put_object(n, "k", body(b"x"))
        clock.days(2)
        workers = [_worker(store, tmp_path / h, clock, owns=lambda b, h=h: rendezvous_owner(b, hosts) == h)
                   for h in hosts]
        for h, w in zip(hosts, workers, strict=True):
            (tmp_path / h).mkdir()
            await w.run_pass()
        assert sum(w.expired for w in workers) == len(names)  # each object once
        assert all(w.buckets_scanned < len(names) for w in workers)

    trio.run(main)


def test_a_pass_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    async def main() -> None:
        store, _ = make_store()
        clock = Clock()
        for n in ("r-a", "r-b"):
            await store.create_bucket(n)
            await store.put_bucket_config(n, lc.NAME, lc.dump([lc.Rule("all", expiration_days=1)]))
            await store.put_object(n, "k", body(b"x"))
        (tmp_path / "lc.json").write_text('{"passes": 4, "bucket": "r-b", "key": ""}')
        clock.days(2)
        w = _worker(store, tmp_path, clock)
        await w.run_pass()  # resumes in r-b: r-a waits for the next pass
        assert [b for b in ("r-a", "r-b") if await _keys(store, b)] == ["r-a"]
        assert w.statistics().passes == 5
        await w.run_pass()
        assert not await _keys(store, "r-a")

    trio.run(main)
