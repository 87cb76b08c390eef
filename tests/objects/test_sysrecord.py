"""The system-record register: majority writes, newest-of-majority reads, repair."""

from __future__ import annotations

import pytest
import trio

from titans3.core.errors import QuorumError
from titans3.objects.sysrecord import TABLE, SystemRecords, forget_local
from titans3.objects.versionid import HybridClock

from .memdrive import MemDrive


def register(n: int) -> tuple[list[MemDrive], SystemRecords]:
    drives = [MemDrive(f"d{i}") for i in range(n)]
    clock = HybridClock()
    return drives, SystemRecords(lambda: drives, lambda: clock)


def test_a_write_is_read_back_through_any_majority() -> None:
    async def main() -> None:
        drives, reg = register(5)
        assert await reg.get("x") is None
        await reg.put("x", b"one")
        for d in drives[:2]:
            d.offline = True
        assert await reg.get("x") == b"one"
        await reg.put("x", b"two")  # three of five take it
        for d in drives[:2]:
            d.offline = False
        for d in drives[2:4]:
            d.offline = True  # only one drive that saw "two" still answers
        assert await reg.get("x") == b"two"

    trio.run(main)


def test_a_write_without_a_majority_fails_and_a_delete_is_a_tombstone() -> None:
    async def main() -> None:
        drives, reg = register(3)
        await reg.put("x", b"v")
        drives[0].offline = drives[1].offline = True
        with pytest.raises(QuorumError):
            await reg.put("x", b"w")
        with pytest.raises(QuorumError):
            await reg.get("x")
        # The reachable drive's newest: the failed write landed there (a write
        # that missed its quorum is not undone, as with any quorum register).
        assert await reg.get("x", partial=True) == b"w"
        drives[0].offline = drives[1].offline = False
        await reg.put("x", None)
        assert await reg.get("x") is None
        assert all(b"x" in d.tables[TABLE] for d in drives)  # kept as a tombstone

    trio.run(main)


def test_a_partial_read_never_says_a_record_is_absent() -> None:
    async def main() -> None:
        drives, reg = register(3)
        drives[2].offline = True
        await reg.put("x", b"v")
        drives[2].offline = False
        drives[0].offline = drives[1].offline = True  # only the drive that never saw it answers
        with pytest.raises(QuorumError):
            await reg.get("x", partial=True)

    trio.run(main)


def test_reads_repair_drives_that_missed_the_record() -> None:
    async def main() -> None:
        drives, reg = register(3)
        drives[2].offline = True
        await reg.put("x", b"v")
        drives[2].offline = False
        assert b"x" not in drives[2].tables.get(TABLE, {})
        assert await reg.get("x") == b"v"
        assert drives[2].tables[TABLE][b"x"] == drives[0].tables[TABLE][b"x"]

    trio.run(main)


def test_forget_local_leaves_no_tombstone() -> None:
    async def main() -> None:
        drives, reg = register(3)
        await reg.put("x", b"mine")
        await forget_local("x", drives[:2])
        assert all(b"x" not in d.tables[TABLE] for d in drives[:2])
        assert await reg.get("x") == b"mine"  # still on one drive: newest of the answers

    trio.run(main)
