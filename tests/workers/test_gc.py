"""GC removes staging leftovers, orphan chunk files and stale versions -- never live data."""

from __future__ import annotations

import os
import time

import trio

from titans3.drive.local import LocalDrive
from titans3.drive.records import VersionRecord
from titans3.erasure.codec import ECScheme
from titans3.objects.maintenance import Maintenance
from titans3.objects.store import ObjectStore
from titans3.ring.builder import Member, build_ring
from titans3.workers.gc import GarbageCollector

from .harness import body, fill, make_store, read_all

OLD = time.time() - 7200


def test_gc_removes_old_staging_and_orphan_files_and_keeps_live_ones(tmp_path):
    async def main():
        drives = [LocalDrive(tmp_path / f"drive-{i}") for i in range(6)]
        for d in drives:
            await d.open()
        ring = build_ring([Member(d.drive_id, "h") for d in drives], 6, partition_power=4)
        store = ObjectStore(drives, ring, ECScheme(4, 2, 1 << 20))
        svc = Maintenance(store, grace=0)
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            await store.create_bucket("bkt")
            data = os.urandom(3 << 20)
            await store.put_object("bkt", "live", body(data))
            live = [p for p in (tmp_path / "drive-0" / "chunks").rglob("*") if p.is_file()]
            for p in live:  # live data as old as garbage: age alone must not condemn it
                os.utime(p, (OLD, OLD))
            orphan = tmp_path / "drive-0" / "chunks" / "ab" / "cd" / ("abcd" + "0" * 28)
            orphan.parent.mkdir(parents=True, exist_ok=True)
            orphan.write_bytes(b"x" * 8192)
            os.utime(orphan, (OLD, OLD))
            young = orphan.with_name("abcd" + "1" * 28)
            young.write_bytes(b"y")
            leftover = tmp_path / "drive-1" / "staging" / ("ee" * 16)
            leftover.write_bytes(b"z" * 100)
            os.utime(leftover, (OLD, OLD))
            assert await drives[0].bucket_ids() == [(await store.buckets.get("bkt")).bucket_id]

            async def stale_table() -> list[bytes]:
                return []  # a bucket table that does not (yet) know the bucket

            svc.bucket_ids = stale_table  # type: ignore[method-assign]
            gc = GarbageCollector(svc, positions=list(range(6)), interval=1e9, window=3600)
            await gc.collect()
            st = gc.statistics()
            assert not orphan.exists() and not leftover.exists()
            assert young.exists(), "younger than the commit window: maybe a write in flight"
            assert all(p.exists() for p in live)
            assert (st.orphan_chunks_removed, st.staging_removed) == (1, 1)
            assert st.orphan_bytes_removed == 8192 and st.passes_completed == 1
            assert await read_all(store, "live") == data
            nursery.cancel_scope.cancel()
        for d in drives:
            await d.close()

    trio.run(main)


def test_gc_removes_a_remnant_and_a_shadowed_null_version():
    async def main():
        store, drives, svc = make_store()
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            await store.create_bucket("bkt")
            objects = await fill(store, 2)
            bid = (await store.buckets.get("bkt")).bucket_id
            old_ns = int(OLD * 1e9)
            # A failed write left a newer version on two drives only.
            remnant = VersionRecord(vid="f" * 32, mtime_ns=old_ns, null=True, size=1,
                                    ec=(4, 2, 1 << 16), data="cd" * 16, inline=True)
            for d in drives[:2]:
                await d.commit_version(bid, b"obj-000", remnant)
            # A purge that never ran: an older null version under obj-001's current one.
            shadowed = VersionRecord(vid="0" * 31 + "1", mtime_ns=old_ns, null=True, size=1,
                                     ec=(4, 2, 1 << 16), data="ef" * 16, inline=True)
            for d in drives:
                await d.commit_version(bid, b"obj-001", shadowed)
            gc = GarbageCollector(svc, positions=list(range(6)), interval=1e9, window=3600)
            await gc.collect()
            assert gc.statistics().versions_removed == 2 + 6
            for d in drives:
                assert [r.vid for r in d.versions[(bid, b"obj-000")]] != ["f" * 32]
                assert len(d.versions[(bid, b"obj-001")]) == 1
            for key, data in objects.items():
                assert await read_all(store, key) == data
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_gc_aborts_multipart_uploads_older_than_the_limit():
    async def main():
        store, drives, svc = make_store()
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            await store.create_bucket("bkt")
            old = await store.create_multipart("bkt", "abandoned")
            await store.upload_part("bkt", "abandoned", old, 1, body(b"p" * 70_000))
            part_ids = {i for d in drives for i in d.data}
            assert part_ids
            gc = GarbageCollector(svc, positions=[], interval=1e9, window=3600, mpu_max_age=3600)
            await gc.collect()
            assert gc.statistics().uploads_aborted == 0  # younger than the limit
            gc.mpu_max_age = 1e-6
            await gc.collect()
            assert gc.statistics().uploads_aborted == 1
            assert not any(i in d.data for d in drives for i in part_ids)
            assert not any(d.tables.get("mpu") for d in drives)
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_gc_keeps_handed_off_fragments_however_old(tmp_path):
    """A hinted fragment is named by a hint, not by its drive's records: a primary
    down for longer than the commit window must still get it back."""
    from titans3.objects import handoff

    async def main():
        drives = [LocalDrive(tmp_path / f"drive-{i}") for i in range(7)]  # a spare beside 4+2
        for d in drives:
            await d.open()
        ring = build_ring([Member(d.drive_id, "h") for d in drives], 6, partition_power=4)
        store = ObjectStore(drives, ring, ECScheme(4, 2, 1 << 20))
        svc = Maintenance(store, grace=0)
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            await store.create_bucket("bkt")
            bid = (await store.buckets.get("bkt")).bucket_id
            down = store.placement(bid, b"k")[0]
            await drives[down].close()  # offline while the object is written
            data = os.urandom(3 << 20)
            await store.put_object("bkt", "k", body(data))
            hinted = [p for p in tmp_path.rglob("chunks/*/*/*") if len(p.name) > 32]
            assert hinted, "the write should have handed a fragment off"
            for p in tmp_path.rglob("chunks/*/*/*"):
                os.utime(p, (OLD, OLD))  # everything older than the commit window
            gc = GarbageCollector(svc, positions=[i for i in range(7) if i != down],
                                  interval=1e9, window=3600)
            await gc.collect()
            assert all(p.exists() for p in hinted)
            assert gc.statistics().orphan_chunks_removed == 0
            await drives[down].open()  # the primary is back: replay finds its fragment
            out = await handoff.replay_drive(store, next(
                i for i in range(7) if any(str(tmp_path / f"drive-{i}") in str(p) for p in hinted)))
            assert out.moved == 1 and out.errors == 0
            assert await read_all(store, "k") == data
            nursery.cancel_scope.cancel()
        for d in drives:
            await d.close()

    trio.run(main)


def test_gc_removes_part_records_of_an_upload_no_drive_holds_and_then_their_data(tmp_path):
    """A drive that missed the Create got a part, and was away at the Abort: it keeps
    a part record of an upload no drive holds, which would keep the part's data for
    ever.  The part records of a live upload, however old, stay."""
    from titans3.drive.protocol import DriveState
    from titans3.objects.multipart import PARTS, UPLOADS

    async def main():
        drives = [LocalDrive(tmp_path / f"drive-{i}") for i in range(6)]
        for d in drives:
            await d.open()
        ring = build_ring([Member(d.drive_id, "h") for d in drives], 6, partition_power=4)
        store = ObjectStore(drives, ring, ECScheme(4, 2, 1 << 20))

        async def pull(i: int) -> None:  # as the torture pulls a drive: its directory goes
            (tmp_path / f"drive-{i}").rename(tmp_path / f"drive-{i}.pulled")
            assert await drives[i].check() == DriveState.OFFLINE

        async def put_back(i: int) -> None:
            (tmp_path / f"drive-{i}.pulled").rename(tmp_path / f"drive-{i}")
            assert await drives[i].check() == DriveState.ONLINE

        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            await store.create_bucket("bkt")
            live = await store.create_multipart("bkt", "live")
            await store.upload_part("bkt", "live", live, 1, body(os.urandom(300_000)))
            gone = await store.create_multipart("bkt", "gone")
            bid = (await store.buckets.get("bkt")).bucket_id
            # Drive 5 missed the Create (its write failed; it stayed online, so no
            # substitute took its place) -- the part then lands on all six.
            await drives[5].put_meta(UPLOADS, bid + bytes.fromhex(gone), None)
            await store.upload_part("bkt", "gone", gone, 1, body(os.urandom(300_000)))
            await pull(5)
            await store.abort_multipart("bkt", "gone", gone)
            await put_back(5)
            assert len(await drives[5].list_meta(PARTS)) == 2  # live's and gone's
            for p in tmp_path.rglob("chunks/*/*/*"):
                os.utime(p, (OLD, OLD))
            gc = GarbageCollector(Maintenance(store, grace=0), positions=list(range(6)),
                                  interval=1e9, window=0.0)
            await gc.collect()
            st = gc.statistics()
            assert st.part_remnants_removed == 1 and st.orphan_chunks_removed == 1
            assert [len(await d.list_meta(PARTS)) for d in drives] == [1] * 6  # live's part
            files = [p for p in tmp_path.rglob("chunks/*/*/*")]
            assert len(files) == 6  # live's part, one fragment per drive
            etag = (await store.list_parts("bkt", "live", live))[0].etag
            await store.complete_multipart("bkt", "live", live, [(1, etag)])
            assert len(await read_all(store, "live")) == 300_000
            nursery.cancel_scope.cancel()
        for d in drives:
            await d.close()

    trio.run(main)
