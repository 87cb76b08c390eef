"""Volumes end to end in one process: the real service over a real ObjectStore on in-memory drives.

Every test compares a volume with a plain ``bytearray`` model of the disk:
writes (aligned or not), zeroes, trims, flushes, folding into extents,
crashes (the service dropped without detaching, then a new one attaching and
replaying the log), snapshots taken while writing, clones, rollback, leases.
"""

from __future__ import annotations

import os
import random
from collections.abc import Awaitable, Callable

import pytest
import trio

from titans3.erasure.codec import ECScheme
from titans3.nbd.blockmap import BLOCK
from titans3.nbd.catalog import VolumeInUse
from titans3.nbd.operations import VolumeOperations
from titans3.nbd.service import Settings, VolumeService
from titans3.objects.store import ObjectStore
from titans3.ring.builder import Member, build_ring

from ..objects.memdrive import MemDrive

MiB = 1 << 20
EXTENT = 256 << 10  # small extents: many of them in a small volume
SIZE = 4 * MiB


def make_store() -> ObjectStore:
    drives = [MemDrive(f"d{i}") for i in range(6)]
    ring = build_ring([Member(d.drive_id, "h") for d in drives], 6, partition_power=4)
    return ObjectStore(drives, ring, ECScheme(4, 2, 64 << 10), inline_max=4 << 10)


class World:
    """One store; services (hosts) come and go over it."""

    def __init__(self, nursery: trio.Nursery, store: ObjectStore) -> None:
        self.nursery = nursery
        self.store = store
        self.scopes: dict[int, trio.CancelScope] = {}

    async def service(self, host: str = "h1", **settings: object) -> VolumeService:
        kw = {"memory": 2 * MiB, "cache": 8 * MiB, "lease": 3.0, "linger": 0.2} | settings
        svc = VolumeService(lambda: self.store, drives_of=lambda: self.store.drives,
                            clock_of=lambda: self.store.clock, host_id=host, label=host, settings=Settings(**kw))  # type: ignore[arg-type]
        scope = trio.CancelScope()
        self.scopes[id(svc)] = scope

        async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            with scope:
                await svc.run(task_status=task_status)

        await self.nursery.start(run)
        return svc

    def crash(self, svc: VolumeService) -> None:
        """The host dies: nothing is flushed, folded or released."""
        for att in svc.attached.values():
            att.scope.cancel()
            att.volume.fenced = "crashed"  # a dead process writes nothing more
        svc.attached.clear()
        self.scopes[id(svc)].cancel()


def run(test: Callable[[World], Awaitable[None]]) -> Callable[[], None]:
    def wrapper() -> None:
        async def main() -> None:
            store = make_store()
            async with trio.open_nursery() as nursery:
                await nursery.start(store.run)
                await test(World(nursery, store))
                nursery.cancel_scope.cancel()

        trio.run(main)

    wrapper.__name__ = test.__name__
    return wrapper


async def read_all(vol, size: int = SIZE) -> bytes:  # type: ignore[no-untyped-def]
    out = bytearray()
    for off in range(0, size, MiB):
        for p in await vol.read(off, min(MiB, size - off)):
            out += bytes(p) if isinstance(p, int) else p
    return bytes(out)


async def random_writes(vol, model: bytearray, rng: random.Random, n: int) -> None:  # type: ignore[no-untyped-def]
    for _ in range(n):
        kind = rng.random()
        off = rng.randrange(0, SIZE // 512) * 512
        length = min(SIZE - off, rng.choice([512, 4096, 8192, 65536, EXTENT, 3 * EXTENT]))
        if kind < 0.8:
            data = rng.randbytes(length)
            await vol.write(off, data)
            model[off : off + length] = data
        else:
            trim = kind < 0.9
            await vol.zero(off, length, trim=trim)
            if trim:  # TRIM may leave partial blocks; only whole blocks are guaranteed zero
                lo, hi = -(-off // BLOCK) * BLOCK, (off + length) // BLOCK * BLOCK
                if lo < hi:
                    model[lo:hi] = bytes(hi - lo)
            else:
                model[off : off + length] = bytes(length)
        if rng.random() < 0.1:
            await vol.flush()


def assert_same(got: bytes, want: bytes | bytearray) -> None:
    if got != want:
        first = next(i for i in range(len(want)) if got[i] != want[i])
        raise AssertionError(f"first difference at byte {first} (block {first // BLOCK})")


@run
async def test_random_writes_read_back_through_the_map_the_log_and_the_extents(w: World) -> None:
    svc = await w.service()
    await VolumeOperations(svc).create("v", SIZE, extent_size=EXTENT)
    model = bytearray(SIZE)
    rng = random.Random(1)
    async with svc.open_export("v") as vol:
        await random_writes(vol, model, rng, 300)
        assert_same(await read_all(vol), model)
        await vol.flush()
        await vol.fold(until_empty=True)
        assert vol.map.entries == 0
        assert_same(await read_all(vol), model)


@run
async def test_a_crash_keeps_every_flushed_write(w: World) -> None:
    svc = await w.service()
    await VolumeOperations(svc).create("v", SIZE, extent_size=EXTENT)
    model = bytearray(SIZE)
    rng = random.Random(2)
    half = SIZE // 2
    async with svc.open_export("v") as vol:
        await random_writes(vol, model, rng, 200)
        await vol.flush()
        flushed = bytes(model)
        # Not flushed, and only to the second half: each of those blocks may
        # come back old or new, never anything else.
        unflushed = {}
        for _ in range(40):
            b = rng.randrange(half // BLOCK, SIZE // BLOCK)
            unflushed[b] = rng.randbytes(BLOCK)
            await vol.write(b * BLOCK, unflushed[b])
        w.crash(svc)
    svc2 = await w.service("h1")  # the same host restarted: its own lease is taken over at once
    async with svc2.open_export("v") as vol2:
        got = await read_all(vol2)
        assert_same(got[:half], flushed[:half])
        for b in range(half // BLOCK, SIZE // BLOCK):
            block = got[b * BLOCK : (b + 1) * BLOCK]
            assert block in (flushed[b * BLOCK : (b + 1) * BLOCK], unflushed.get(b)), b
        model = bytearray(got)
        await random_writes(vol2, model, rng, 150)
        await vol2.flush()
        w.crash(svc2)
    svc3 = await w.service("h1")
    async with svc3.open_export("v") as vol3:
        assert_same(await read_all(vol3), model)


@run
async def test_fua_writes_are_durable_without_a_flush(w: World) -> None:
    svc = await w.service()
    await VolumeOperations(svc).create("v", SIZE, extent_size=EXTENT)
    async with svc.open_export("v") as vol:
        await vol.write(8192, b"x" * 4096, fua=True)
        await vol.zero(EXTENT, EXTENT, fua=True)
        w.crash(svc)
    svc2 = await w.service()
    async with svc2.open_export("v") as vol2:
        assert await read_all(vol2, 3 * EXTENT) == bytes(8192) + b"x" * 4096 + bytes(3 * EXTENT - 12288)


@run
async def test_whole_extent_writes_skip_the_log_and_trim_deletes_extents(w: World) -> None:
    svc = await w.service()
    ops = VolumeOperations(svc)
    await ops.create("v", SIZE, extent_size=EXTENT)
    data = os.urandom(SIZE)
    async with svc.open_export("v") as vol:
        for off in range(0, SIZE, 64 << 10):
            await vol.write(off, data[off : off + (64 << 10)])
        await vol.flush()
        assert vol.segments == {} or all(last >= 0 for last, _ in vol.segments.values())
        assert vol.writer.puts == SIZE // EXTENT  # each extent written once, from memory
        assert (await ops.info("v"))["allocated"] == SIZE
        await vol.zero(0, SIZE // 2, trim=True)
        await vol.flush()
        await vol.fold(until_empty=True)
        assert (await ops.info("v"))["allocated"] == SIZE // 2
        assert await read_all(vol) == bytes(SIZE // 2) + data[SIZE // 2 :]
        assert vol.block_status(0, SIZE)[0] == (SIZE // 2, 3)  # HOLE | ZERO
    versions = await svc.backend.versions("v/")
    extents = [v for v in versions if "/e/" in v.key and not v.marker]
    assert len(extents) == SIZE // 2 // EXTENT  # no old versions kept without snapshots


@run
async def test_snapshot_taken_while_writing_holds_the_state_at_the_snapshot(w: World) -> None:
    svc = await w.service()
    ops = VolumeOperations(svc)
    await ops.create("v", SIZE, extent_size=EXTENT)
    rng = random.Random(3)
    model = bytearray(SIZE)
    async with svc.open_export("v") as vol:
        await random_writes(vol, model, rng, 100)
        at_snapshot = bytes(model)
        later = bytearray(model)

        async def keep_writing() -> None:
            await random_writes(vol, later, random.Random(4), 60)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(keep_writing)
            await vol.snapshot("s1")
        assert_same(await read_all(vol), later)
    async with svc.open_export("v@s1") as snap:
        assert_same(await read_all(snap), at_snapshot)
    await ops.clone("v", "s1", "c")
    async with svc.open_export("c") as clone:
        assert_same(await read_all(clone), at_snapshot)
        await clone.write(0, b"clone" * 1000 + bytes(904))
        await clone.zero(EXTENT, EXTENT)
    async with svc.open_export("c") as clone:
        got = await read_all(clone)
        assert got[:5000] == b"clone" * 1000 and got[EXTENT : 2 * EXTENT] == bytes(EXTENT)
    async with svc.open_export("v@s1") as snap:
        assert_same(await read_all(snap), at_snapshot)
    with pytest.raises(VolumeInUse):
        await ops.delete_snapshot("v", "s1")  # the clone depends on it
    await trio.sleep(0.5)  # the volumes linger, then detach
    await ops.rollback("v", "s1")
    async with svc.open_export("v") as vol:
        assert_same(await read_all(vol), at_snapshot)


@run
async def test_a_second_writer_is_refused_and_takes_over_once_the_lease_expires(w: World) -> None:
    a = await w.service("host-a")
    b = await w.service("host-b")
    await VolumeOperations(a).create("v", SIZE, extent_size=EXTENT)
    async with a.open_export("v") as vol:
        await vol.write(0, b"a" * 4096)
        await vol.flush()
        with pytest.raises(VolumeInUse, match="host-a"):
            async with b.open_export("v"):
                pass
        w.crash(a)
    with pytest.raises(VolumeInUse):
        async with b.open_export("v"):
            pass
    await trio.sleep(3.0 + 2.0 + 0.5)  # the lease term plus the clock-skew allowance
    async with b.open_export("v") as vol:
        assert (await read_all(vol, 4096)) == b"a" * 4096


@run
async def test_snapshots_are_readable_from_any_host_while_the_volume_is_attached(w: World) -> None:
    a = await w.service("host-a")
    b = await w.service("host-b")
    ops = VolumeOperations(a)
    await ops.create("v", SIZE, extent_size=EXTENT)
    async with a.open_export("v") as vol:
        await vol.write(0, b"s" * 8192)
        await vol.snapshot("s")
        await vol.write(0, b"t" * 8192)
        async with b.open_export("v@s") as snap, b.open_export("v@s") as snap2:
            assert await read_all(snap, 8192) == b"s" * 8192 == await read_all(snap2, 8192)


@run
async def test_a_detach_the_cluster_cannot_take_now_keeps_the_data_and_the_lease_until_it_can(w: World) -> None:
    svc = await w.service()
    await VolumeOperations(svc).create("v", SIZE, extent_size=EXTENT)
    data = random.Random(7).randbytes(8 * BLOCK)
    async with svc.open_export("v") as vol:
        await vol.write(0, data)  # acknowledged, not flushed: in memory only
    # Two of six drives gone: writes (W = 5) fail, the system records (a majority) still work.
    for d in w.store.drives[:2]:
        d.offline = True
    await trio.sleep(2 * 3.0)  # two lease terms of failing detach attempts
    assert "v" in svc.attached, "the volume was dropped with written data it could not fold"
    assert await svc.leases.holder("v") == "h1", "the lease was not renewed while the detach waited"
    for d in w.store.drives[:2]:
        d.offline = False
    with trio.fail_after(15):
        while "v" in svc.attached:
            await trio.sleep(0.1)
    assert await svc.leases.holder("v") is None  # released by the clean detach
    other = await w.service("h2")
    async with other.open_export("v") as vol2:
        assert await read_all(vol2, 8 * BLOCK) == data
