"""Listing merges drive pages: a drive whose short page runs past another's cutoff is asked again."""

from __future__ import annotations

import trio

from titans3.drive.records import VersionRecord
from titans3.objects.listing import merged_entries

from .memdrive import MemDrive

BID = b"\x01" * 8


def test_key_on_exactly_w_drives_is_listed_when_one_holder_had_a_short_page():
    drives = [MemDrive(f"d{i}") for i in range(6)]

    def put(i: int, key: bytes) -> None:
        drives[i].versions[(BID, key)] = [
            VersionRecord(vid="1" * 32, size=1, ec=(4, 2, 1 << 16), frag_index=i, data="ab" * 16)
        ]

    for key in (b"a", b"b", b"c", b"d", b"e", b"z"):
        for i in range(1, 5):
            put(i, key)
        if key != b"z":
            put(5, key)  # "z" missed drive 5: held by exactly W = 5 drives
    put(0, b"a")
    put(0, b"z")  # drive 0's first page [a, z] is short and ends past the others' cutoff

    async def main() -> list[bytes]:
        return [
            e.key
            async for e in merged_entries(
                drives, BID, lambda k: list(range(6)), k=4, w=5, prefix=b"", delimiter=None,
                start_after=None, page=3,
            )
            if e.versions
        ]

    assert trio.run(main) == [b"a", b"b", b"c", b"d", b"e", b"z"]
