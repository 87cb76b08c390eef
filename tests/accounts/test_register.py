"""The system-record quorum register: majority reads and writes, compare-and-set updates."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio

from titans3.accounts import register
from titans3.accounts.register import Envelope, SystemTable, forget_local
from titans3.core.errors import DriveOffline, OperationAborted, QuorumError
from titans3.objects.versionid import HybridClock

from ..objects.memdrive import MemDrive


def clock_of() -> Callable[[], HybridClock]:
    clock = HybridClock()  # one host's clock, read by the table on every call
    return lambda: clock


def table(n: int = 3) -> tuple[SystemTable, list[MemDrive]]:
    drives = [MemDrive(f"d{i}") for i in range(n)]
    return SystemTable(lambda: drives, clock_of(), "t"), drives


async def test_a_write_reads_back_and_survives_a_minority_down():
    t, drives = table(5)
    await t.write(b"k", {"v": 1})
    drives[0].offline = drives[1].offline = True
    env = await t.read(b"k")
    assert env is not None and env.doc == {"v": 1}
    drives[2].offline = True
    with pytest.raises(QuorumError):
        await t.read(b"k")


async def test_newest_wins_over_a_stale_drive():
    t, drives = table(3)
    await t.write(b"k", 1)
    drives[2].offline = True
    await t.write(b"k", 2)
    drives[2].offline = False
    drives[0].offline = True  # the majority left includes the stale drive
    env = await t.read(b"k")
    assert env is not None and env.doc == 2
    assert (await t.list())[b"k"].doc == 2


async def test_update_is_read_modify_write():
    t, _ = table(3)
    await t.update(b"n", lambda cur: (cur or 0) + 1)
    await t.update(b"n", lambda cur: (cur or 0) + 1)
    env = await t.read(b"n")
    assert env is not None and env.doc == 2
    await t.update(b"n", lambda cur: None)
    env = await t.read(b"n")
    assert env is not None and env.deleted


async def test_concurrent_updates_lose_nothing():
    t, drives = table(3)
    other = SystemTable(lambda: drives, clock_of(), "t")  # another host on the same drives
    async with trio.open_nursery() as nursery:
        for i in range(10):
            nursery.start_soon(t.update, b"set", lambda cur, i=i: sorted({*(cur or []), f"a{i}"}))
            nursery.start_soon(other.update, b"set", lambda cur, i=i: sorted({*(cur or []), f"b{i}"}))
    env = await t.read(b"set")
    assert env is not None and len(env.doc) == 20


async def test_update_gives_up_when_it_keeps_losing(monkeypatch):
    monkeypatch.setattr(register, "UPDATE_BUDGET", 0.5)  # seconds, not a count of rounds
    t, drives = table(3)
    rival = HybridClock()
    for d in drives:  # every drive changes between our read and our swap
        original = d.swap_meta

        async def racing(table_, key, value, expect, d=d, original=original):
            d.tables.setdefault(table_, {})[key] = Envelope(rival.new_id(), "theirs").pack()
            return await original(table_, key, value, expect)

        d.swap_meta = racing  # type: ignore[method-assign]
    started = trio.current_time()
    with pytest.raises(OperationAborted):
        await t.update(b"k", lambda cur: "mine")
    assert trio.current_time() - started <= 0.5


async def test_a_refusing_mutation_writes_nothing():
    t, drives = table(3)

    def refuse(cur):
        raise ValueError("no")

    with pytest.raises(ValueError):
        await t.update(b"k", refuse)
    assert all(not d.tables.get("t") for d in drives)


async def test_a_listing_repairs_drives_that_missed_a_record():
    t, drives = table(3)
    drives[2].offline = True
    await t.write(b"k", "v1")
    drives[2].offline = False
    more = [*drives, MemDrive("d3"), MemDrive("d4")]  # a cluster join adds empty drives
    grown = SystemTable(lambda: more, clock_of(), "t")
    assert (await grown.list(repair=True))[b"k"].doc == "v1"
    assert all(d.tables["t"][b"k"] == drives[0].tables["t"][b"k"] for d in more)


async def test_a_round_that_reached_a_minority_is_finished_not_applied_twice():
    # The first round's accepts fail on two drives of three (say their host
    # dropped the answers): the update retries, finds its own envelope as the
    # newest on the one drive that took it, and completes it instead of adding
    # one more.
    t, drives = table(3)
    failed: list[str] = []
    for d in drives[1:]:
        original = d.swap_meta

        async def flaky(table_, key, value, expect, d=d, original=original):
            if Envelope.unpack(value).vid and d.drive_id not in failed:  # an accept, not a promise
                failed.append(d.drive_id)
                raise DriveOffline(d.drive_id)
            return await original(table_, key, value, expect)

        d.swap_meta = flaky  # type: ignore[method-assign]
    env = await t.update(b"n", lambda cur: (cur or 0) + 1)
    assert env.doc == 1 and len(failed) == 2
    assert await t.get(b"n") == 1


async def test_an_update_whose_lost_round_a_rival_built_on_is_neither_refused_nor_applied_twice():
    # Our round's accept lands on one drive of three; before we retry, another
    # host's round finds that envelope (the newest its promises returned) and
    # builds on it, so our change is in.  The retry must see that: applying the
    # change again would refuse it ("taken", as a KMS alias) or make it twice.
    t, drives = table(3)
    rival = SystemTable(lambda: drives, clock_of(), "t")
    ours: list[str] = []  # the op id of our first accept
    cut_done: set[int] = set()  # drives that saw it
    on_first, rival_done = trio.Event(), trio.Event()

    def add(tag: str) -> Callable[[list[str] | None], list[str]]:
        def mutate(cur: list[str] | None) -> list[str]:
            if tag in (cur or []):
                raise ValueError(f"{tag} is taken")
            return [*(cur or []), tag]
        return mutate

    for i, d in enumerate(drives):
        original = d.swap_meta

        async def cut(table_, key, value, expect, i=i, d=d, original=original):
            env = Envelope.unpack(value)
            if env.promise or (ours and env.op != ours[0]) or i in cut_done:
                return await original(table_, key, value, expect)  # not our first accept
            ours[:] = [env.op]
            cut_done.add(i)
            if i == 0:
                ok = await original(table_, key, value, expect)
                on_first.set()
                return ok
            await on_first.wait()
            if i == 1:
                await rival.update(b"k", add("b"))  # builds on our envelope on drive 0
                rival_done.set()
            await rival_done.wait()
            raise DriveOffline(d.drive_id)

        d.swap_meta = cut  # type: ignore[method-assign]
    env = await t.update(b"k", add("a"))
    assert rival_done.is_set()
    assert env.doc == ["a", "b"] and await t.get(b"k") == ["a", "b"]


async def test_many_updaters_on_three_hosts_lose_nothing():
    t, drives = table(5)
    hosts = [t, SystemTable(lambda: drives, clock_of(), "t"), SystemTable(lambda: drives, clock_of(), "t")]
    async with trio.open_nursery() as nursery:
        for n, h in enumerate(hosts):
            for i in range(8):
                nursery.start_soon(h.update, b"set", lambda cur, tag=f"{n}.{i}": sorted({*(cur or []), tag}))
    assert len(await t.get(b"set")) == 24


async def test_a_promise_alone_is_no_record():
    t, drives = table(3)
    for d in drives:
        d.tables.setdefault("t", {})[b"k"] = Envelope("", None, False, t.clock.new_id()).pack()
    assert await t.read(b"k") is None
    assert await t.list() == {}
    assert (await t.update(b"k", lambda cur: (cur or 0) + 1)).doc == 1


async def test_reads_may_be_partial_but_never_say_absent_and_repair_on_request():
    t, drives = table(3)
    drives[2].offline = True
    await t.write(b"k", "v")
    drives[2].offline = False
    assert await t.get(b"k", repair=True) == "v"
    assert drives[2].tables["t"][b"k"] == drives[0].tables["t"][b"k"]
    await forget_local("t", b"k", drives[2:])
    drives[0].offline = drives[1].offline = True
    with pytest.raises(QuorumError):
        await t.get(b"k", partial=True)  # only the drive without it answers
    drives[0].offline = False
    drives[2].offline = True
    assert await t.get(b"k", partial=True) == "v"
    with pytest.raises(QuorumError):
        await t.get(b"k")


async def test_the_first_registers_records_read_back():
    import msgpack

    t, drives = table(3)
    for d in drives:
        d.tables.setdefault("t", {})[b"old"] = msgpack.packb({"vid": t.clock.new_id(), "v": b"hash"})
    assert await t.get(b"old") == b"hash"
    await t.delete(b"old")
    assert await t.get(b"old") is None
