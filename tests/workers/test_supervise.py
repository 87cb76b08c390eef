"""workers/supervise.py: a failing worker restarts with back-off; one that
cannot start fails the start; shutdown is never swallowed."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from titans3.core.errors import QuorumError
from titans3.workers import supervise as sv


class Flaky:
    """Fails ``failures`` times after starting, then runs until cancelled."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.starts: list[float] = []

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self.starts.append(trio.current_time())
        task_status.started()
        await trio.sleep(0.5)
        if self.failures:
            self.failures -= 1
            raise QuorumError()
        await trio.sleep_forever()


def test_a_worker_that_fails_after_starting_is_restarted_with_growing_backoff() -> None:
    clock = trio.testing.MockClock(autojump_threshold=0)
    worker = Flaky(failures=3)
    before = sv.RESTARTS["flaky"]

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(sv.supervise, "flaky", worker.run)
            await trio.sleep(100)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=clock)
    assert len(worker.starts) == 4  # three failures, then a run that lasts
    gaps = [b - a for a, b in zip(worker.starts, worker.starts[1:], strict=False)]
    assert gaps == pytest.approx([0.5 + 1, 0.5 + 2, 0.5 + 4])
    assert sv.RESTARTS["flaky"] - before == 3


def test_a_worker_that_cannot_start_fails_the_start() -> None:
    async def broken(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        raise ValueError("bad config")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(sv.supervise, "broken", broken)

    with pytest.raises(BaseExceptionGroup) as err:
        trio.run(main)
    assert err.value.subgroup(ValueError) is not None


def test_shutdown_cancels_a_supervised_worker() -> None:
    worker = Flaky(failures=0)

    async def main() -> None:
        with trio.move_on_after(1):
            await sv.supervise("calm", worker.run)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert len(worker.starts) == 1
