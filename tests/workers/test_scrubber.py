"""The scrubber finds bad, missing and unrecorded fragments, queues them, and resumes after a restart."""

from __future__ import annotations

import trio
import trio.testing

from titans3.workers.healqueue import HealQueue
from titans3.workers.scrubber import Scrubber

from .harness import fill, make_store


def test_scrub_pass_queues_exactly_the_damaged_keys():
    async def main():
        store, drives, svc = make_store()
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            await store.create_bucket("bkt")
            await fill(store, 12)
            bid = (await store.buckets.get("bkt")).bucket_id
            # obj-001: a bad block; obj-002: a fragment file gone; obj-003: a record gone.
            rec1 = drives[0].versions[(bid, b"obj-001")][0]
            drives[0].rotten.add(rec1.data)
            rec2 = drives[3].versions[(bid, b"obj-002")][0]
            del drives[3].data[rec2.data]
            del drives[5].versions[(bid, b"obj-003")]
            queue = HealQueue(None, 100)
            scrub = Scrubber(svc, queue, positions=list(range(6)), rate=0, interval=1e9)
            await nursery.start(scrub.run)
            assert scrub.start_pass()
            await scrub.wait_pass()
            st = scrub.statistics()
            assert (st.corrupt, st.missing, st.records_missing) == (1, 1, 1)
            assert st.objects_checked == 12 and st.fragments_checked == 12 * 6 - 1  # one record is gone
            assert drives[0].quarantined == [rec1.data]
            assert {e.key for e in queue.core.entries.values()} == {b"obj-001", b"obj-002",
                                                                     b"obj-003"}
            assert st.state == "idle" and st.last_pass_finished is not None
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_interrupted_pass_resumes_from_the_checkpoint_not_from_zero():
    async def main():
        store, drives, svc = make_store()
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            await store.create_bucket("bkt")
            await fill(store, 20)
            # A slow first run, killed part-way through.
            first = Scrubber(svc, HealQueue(None, 100), positions=list(range(6)),
                             rate=200_000, interval=1e9, checkpoint_every=0)
            async with trio.open_nursery() as inner:
                await inner.start(first.run)
                first.start_pass()
                while min(c.objects for c in first.cursors.values()) < 5:
                    await trio.sleep(0.5)
                inner.cancel_scope.cancel()
            done_before = {p: c.objects for p, c in first.cursors.items()}
            assert all(c.running for c in first.cursors.values())
            assert all(5 <= n < 20 for n in done_before.values())
            # "Restart": a new scrubber over the same drives picks the pass up by itself.
            second = Scrubber(svc, HealQueue(None, 100), positions=list(range(6)), rate=0,
                              interval=1e9)
            await nursery.start(second.run)
            await second.wait_pass()
            st = second.statistics()
            for d in st.drives:
                assert d.resumed_from_keys == done_before[d.position]
                assert d.keys_scanned == 20, "each key once: resumed, not restarted"
            assert st.objects_checked == 20
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_a_drive_that_is_away_does_not_hold_up_the_pass_and_catches_up_later():
    async def main():
        store, drives, svc = make_store()
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            await store.create_bucket("bkt")
            await fill(store, 5)
            queue = HealQueue(None, 100)
            scrub = Scrubber(svc, queue, positions=list(range(6)), rate=0, interval=1e9)
            await nursery.start(scrub.run)
            drives[4].offline = True
            scrub.start_pass()
            await scrub.wait_pass()
            st = scrub.statistics()
            by = {d.position: d for d in st.drives}
            assert by[4].state == "offline" and by[4].keys_scanned == 0
            assert all(by[p].keys_scanned == 5 for p in (0, 1, 2, 3, 5))
            assert st.records_missing == 0, "a drive that is away is not 'missing records'"
            drives[4].offline = False
            while scrub.statistics().drives[4].keys_scanned < 5:
                await trio.sleep(1)
            assert not scrub.cursors[4].running
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
