"""The NBD system records' register: a compare-and-set that wins does not wait for slow drives."""

from __future__ import annotations

import itertools

import trio

from titans3.nbd.register import QuorumRegister

from ..objects.memdrive import MemDrive


class Counter:
    def __init__(self) -> None:
        self._n = itertools.count(1)

    def new_id(self) -> str:
        return f"{next(self._n):020d}"

    def observe(self, version_id: str) -> None:
        pass


class QueuedDrive(MemDrive):
    """A drive whose commits wait behind others (its data writes): swaps wait for ``go``."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.go = trio.Event()
        self.late = 0

    async def swap_meta(self, table, key, value, expect):  # type: ignore[no-untyped-def]
        await self.go.wait()
        self.late += 1
        return await super().swap_meta(table, key, value, expect)


def test_an_update_returns_once_a_majority_took_it_not_when_the_slowest_drive_does() -> None:
    trio.run(_majority_is_enough)


async def _majority_is_enough() -> None:
    drives: list[MemDrive] = [MemDrive(f"d{i}") for i in range(4)] + [QueuedDrive("q4"), QueuedDrive("q5")]
    reg = QuorumRegister(lambda: drives, "nbd-leases", Counter())
    with trio.fail_after(2):  # the queued drives never answer meanwhile
        for until in range(1, 4):
            doc = await reg.update("vol", lambda cur, u=until: {"host": "h1", "until": u})
            assert doc is not None and doc["until"] == until
            assert (await reg.get("vol"))["until"] == until  # type: ignore[index]
    slow = [d for d in drives if isinstance(d, QueuedDrive)]
    assert all(d.late == 0 for d in slow) and all(not d.tables.get("nbd-leases") for d in slow)
    # Once they answer again, any majority -- even one with both laggards
    # and only two of the drives that took the writes -- reads the newest.
    for d in slow:
        d.go.set()
    with trio.fail_after(2):
        await reg.update("vol", lambda cur: {**(cur or {}), "until": 9})
    drives[0].offline = drives[1].offline = True
    assert (await reg.get("vol"))["until"] == 9  # type: ignore[index]


def test_a_swap_without_a_majority_still_loses_and_undoes_its_writes() -> None:
    trio.run(_loser)


async def _loser() -> None:
    drives: list[MemDrive] = [MemDrive(f"d{i}") for i in range(6)]
    reg = QuorumRegister(lambda: drives, "t", Counter())
    await reg.update("k", lambda cur: {"n": 1})
    seen = await reg.read("k")
    await reg.update("k", lambda cur: {"n": 2})  # another writer got there first
    assert await reg.swap("k", seen, {"n": 3}) is None
    assert (await reg.get("k"))["n"] == 2  # type: ignore[index]
