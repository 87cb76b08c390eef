"""titans3.core.appqueue: a bounded FIFO with trio checkpoint semantics."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from titans3.core.appqueue import AppQueue


def test_messages_come_out_in_order_and_put_waits_at_capacity() -> None:
    async def main() -> None:
        q = AppQueue(2)
        await q.put(1)
        await q.put(2)
        blocked = trio.Event()
        done = trio.Event()

        async def third() -> None:
            blocked.set()
            await q.put(3)
            done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(third)
            await blocked.wait()
            await trio.testing.wait_all_tasks_blocked()
            assert not done.is_set() and len(q) == 2  # never more than capacity
            assert await q.get() == 1
            await done.wait()
            assert [await q.get(), await q.get()] == [2, 3]

    trio.run(main)


def test_get_waits_for_a_message() -> None:
    async def main() -> None:
        q = AppQueue(2)
        got: list[int] = []

        async def getter() -> None:
            got.append(await q.get())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(getter)
            await trio.testing.wait_all_tasks_blocked()
            assert got == []
            await q.put(7)
        assert got == [7]

    trio.run(main)


def test_a_cancelled_put_or_get_has_no_effect() -> None:
    async def main() -> None:
        q = AppQueue(1)
        await q.put("a")
        with trio.move_on_after(0.01):
            await q.put("parked, then cancelled")
        assert len(q) == 1 and await q.get() == "a"
        with trio.move_on_after(0.01):
            await q.get()  # parked on an empty queue, then cancelled
        await q.put("b")
        assert await q.get() == "b"
        with trio.CancelScope() as scope:
            scope.cancel()
            with pytest.raises(trio.Cancelled):
                await q.put("already cancelled")
        assert len(q) == 0

    trio.run(main)


def test_the_fast_path_still_yields_to_other_tasks() -> None:
    async def main() -> None:
        q = AppQueue(1000)
        ran = []

        async def other() -> None:
            ran.append(True)

        async with trio.open_nursery() as nursery:
            # trio runs a batch of ready tasks in random order: two checkpoints
            # guarantee a task started before them has run
            nursery.start_soon(other)
            await q.put(1)  # space available: still a checkpoint
            await q.put(2)
            assert ran
            ran.clear()
            nursery.start_soon(other)
            await q.get()
            await q.get()
            assert ran

    trio.run(main)


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        AppQueue(0)
