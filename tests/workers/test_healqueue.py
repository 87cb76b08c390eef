"""The heal queue: dedupe, bound, retries, re-reports in flight, persistence, backpressure."""

from __future__ import annotations

import trio
import trio.testing

from titans3.workers.healqueue import (
    DEFER_MAX_AGE,
    DEFER_RETRY,
    MAX_ATTEMPTS,
    HealQueue,
    HealQueueCore,
)

B = b"\x01" * 8


def test_a_key_reported_twice_is_one_entry():
    q = HealQueueCore(10)
    assert q.push(B, b"k", "read", 0.0) and q.push(B, b"k", "scrub", 1.0)
    assert len(q) == 1 and q.pushed == 1


def test_full_queue_drops_new_keys_and_counts_them():
    q = HealQueueCore(2)
    q.push(B, b"a", "read", 0)
    q.push(B, b"b", "read", 0)
    assert not q.push(B, b"c", "read", 0)
    assert q.dropped_full == 1 and len(q) == 2
    assert q.push(B, b"a", "read", 0)  # a key already queued is never "dropped"


def test_entries_come_out_oldest_first_and_only_when_due():
    q = HealQueueCore(10)
    q.push(B, b"a", "read", 0)
    q.push(B, b"b", "read", 0)
    e = q.take(0)
    assert e is not None and e.key == b"a" and e.in_flight
    q.finish(e, 0, retry=True)  # back off
    assert q.take(1).key == b"b"
    assert q.take(1) is None
    assert q.next_due() is not None and q.next_due() > 1


def test_retries_give_up_after_max_attempts():
    q = HealQueueCore(10)
    q.push(B, b"a", "read", 0)
    now = 0.0
    for _ in range(MAX_ATTEMPTS):
        e = q.take(now)
        assert e is not None
        q.finish(e, now, retry=True)
        now += 10_000
    assert len(q) == 0 and q.dropped_attempts == 1


def test_deferred_repairs_wait_without_using_up_attempts():
    q = HealQueueCore(10)
    q.push(B, b"a", "write", 0)
    now = 0.0
    for _ in range(MAX_ATTEMPTS * 3):  # a host down for a long time
        e = q.take(now)
        assert e is not None
        q.finish(e, now, retry=True, deferred=True)
        assert q.take(now + DEFER_RETRY - 1) is None
        now += DEFER_RETRY
    assert len(q) == 1 and q.dropped_attempts == 0
    e = q.take(DEFER_MAX_AGE + 1)
    q.finish(e, DEFER_MAX_AGE + 1, retry=True, deferred=True)  # given up to the scrubber
    assert len(q) == 0 and q.dropped_attempts == 1


def test_a_delayed_push_is_not_due_before_its_delay():
    q = HealQueueCore(10)
    q.push(B, b"a", "write", 100.0, delay=10.0)
    assert q.take(105.0) is None
    assert q.take(110.0).key == b"a"


def test_waking_deferred_entries_makes_them_due_at_once():
    q = HealQueueCore(10)
    q.push(B, b"a", "write", 0)
    q.push(B, b"b", "write", 0)
    a = q.take(0)
    q.finish(a, 0, retry=True, deferred=True)
    b = q.take(0)  # still in flight when the host comes back: not touched
    assert q.wake_deferred(1.0) == 1
    assert q.take(1.0).key == b"a"
    q.finish(b, 1.0, retry=False)
    assert q.wake_deferred(1.0) == 0


def test_report_during_repair_rearms_the_entry():
    q = HealQueueCore(10)
    q.push(B, b"a", "read", 0)
    e = q.take(0)
    q.push(B, b"a", "read", 1)  # the object broke again while being repaired
    q.finish(e, 2, retry=False)
    again = q.take(2)
    assert again is not None and again.key == b"a"


def test_queue_survives_a_restart(tmp_path):
    path = tmp_path / "heal.msgpack"

    async def first():
        q = HealQueue(path, 100)
        q.push_nowait(B, b"a")
        q.push_nowait(B, b"\xffbinary key")
        await q.persist()

    trio.run(first)
    q2 = HealQueue(path, 100)
    assert q2.loaded == 2
    assert {e.key for e in q2.core.entries.values()} == {b"a", b"\xffbinary key"}


def test_put_waits_for_room_instead_of_dropping():
    async def main():
        q = HealQueue(None, 1)
        q.push_nowait(B, b"a")
        done = []

        async def producer():
            await q.put(B, b"b")
            done.append(True)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(producer)
            await trio.testing.wait_all_tasks_blocked()
            assert not done
            e = await q.get()
            q.finish(e, retry=False)
            await trio.testing.wait_all_tasks_blocked()
            assert done and {x.key for x in q.core.entries.values()} == {b"b"}

    trio.run(main)
