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


def test_a_live_listing_marks_prefixes_fewer_than_w_drives_reported_unsure():
    drives = [MemDrive(f"d{i}") for i in range(6)]
    rec = VersionRecord(vid="1" * 32, size=1, ec=(4, 2, 1 << 16), data="ab" * 16)
    for i in range(6):
        drives[i].versions[(BID, b"both/k")] = [rec]
    drives[0].versions[(BID, b"stale/k")] = [rec]  # the others took its delete
    for i in range(1, 6):
        drives[i].versions[(BID, b"stale/k")] = [VersionRecord(vid="2" * 32, dm=True), rec]

    async def main() -> list[tuple[bytes, bool]]:
        return [
            (e.key, e.unsure)
            async for e in merged_entries(
                drives, BID, lambda k: list(range(6)), k=4, w=5, prefix=b"", delimiter=b"/",
                start_after=None, page=10, live=True,
            )
        ]

    assert trio.run(main) == [(b"both/", False), (b"stale/", True)]


def test_list_objects_shows_no_prefix_of_renamed_away_or_deleted_keys():
    from .test_store import body, make_store

    async def main() -> None:
        store, drives = make_store()
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            await store.create_bucket("bkt")
            for key in ("old/a", "old/b", "gone/a", "kept/a", "top"):
                await store.put_object("bkt", key, body(b"x"))
            for key in ("old/a", "old/b"):
                await store.rename_object("bkt", key, "new/" + key[4:])
            await store.delete_object("bkt", "gone/a")
            page = await store.list_objects("bkt", delimiter="/")
            assert (page.prefixes, [o.key for o in page.objects]) == (["kept/", "new/"], ["top"])
            assert not await store.has_objects("bkt", "old/")
            # A drive that missed the rename's last step still has "old/a" live:
            # one drive is fewer than W, so the prefix is checked and dropped.
            brec = await store.buckets.get("bkt")
            stale = next(d for d in drives if (brec.bucket_id, b"old/a") in d.versions)
            for r in stale.versions[(brec.bucket_id, b"old/a")]:
                r.extra.pop("hid", None)  # as before the last step: unhidden, and
                r.extra.pop("mu", None)  # without that step's change stamp
            page = await store.list_objects("bkt", delimiter="/")
            assert page.prefixes == ["kept/", "new/"]
            nursery.cancel_scope.cancel()

    trio.run(main)
