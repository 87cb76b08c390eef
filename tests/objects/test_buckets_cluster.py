"""BucketTable in cluster mode (titans3/objects/buckets.py, ``cache=False``): two
hosts' tables over the same drives see each other's writes at once."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from titans3.core.errors import (
    BucketAlreadyOwnedByYou,
    NoSuchBucket,
    OperationAborted,
    QuorumError,
)
from titans3.objects.buckets import RECENT_TTL, BucketRecord, BucketTable
from titans3.objects.versionid import HybridClock

from .memdrive import MemDrive


def test_uncached_tables_see_other_hosts_writes_immediately() -> None:
    async def main() -> None:
        drives = [MemDrive(f"d{i}") for i in range(6)]
        a = BucketTable(drives, HybridClock(), cache=False)
        b = BucketTable(drives, HybridClock(), cache=False)
        cached = BucketTable(drives, HybridClock())
        with pytest.raises(NoSuchBucket):
            await b.get("photos")
        assert await cached.list() == []
        made = await a.create("photos")
        assert (await b.get("photos")).bucket_id == made.bucket_id
        assert [r.name for r in await b.list()] == ["photos"]
        await b.update("photos", versioning="Enabled")
        assert (await a.get("photos")).versioning == "Enabled"
        await a.delete("photos")
        with pytest.raises(NoSuchBucket):
            await b.get("photos")
        assert await b.list() == []
        # A process-local cache is what single-host mode keeps: it does not see b's writes.
        assert [r.name for r in await cached.list()] == []

    trio.run(main)


def test_an_uncached_read_needs_a_majority_and_takes_the_newest() -> None:
    async def main() -> None:
        drives = [MemDrive(f"d{i}") for i in range(6)]
        a = BucketTable(drives, HybridClock(), cache=False)
        await a.create("logs")
        for d in drives[:2]:
            d.offline = True
        await a.update("logs", versioning="Enabled")  # 4 of 6 took it: a majority
        for d in drives[:2]:
            d.offline = False
        for d in drives[2:4]:
            d.offline = True  # the survivors of the write are now partly gone
        assert (await a.get("logs")).versioning == "Enabled"
        drives[4].offline = True
        await trio.sleep(RECENT_TTL * 2)  # past the reuse window: a real quorum read again
        with pytest.raises(QuorumError):
            await a.get("logs")

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_an_existing_bucket_is_reused_briefly_but_absence_is_never_cached() -> None:
    async def main() -> None:
        drives = [MemDrive(f"d{i}") for i in range(6)]
        writer = BucketTable(drives, HybridClock(), cache=False)
        reader = BucketTable(drives, HybridClock(), cache=False)
        with pytest.raises(NoSuchBucket):
            await reader.get("logs")
        await writer.create("logs")
        assert (await reader.get("logs")).name == "logs"  # absence was not remembered
        await writer.update("logs", versioning="Enabled")
        assert (await reader.get("logs")).versioning == ""  # within the window: reused
        await trio.sleep(RECENT_TTL * 2)
        assert (await reader.get("logs")).versioning == "Enabled"
        assert (await writer.get("logs")).versioning == "Enabled"  # own writes: at once

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_two_hosts_creating_one_name_at_once_never_both_win() -> None:
    async def main() -> None:
        drives = [MemDrive(f"d{i}") for i in range(6)]
        hosts = [BucketTable(drives, HybridClock(), cache=False) for _ in range(2)]
        wins = 0
        for n in range(40):  # trio schedules the two creates in a random order each time
            name = f"race-{n:02d}"
            made: list[BucketRecord] = []
            refused: list[Exception] = []

            async def create(t: BucketTable, name: str = name, made=made, refused=refused) -> None:
                try:
                    made.append(await t.create(name))
                except (BucketAlreadyOwnedByYou, OperationAborted) as e:
                    refused.append(e)

            async with trio.open_nursery() as nursery:
                for t in hosts:
                    nursery.start_soon(create, t)
            assert len(made) <= 1 and len(made) + len(refused) == 2
            if made:
                wins += 1
                # Every drive converged on the winner: no second bucket id anywhere.
                ids = {BucketRecord.unpack(d.tables["buckets"][name.encode()]).bucket_id
                       for d in drives}
                assert ids == {made[0].bucket_id}
                assert (await hosts[1].get(name)).bucket_id == made[0].bucket_id
            else:  # a split: both backed off and left nothing behind
                assert all(name.encode() not in d.tables.get("buckets", {}) for d in drives)
        assert wins >= 20  # a split needs a near tie; most rounds have a winner

    trio.run(main)


class CompetitorFirst(MemDrive):
    """A drive where another host's create lands between our read and our swap."""

    def __init__(self, drive_id: str, theirs: bytes) -> None:
        super().__init__(drive_id)
        self.theirs = theirs

    async def swap_meta(self, table, key, value, expect):  # type: ignore[no-untyped-def]
        if value != self.theirs and self.tables.get(table, {}).get(key) is None and expect is None:
            self.tables.setdefault(table, {})[key] = self.theirs
        return await super().swap_meta(table, key, value, expect)


@pytest.mark.parametrize("their_bucket_lives", [True, False])
def test_a_create_short_of_a_majority_puts_back_what_it_read(their_bucket_lives: bool) -> None:
    async def main() -> None:
        clock = HybridClock()
        theirs = BucketRecord("split", b"\x09" * 8, 1, clock.new_id(), deleted=not their_bucket_lives)
        drives = ([CompetitorFirst(f"c{i}", theirs.pack()) for i in range(3)]
                  + [MemDrive(f"d{i}") for i in range(3)])
        t = BucketTable(drives, HybridClock(), cache=False)
        expected = BucketAlreadyOwnedByYou if their_bucket_lives else OperationAborted
        with pytest.raises(expected):
            await t.create("split")  # 3 of 6 took it: one short of a majority
        assert all(b"split" not in d.tables.get("buckets", {}) for d in drives[3:])  # undone
        assert all(d.tables["buckets"][b"split"] == theirs.pack() for d in drives[:3])

    trio.run(main)


def test_a_create_succeeds_with_a_drive_down_and_fills_it_in_later_writes() -> None:
    async def main() -> None:
        drives = [MemDrive(f"d{i}") for i in range(6)]
        drives[5].offline = True
        t = BucketTable(drives, HybridClock(), cache=False)
        made = await t.create("one-down")
        assert (await t.get("one-down")).bucket_id == made.bucket_id
        with pytest.raises(BucketAlreadyOwnedByYou):
            await BucketTable(drives, HybridClock(), cache=False).create("one-down")

    trio.run(main)
