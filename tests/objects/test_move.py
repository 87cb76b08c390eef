"""A ring change over in-memory drives: reads during the move, the move itself, the rebuild path."""

from __future__ import annotations

import os

import trio

from titans3.core.errors import QuorumError
from titans3.erasure.codec import ECScheme
from titans3.objects.move import copy_buckets, move_key
from titans3.objects.store import ObjectStore
from titans3.ring.builder import Member, build_ring
from titans3.ring.evolve import moved_positions, next_ring

from .memdrive import MemDrive

SEG = 64 << 10
KEYS = {f"k{i:02d}": os.urandom(40_000 + 997 * i) for i in range(30)}  # 10 KiB fragments: files
KEYS.update({f"tiny{i}": os.urandom(100) for i in range(5)})  # inline


def members(n: int) -> list[Member]:
    return [Member(f"d{i}", f"h{i}") for i in range(n)]


async def body(data: bytes):
    yield data


async def read_all(store: ObjectStore, key: str) -> bytes:
    res = await store.get_object("bkt", key)
    return b"".join([c async for c in res.body])


def run(fn, target: list[Member] | None = None):
    """``fn`` after ring ``members(6)`` -> ``target`` (default: a 7th host joins)."""
    target = target or members(7)

    def wrapper():
        async def main():
            drives = [MemDrive(f"d{i}") for i in range(8)]
            old = build_ring(members(6), 6, partition_power=4)
            store = ObjectStore(drives[:6], old, ECScheme(4, 2, SEG), inline_max=4 << 10)
            async with trio.open_nursery() as nursery:
                await nursery.start(store.run)
                await store.create_bucket("bkt")
                for k, v in KEYS.items():
                    await store.put_object("bkt", k, body(v), size=len(v))
                store.add_drives(drives[6:], ["d6", "d7"])
                new = next_ring(old, target, max_moves=2)
                store.old_ring, store.ring = old, new
                await fn(store, drives, old, new)
                nursery.cancel_scope.cancel()

        trio.run(main)

    wrapper.__name__ = fn.__name__
    return wrapper


async def moved_keys(store: ObjectStore, old, new) -> list[str]:
    bid = (await store.buckets.get("bkt")).bucket_id
    return [k for k in KEYS if moved_positions(old, new, new.partition_of(bid, k.encode()))]


async def _reads_fall_back_to_the_old_ring_until_the_move(store, drives, old, new) -> None:
    bid = (await store.buckets.get("bkt")).bucket_id
    two = [k for k in KEYS if len(moved_positions(old, new, new.partition_of(bid, k.encode()))) == 2]
    assert two  # two hosts swapped: some partitions move m = 2 fragments in this epoch
    for k, v in KEYS.items():
        assert await read_all(store, k) == v
    # With one more drive of the new placement away, a key that moves two
    # fragments has only k - 1 holders there: the old ring's drives make it
    # readable, without them the read cannot tell (503, never a wrong answer).
    for k in two:
        pos = store.context.placement(bid, k.encode())
        away = next(p for p in pos if drives[p].versions.get((bid, k.encode())))
        drives[away].offline = True
        store.old_ring = old
        assert await read_all(store, k) == KEYS[k]
        store.old_ring = None
        try:
            await read_all(store, k)
        except QuorumError:
            continue
        finally:
            drives[away].offline = False
            store.old_ring = old
        raise AssertionError(f"{k} read without the old ring")


test_reads_fall_back_to_the_old_ring_until_the_move = run(
    _reads_fall_back_to_the_old_ring_until_the_move,
    [*members(4), Member("d6", "h6"), Member("d7", "h7")],
)


@run
async def test_moving_copies_to_the_new_drive_and_frees_the_old_copy(store, drives, old, new) -> None:
    bid = (await store.buckets.get("bkt")).bucket_id
    await copy_buckets(store, old, new)
    assert drives[6].tables["buckets"]  # the new drive answers bucket lookups too
    total = 0
    for k in KEYS:
        out = await move_key(store, bid, k.encode(), old, new)
        assert out.errors == []
        total += out.fragments
    assert total == len(await moved_keys(store, old, new))  # one position per partition here
    assert drives[6].data  # fragment files and inline fragments on the new drive
    store.old_ring = None  # retired: the new placement alone serves every key
    for k, v in KEYS.items():
        assert await read_all(store, k) == v
    for k in await moved_keys(store, old, new):
        p = new.partition_of(bid, k.encode())
        for j in moved_positions(old, new, p):
            gone = drives[int(old.members[old.table[p][j]].drive_id[1:])]
            assert gone.versions.get((bid, k.encode())) is None  # freed on the old drive
    # Moving again is a no-op (the new drive already holds every version).
    again = await move_key(store, bid, b"k00", old, new)
    assert again.fragments == 0 and again.errors == []


@run
async def test_an_unreadable_old_drive_is_rebuilt_from_the_others(store, drives, old, new) -> None:
    bid = (await store.buckets.get("bkt")).bucket_id
    key = next(k for k in await moved_keys(store, old, new) if k.startswith("k"))
    p = new.partition_of(bid, key.encode())
    (j,) = moved_positions(old, new, p)
    src = drives[int(old.members[old.table[p][j]].drive_id[1:])]
    src.offline = True
    out = await move_key(store, bid, key.encode(), old, new)
    assert out.errors == [] and out.fragments == 1
    src.offline = False
    store.old_ring = None
    drives[int(new.members[new.table[p][(j + 1) % 6]].drive_id[1:])].offline = True  # needs the rebuilt one
    drives[int(new.members[new.table[p][(j + 2) % 6]].drive_id[1:])].offline = True
    assert await read_all(store, key) == KEYS[key]


@run
async def test_a_version_written_after_the_change_is_not_overwritten(store, drives, old, new) -> None:
    bid = (await store.buckets.get("bkt")).bucket_id
    key = (await moved_keys(store, old, new))[0]
    fresh = os.urandom(30_000)
    await store.put_object("bkt", key, body(fresh), size=len(fresh))  # goes to the new placement
    out = await move_key(store, bid, key.encode(), old, new)
    assert out.errors == []
    store.old_ring = None
    assert await read_all(store, key) == fresh
