"""The hint-replay worker: passes over its drives, counters, kick."""

from __future__ import annotations

from dataclasses import dataclass

import trio
import trio.testing

from titans3.workers.handoff import HandoffReplayer


@dataclass
class Result:
    moved: int = 0
    bytes_moved: int = 0
    pending: int = 0
    errors: int = 0
    held: int = 0


def test_a_pass_replays_every_local_drive_and_counts_what_moved_and_what_waits():
    calls: list[int] = []

    async def replay(pos: int) -> Result:
        calls.append(pos)
        if pos == 3:
            raise RuntimeError("drive exploded")
        return Result(moved=pos, bytes_moved=10 * pos, pending=1, held=2)

    async def main() -> None:
        w = HandoffReplayer(replay, [1, 2, 3])
        await w.run_pass()
        s = w.statistics()
        assert calls == [1, 2, 3]
        assert (s.passes, s.hints_replayed, s.bytes_replayed, s.hints_pending, s.hints_held,
                s.errors) == (1, 3, 30, 2, 4, 1)
        assert s.state == "idle" and s.last_pass is not None

    trio.run(main)


def test_kick_starts_a_pass_before_the_interval_ends():
    passes = 0

    async def replay(pos: int) -> Result:
        nonlocal passes
        passes += 1
        return Result()

    async def main() -> None:
        w = HandoffReplayer(replay, [0], interval=3600)
        async with trio.open_nursery() as nursery:
            await nursery.start(w.run)
            await trio.testing.wait_all_tasks_blocked()
            assert passes == 1
            w.kick()
            await trio.testing.wait_all_tasks_blocked()
            assert passes == 2
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock())
