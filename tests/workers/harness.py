"""A store over in-memory drives with the object layer's Maintenance, for worker tests."""

from __future__ import annotations

import os

import trio

from titans3.core.errors import FragmentCorrupt
from titans3.erasure.codec import ECScheme
from titans3.objects.maintenance import Maintenance
from titans3.objects.store import ObjectStore
from titans3.ring.builder import Member, build_ring

from ..objects.memdrive import MemDrive

SEG = 64 << 10


class RotDrive(MemDrive):
    """A MemDrive whose listed data ids fail their checksum (and are quarantined) when read."""

    def __init__(self, drive_id: str) -> None:
        super().__init__(drive_id)
        self.rotten: set[str] = set()
        self.quarantined: list[str] = []

    async def read_fragment(self, data_id: str, offset: int, length: int) -> bytes:
        if data_id in self.rotten and data_id in self.data:
            self.rotten.discard(data_id)
            self.quarantined.append(data_id)
            del self.data[data_id]
            raise FragmentCorrupt(self.drive_id, f"fragment {data_id}: block 0: checksum")
        return await super().read_fragment(data_id, offset, length)


def make_store(n: int = 6) -> tuple[ObjectStore, list[RotDrive], Maintenance]:
    drives = [RotDrive(f"d{i}") for i in range(n)]
    ring = build_ring([Member(d.drive_id, "h") for d in drives], 6, partition_power=4)
    store = ObjectStore(drives, ring, ECScheme(4, 2, SEG), inline_max=4 << 10)
    return store, drives, Maintenance(store, grace=0)


async def body(data: bytes):
    yield data
    await trio.lowlevel.checkpoint()


async def fill(store: ObjectStore, count: int, size: int = 2 * SEG + 11) -> dict[str, bytes]:
    objects = {f"obj-{i:03d}": os.urandom(size) for i in range(count)}
    for key, data in objects.items():
        await store.put_object("bkt", key, body(data))
    return objects


async def read_all(store: ObjectStore, key: str) -> bytes:
    res = await store.get_object("bkt", key)
    out = bytearray()
    async for chunk in res.body:
        out += chunk
    return bytes(out)
