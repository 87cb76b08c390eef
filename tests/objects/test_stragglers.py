"""Write phases that stop waiting for a slow drive (titans3/objects/stragglers.py)."""

from __future__ import annotations

import trio
from trio.testing import MockClock

from titans3.objects.stragglers import Cutoff, Phases


def test_the_cutoff_is_its_floor_or_a_multiple_of_the_quorums_time() -> None:
    c = Cutoff(floor=1.0, factor=4.0)
    assert c.extra(0.01) == 1.0
    assert c.extra(0.5) == 2.0
    assert not Cutoff(0).enabled and c.enabled


def _job(delay: float, ok: bool, log: list[int], i: int):
    async def run() -> bool:
        await trio.sleep(delay)
        log.append(i)
        return ok
    return run


def test_a_phase_ends_at_quorum_plus_the_cutoff_and_the_straggler_finishes_later() -> None:
    trio.run(_test_a_phase_ends_at_quorum_plus_the_cutoff_and_the_straggler_finishes_later, clock=MockClock(autojump_threshold=0))


async def _test_a_phase_ends_at_quorum_plus_the_cutoff_and_the_straggler_finishes_later() -> None:
    done: list[int] = []
    cleaned: list[int] = []
    async with trio.open_nursery() as bg:
        phases = Phases(bg.start_soon, Cutoff(floor=0.2, factor=0))
        t0 = trio.current_time()
        jobs = {i: _job(0.01, True, done, i) for i in range(5)}
        jobs[5] = _job(3.0, True, done, 5)
        cut = await phases.gather(jobs, quorum=5)
        took = trio.current_time() - t0
        assert cut == [5] and phases.cut == {5}
        assert 0.2 <= took < 1.0, took
        assert phases.busy(5)

        async def clean() -> None:
            cleaned.append(5)
        await phases.after(5, clean)
        assert cleaned == []  # never beside the call still running
        await trio.sleep(3.5)
        assert done[-1] == 5 and cleaned == [5] and not phases.busy(5)


def test_the_cutoff_never_starts_before_the_quorum_succeeded() -> None:
    trio.run(_test_the_cutoff_never_starts_before_the_quorum_succeeded, clock=MockClock(autojump_threshold=0))


async def _test_the_cutoff_never_starts_before_the_quorum_succeeded() -> None:
    done: list[int] = []
    async with trio.open_nursery() as bg:
        phases = Phases(bg.start_soon, Cutoff(floor=0.05, factor=0))
        # four drives fail at once; the fifth and sixth are slow but needed for W = 2
        jobs = {i: _job(0.0, False, done, i) for i in range(4)}
        jobs[4] = _job(0.5, True, done, 4)
        jobs[5] = _job(0.6, True, done, 5)
        assert await phases.gather(jobs, quorum=2) == []
        assert sorted(done) == list(range(6))


def test_without_a_background_nursery_a_phase_waits_for_every_drive() -> None:
    trio.run(_test_without_a_background_nursery_a_phase_waits_for_every_drive, clock=MockClock(autojump_threshold=0))


async def _test_without_a_background_nursery_a_phase_waits_for_every_drive() -> None:
    done: list[int] = []
    phases = Phases(None, Cutoff(floor=0.05))
    t0 = trio.current_time()
    jobs = {0: _job(0.0, True, done, 0), 1: _job(0.0, True, done, 1), 2: _job(0.4, True, done, 2)}
    assert await phases.gather(jobs, quorum=2) == []
    assert trio.current_time() - t0 >= 0.4 and sorted(done) == [0, 1, 2]


def test_a_job_that_raises_counts_as_failed_and_does_not_end_the_background() -> None:
    trio.run(_test_a_job_that_raises_counts_as_failed_and_does_not_end_the_background, clock=MockClock(autojump_threshold=0))


async def _test_a_job_that_raises_counts_as_failed_and_does_not_end_the_background() -> None:
    async def boom() -> bool:
        raise RuntimeError("writer is closed")

    done: list[int] = []
    async with trio.open_nursery() as bg:
        phases = Phases(bg.start_soon, Cutoff(floor=0.05, factor=0))
        jobs = {0: boom, 1: _job(0.0, True, done, 1), 2: _job(0.0, True, done, 2)}
        assert await phases.gather(jobs, quorum=2) == []
