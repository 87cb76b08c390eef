"""titans3.core.membudget: FIFO byte grants that never exceed the capacity."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from titans3.core.membudget import Ledger, MemoryBudget


def test_ledger_grants_in_arrival_order_and_never_over_capacity() -> None:
    lg = Ledger(10)
    assert lg.request(1, 6)
    assert not lg.request(2, 6)  # does not fit beside 1
    assert not lg.request(3, 1)  # would fit, but 2 is ahead of it: no overtaking
    assert lg.waiting == 2
    assert lg.release(6) == [2, 3]
    assert lg.in_use == 7 and lg.peak == 7 and lg.waited == 2


def test_ledger_clamps_a_request_larger_than_the_budget_so_it_runs_alone() -> None:
    lg = Ledger(10)
    assert lg.request(1, 1)
    assert not lg.request(2, 50)
    assert lg.release(1) == [2]
    assert lg.in_use == 10
    assert lg.release(50) == []  # the clamped amount comes back
    assert lg.in_use == 0


def test_ledger_cancel_lets_the_next_waiter_in() -> None:
    lg = Ledger(10)
    lg.request(1, 8)
    lg.request(2, 8)
    lg.request(3, 2)
    assert lg.cancel(2) == [3]


def test_ledger_refuses_to_release_more_than_held() -> None:
    lg = Ledger(10)
    lg.request(1, 3)
    with pytest.raises(RuntimeError):
        lg.release(4)
    with pytest.raises(ValueError):
        Ledger(-1)


def test_ledger_zero_capacity_is_unlimited() -> None:
    lg = Ledger(0)
    assert all(lg.request(i, 1 << 30) for i in range(5))
    assert lg.waiting == 0 and lg.in_use == 5 << 30


def test_concurrent_holders_stay_within_capacity_and_all_finish() -> None:
    trio.run(_concurrent_holders_stay_within_capacity_and_all_finish)


async def _concurrent_holders_stay_within_capacity_and_all_finish() -> None:
    budget = MemoryBudget(100)
    seen: list[int] = []

    async def stream(n: int) -> None:
        async with budget.hold(n):
            seen.append(budget.stats().in_use)
            await trio.sleep(0.01)

    async with trio.open_nursery() as nursery:
        for i in range(30):
            nursery.start_soon(stream, 10 + (i * 7) % 60)
    assert len(seen) == 30
    assert max(seen) <= 100
    st = budget.stats()
    assert st.in_use == 0 and st.waiting == 0 and st.waited > 0 and st.peak <= 100


def test_a_large_request_is_not_starved_by_small_ones() -> None:
    trio.run(_a_large_request_is_not_starved_by_small_ones)


async def _a_large_request_is_not_starved_by_small_ones() -> None:
    budget = MemoryBudget(10)
    order: list[str] = []

    async def hold(name: str, n: int, delay: float) -> None:
        await trio.sleep(delay)
        async with budget.hold(n):
            order.append(name)
            await trio.sleep(0.05)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold, "small-0", 4, 0)
        nursery.start_soon(hold, "large", 10, 0.01)
        for i in range(1, 5):
            nursery.start_soon(hold, f"small-{i}", 4, 0.02)
    assert order[:2] == ["small-0", "large"]


def test_a_cancelled_waiter_leaves_the_queue_and_passes_its_turn_on() -> None:
    trio.run(_a_cancelled_waiter_leaves_the_queue_and_passes_its_turn_on)


async def _a_cancelled_waiter_leaves_the_queue_and_passes_its_turn_on() -> None:
    budget = MemoryBudget(10)
    got: list[str] = []
    async with trio.open_nursery() as nursery:
        first = await budget.acquire(8)

        async def waiter(name: str, n: int, scope_out: list[trio.CancelScope]) -> None:
            with trio.CancelScope() as scope:
                scope_out.append(scope)
                async with budget.hold(n):
                    got.append(name)

        big: list[trio.CancelScope] = []
        nursery.start_soon(waiter, "big", 9, big)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(waiter, "small", 2, [])
        await trio.testing.wait_all_tasks_blocked()
        assert got == []  # small fits, but big is ahead of it
        big[0].cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert got == ["small"]
        budget.release(first)
    assert budget.stats().in_use == 0 and budget.stats().waiting == 0


def test_a_hold_cancelled_before_it_starts_takes_nothing() -> None:
    async def main() -> None:
        budget = MemoryBudget(10)
        with trio.CancelScope() as scope:
            scope.cancel()
            async with budget.hold(5):
                raise AssertionError("entered a cancelled hold")
        assert budget.stats().in_use == 0

    trio.run(main)
