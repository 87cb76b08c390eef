"""Refilling a blank replacement drive: everything its slot should hold, lost keys skipped and reported."""

from __future__ import annotations

import trio
import trio.testing

from titans3.workers.healqueue import HealQueue
from titans3.workers.refill import RefillManager, RefillTracker
from titans3.workers.repairer import RepairWorker

from .harness import RotDrive, fill, make_store, read_all


def test_replaced_drive_is_refilled_and_stops_healing():
    async def main():
        store, drives, svc = make_store()
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            await store.create_bucket("bkt")
            objects = await fill(store, 15)
            old = drives[2]
            blank = RotDrive("d2-new")
            store.drives[2] = blank  # same slot, new disk
            store.healing.add(2)
            bid = (await store.buckets.get("bkt")).bucket_id
            # One key loses three more fragments: it cannot be rebuilt anywhere.
            for d in drives[3:6]:
                d.data.pop(d.versions[(bid, b"obj-004")][0].data)
            cleared = []
            mgr = RefillManager(svc, concurrency=3, on_done=cleared.append)
            await nursery.start(mgr.run)
            while store.healing:
                await trio.sleep(0.5)
            assert cleared == [2]
            st = mgr.statistics().drives[0]
            assert st.state == "done" and st.objects_checked == 15
            assert st.lost == 1 and st.lost_keys[0].startswith(f"{bid.hex()}/obj-004")
            assert st.objects_repaired == 14
            for key in objects:
                if key == "obj-004":
                    continue
                (rec,) = blank.versions[(bid, key.encode())]
                assert blank.data[rec.data] == old.data[rec.data]
            # Reads count the drive again: with two other drives gone it still serves.
            drives[0].offline = drives[1].offline = True
            assert await read_all(store, "obj-007") == objects["obj-007"]
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_refill_resumes_from_its_checkpoint_on_the_drive():
    async def main():
        store, drives, svc = make_store()
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            await store.create_bucket("bkt")
            await fill(store, 12)
            store.drives[4] = blank = RotDrive("d4-new")
            store.healing.add(4)
            t = RefillTracker(svc, 4, concurrency=2)
            seen: list[int] = []
            real = svc.repair
            stop = trio.CancelScope()

            async def counting(bid, key, **kw):
                seen.append(1)
                if len(seen) == 6:
                    stop.cancel()  # the daemon stops half-way
                return await real(bid, key, **kw)

            svc.repair = counting  # type: ignore[method-assign]
            with stop:
                await t.run()
            svc.repair = real  # type: ignore[method-assign]
            done_keys = RefillTracker(svc, 4)
            await done_keys._load()
            assert 2 <= done_keys.cur.objects < 12
            t2 = RefillTracker(svc, 4, concurrency=2)
            calls: list[bytes] = []

            async def recording(bid, key, **kw):
                calls.append(key)
                return await real(bid, key, **kw)

            svc.repair = recording  # type: ignore[method-assign]
            await t2.run()
            assert len(calls) == 12 - done_keys.cur.objects
            assert len(blank.versions) == 12
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_heal_on_read_queues_and_the_repair_worker_fixes_it():
    async def main():
        store, drives, svc = make_store()
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            await store.create_bucket("bkt")
            objects = await fill(store, 3)
            queue = HealQueue(None, 100)
            store.on_degraded = lambda b, k, vid, bad: queue.push_nowait(b, k)
            worker = RepairWorker(svc, queue, concurrency=2)
            bid = (await store.buckets.get("bkt")).bucket_id
            pos = store.placement(bid, b"obj-001")
            victim = drives[pos[0]]  # a data fragment: every read needs it
            rec = victim.versions[(bid, b"obj-001")][0]
            victim.rotten.add(rec.data)
            assert await read_all(store, "obj-001") == objects["obj-001"]
            assert len(queue.core) == 1
            await nursery.start(worker.run)
            await queue.wait_idle()
            st = worker.statistics()
            assert st.objects_repaired == 1 and st.fragments_rebuilt == 1 and st.queue_depth == 0
            assert rec.data in victim.data
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
