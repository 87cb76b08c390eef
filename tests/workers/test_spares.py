"""Rebuilding a failed drive on spare drives (titans3/workers/spares.py, objects/spares.py)."""

from __future__ import annotations

import itertools

import trio
import trio.testing

from titans3.drive.protocol import DriveState
from titans3.workers.spares import SpareRebuilder

from .harness import RotDrive, fill, make_store, read_all


def fail(d: RotDrive) -> None:
    """The failure verdict (not a brief outage): every call refused, state FAILED."""
    d.offline = True
    d.__class__ = _Failed


class _Failed(RotDrive):
    @property
    def state(self) -> DriveState:
        return DriveState.FAILED


async def _until_done(mgr: SpareRebuilder, n: int) -> None:
    while len(mgr.trackers) < n or any(t.state != "done" for t in mgr.trackers.values()):
        await trio.sleep(0.5)


def test_a_failed_drive_is_rebuilt_on_spares_and_two_more_failures_lose_nothing() -> None:
    async def main() -> None:
        store, drives, svc = make_store(8)
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            await store.create_bucket("bkt")
            objects = await fill(store, 16)
            bid = (await store.buckets.get("bkt")).bucket_id
            stripes = {k: set(store.context.placement(bid, k.encode())[:6]) for k in objects}
            fail(drives[3])
            mgr = SpareRebuilder(svc, range(8), concurrency=3)
            await nursery.start(mgr.run)
            await _until_done(mgr, 1)
            st = mgr.statistics().drives[0]
            assert st.objects_rebuilt == sum(3 in s for s in stripes.values()) > 0, st
            assert st.no_spare == 0 and st.retry_pending == 0
            y, z = max(itertools.combinations([i for i in range(8) if i != 3], 2),
                       key=lambda p: sum({3, *p} <= s for s in stripes.values()))
            assert any({3, y, z} <= s for s in stripes.values())
            fail(drives[y])
            fail(drives[z])
            for key, data in objects.items():
                assert await read_all(store, key) == data, key
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_a_ring_without_drives_outside_the_stripe_has_no_spare() -> None:
    async def main() -> None:
        store, drives, svc = make_store(6)
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            await store.create_bucket("bkt")
            await fill(store, 5)
            fail(drives[1])
            mgr = SpareRebuilder(svc, range(6))
            await nursery.start(mgr.run)
            await _until_done(mgr, 1)
            st = mgr.statistics().drives[0]
            assert st.objects_checked == 5 and st.no_spare == 5 and st.fragments_rebuilt == 0
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
