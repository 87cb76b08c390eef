"""Walking every key across drives: each key once, with every holder's records, in order."""

from __future__ import annotations

import trio

from titans3.drive.records import VersionRecord
from titans3.objects.keywalk import walk_keys

from .memdrive import MemDrive

BID = b"\x01" * 8


def test_keys_from_all_drives_merge_in_order_across_page_boundaries():
    drives = [MemDrive(f"d{i}") for i in range(3)]
    held = {0: [b"a", b"c", b"d", b"e", b"g"], 1: [b"b", b"c", b"f"], 2: [b"c", b"h", b"i", b"j"]}
    for i, keys in held.items():
        for k in keys:
            drives[i].versions[(BID, k)] = [VersionRecord(vid=f"{i:032x}")]

    async def main():
        return [kr async for kr in walk_keys(drives, BID, page=2)]

    got = trio.run(main)
    assert [kr.key for kr in got] == sorted({k for ks in held.values() for k in ks})
    c = next(kr for kr in got if kr.key == b"c")
    assert sorted(c.per_drive) == [0, 1, 2]
    assert all(kr.answered == frozenset({0, 1, 2}) for kr in got)


def test_skipped_and_failed_drives_do_not_count_as_answering():
    drives = [MemDrive(f"d{i}") for i in range(3)]
    for i in range(3):
        drives[i].versions[(BID, b"k")] = [VersionRecord(vid="0" * 32)]
    drives[2].offline = True

    async def main():
        return [kr async for kr in walk_keys(drives, BID, skip={0}, start_after=b"a")]

    (kr,) = trio.run(main)
    assert kr.answered == frozenset({1}) and list(kr.per_drive) == [1]
