"""BucketTable in cluster mode (titans3/objects/buckets.py, ``cache=False``): two
hosts' tables over the same drives see each other's writes at once."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from titans3.core.errors import NoSuchBucket, QuorumError
from titans3.objects.buckets import RECENT_TTL, BucketTable
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
