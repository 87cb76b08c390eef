"""Hinted handoff over in-memory drives: writes while primaries are down, reads
before the hints moved, replay, and the durability rule."""

from __future__ import annotations

import os

import pytest
import trio

from titans3.core.errors import QuorumError
from titans3.erasure.codec import ECScheme
from titans3.objects import handoff
from titans3.objects.store import ObjectStore
from titans3.ring.builder import Member, build_ring

from .memdrive import MemDrive
from .test_store import SEG, body, read_all, run


def hints_on(d: MemDrive) -> int:
    return len(d.tables.get(handoff.HINTS, {}))


async def replay_all(store: ObjectStore) -> handoff.ReplayResult:
    total = handoff.ReplayResult()
    for pos in range(len(store.drives)):
        r = await handoff.replay_drive(store, pos)
        total.moved += r.moved
        total.pending += r.pending
        total.errors += r.errors
    return total


async def primaries_hold(store: ObjectStore, key: str) -> list[bool]:
    brec = await store.buckets.get("bkt")
    out = []
    for pos in store.placement(brec.bucket_id, key.encode()):
        recs = await store.drives[pos].read_versions(brec.bucket_id, key.encode())
        out.append(bool(recs) and all(
            r.inline or (r.data in store.drives[pos].data) for r in recs))  # type: ignore[attr-defined]
    return out


@run
async def test_put_with_two_primaries_down_is_hinted_and_reads_back_after_they_return(store, drives):
    big, small = os.urandom(3 * SEG + 17), os.urandom(500)
    brec = await store.buckets.get("bkt")
    down = store.placement(brec.bucket_id, b"big")[:2]
    for p in down:
        drives[p].offline = True
    await store.put_object("bkt", "big", body(big))
    await store.put_object("bkt", "small", body(small))
    assert sum(hints_on(d) for d in drives) >= 2
    assert all(hints_on(drives[p]) == 0 for p in down)
    for p in down:
        drives[p].offline = False
    # Back, but not replayed yet: the primaries answer without the versions.
    assert await read_all(store, "bkt", "big") == big
    assert await read_all(store, "bkt", "small") == small
    assert (await store.head_object("bkt", "big")).size == len(big)


@run
async def test_listing_shows_a_hinted_key_whose_primaries_are_back_before_replay(store, drives):
    brec = await store.buckets.get("bkt")
    down = store.placement(brec.bucket_id, b"k")[:2]
    for p in down:
        drives[p].offline = True
    await store.put_object("bkt", "k", body(os.urandom(SEG)))
    for p in down:
        drives[p].offline = False
    page = await store.list_objects("bkt")
    assert [o.key for o in page.objects] == ["k"]
    await replay_all(store)
    assert [o.key for o in (await store.list_objects("bkt")).objects] == ["k"]


@run
async def test_replay_moves_every_hinted_fragment_to_its_primary_and_drops_the_copy(store, drives):
    data = os.urandom(2 * SEG + 3)
    brec = await store.buckets.get("bkt")
    down = store.placement(brec.bucket_id, b"k")[4:]
    for p in down:
        drives[p].offline = True
    await store.put_object("bkt", "k", body(data))
    pending = await replay_all(store)
    assert pending.moved == 0 and pending.pending == 2  # primaries still down: hints stay
    for p in down:
        drives[p].offline = False
    done = await replay_all(store)
    assert (done.moved, done.pending, done.errors) == (2, 0, 0)
    assert sum(hints_on(d) for d in drives) == 0
    assert await primaries_hold(store, "k") == [True] * 6
    # No handed-off fragment is left behind anywhere.
    assert not any(len(i) > 32 for d in drives for i in d.data)
    assert await read_all(store, "bkt", "k") == data
    assert (await replay_all(store)).moved == 0


@run
async def test_primaries_are_enough_once_replayed_even_with_other_drives_down(store, drives):
    data = os.urandom(SEG * 2)
    brec = await store.buckets.get("bkt")
    place = store.placement(brec.bucket_id, b"k")
    drives[place[0]].offline = drives[place[1]].offline = True
    await store.put_object("bkt", "k", body(data))
    drives[place[0]].offline = drives[place[1]].offline = False
    await replay_all(store)
    drives[place[2]].offline = drives[place[3]].offline = True
    assert await read_all(store, "bkt", "k") == data


@run
async def test_three_primaries_down_is_refused_and_leaves_no_hint(store, drives):
    for d in drives[:3]:
        d.offline = True
    with pytest.raises(QuorumError):
        await store.put_object("bkt", "k", body(os.urandom(SEG)))
    for d in drives[:3]:
        d.offline = False
    assert sum(hints_on(d) for d in drives) == 0
    assert store.handoffs == {}


def test_a_spare_drive_takes_the_fragment_before_a_primary_doubles_up():
    async def main() -> None:
        drives = [MemDrive(f"d{i}") for i in range(8)]
        ring = build_ring([Member(d.drive_id, f"h{i}") for i, d in enumerate(drives)], 6,
                          partition_power=4)
        store = ObjectStore(drives, ring, ECScheme(4, 2, SEG), inline_max=0)
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            await store.create_bucket("bkt")
            brec = await store.buckets.get("bkt")
            place = store.placement(brec.bucket_id, b"k")
            spares = [store._by_id[s] for s in ring.handoffs_for(brec.bucket_id, b"k")[:2]]
            assert not set(spares) & set(place)
            drives[place[1]].offline = True
            data = os.urandom(SEG + 1)
            await store.put_object("bkt", "k", body(data))
            assert hints_on(drives[spares[0]]) == 1
            assert sum(hints_on(d) for d in drives) == 1
            drives[place[1]].offline = False
            assert await read_all(store, "bkt", "k") == data
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_handoff_sequence_is_deterministic_spares_first_then_the_stripe():
    members = [Member(f"d{i}", f"h{i % 4}") for i in range(9)]
    a = build_ring(members, 6, partition_power=4)
    b = build_ring(list(reversed(members)), 6, partition_power=4)
    for key in (b"x", b"y", b"some/longer/key"):
        seq = a.handoffs_for(b"B", key)
        assert seq == b.handoffs_for(b"B", key)
        assert seq[3:] == a.drives_for(b"B", key)
        assert sorted(seq) == sorted(m.drive_id for m in members)


def test_half_of_a_two_plus_two_stripe_never_writes_even_with_handoff():
    async def t(store, drives):  # type: ignore[no-untyped-def]
        drives[0].offline = drives[1].offline = True  # 2 of 4 live: k, but not a majority
        with pytest.raises(QuorumError):
            await store.put_object("bkt", "k", body(os.urandom(SEG)))
        drives[1].offline = False  # 3 of 4: W = 3 without handoff, and one hint
        await store.put_object("bkt", "k2", body(os.urandom(SEG)))
        assert sum(hints_on(d) for d in drives) == 1

    run(t)(store_kw={"n": 4, "k": 2, "m": 2})


# ------------------------------------------------------------------ multipart
def _no_leftovers(drives: list[MemDrive]) -> None:
    for d in drives:
        assert not d.tables.get("mpp") and not d.tables.get("mpu"), d.drive_id
        assert not [i for i in d.data if len(i) > 32], d.drive_id  # no handed-off copy
        assert not d.staging, d.drive_id


async def _holds_every_part(store: ObjectStore, key: str) -> list[bool]:
    brec = await store.buckets.get("bkt")
    out = []
    for pos in store.placement(brec.bucket_id, key.encode()):
        recs = await store.drives[pos].read_versions(brec.bucket_id, key.encode())
        out.append(bool(recs) and all(
            i in store.drives[pos].data for r in recs for i in r.data_ids()))  # type: ignore[attr-defined]
    return out


@run
async def test_a_multipart_upload_with_two_primaries_down_is_hinted_end_to_end(store, drives):
    from titans3.objects import multipart

    multipart.MIN_PART_SIZE = SEG
    brec = await store.buckets.get("bkt")
    down = store.placement(brec.bucket_id, b"mpu")[:2]
    for p in down:
        drives[p].offline = True
    up = await store.create_multipart("bkt", "mpu")
    p1, p2 = os.urandom(2 * SEG + 3), os.urandom(SEG // 3)
    e1 = (await store.upload_part("bkt", "mpu", up, 1, body(p1))).etag
    await store.upload_part("bkt", "mpu", up, 2, body(os.urandom(100)))  # replaced below
    page = await store.list_multipart_uploads("bkt")
    assert [(u.key, u.upload_id) for u in page.uploads] == [("mpu", up)]
    for p in down:  # back mid-upload: the upload keeps its substitutes until Complete
        drives[p].offline = False
    e2 = (await store.upload_part("bkt", "mpu", up, 2, body(p2))).etag
    assert [p.number for p in await store.list_parts("bkt", "mpu", up)] == [1, 2]
    await store.complete_multipart("bkt", "mpu", up, [(1, e1), (2, e2)])
    assert await read_all(store, "bkt", "mpu") == p1 + p2  # through the hints, before replay
    assert sum(hints_on(d) for d in drives) == 2
    out = await replay_all(store)
    assert out.moved == 2 and out.errors == 0
    assert await _holds_every_part(store, "mpu") == [True] * 6
    _no_leftovers(drives)
    for p in store.placement(brec.bucket_id, b"mpu")[2:4]:  # the primaries alone suffice now
        drives[p].offline = True
    assert await read_all(store, "bkt", "mpu") == p1 + p2


@run
async def test_an_aborted_hinted_upload_leaves_nothing_behind(store, drives):
    from titans3.objects import multipart

    multipart.MIN_PART_SIZE = SEG
    brec = await store.buckets.get("bkt")
    down = store.placement(brec.bucket_id, b"gone")[:2]
    for p in down:
        drives[p].offline = True
    up = await store.create_multipart("bkt", "gone")
    await store.upload_part("bkt", "gone", up, 1, body(os.urandom(SEG + 1)))
    assert any(len(i) > 32 for d in drives for i in d.data)  # handed-off part data
    await store.abort_multipart("bkt", "gone", up)
    for p in down:
        drives[p].offline = False
    _no_leftovers(drives)
    assert (await store.list_multipart_uploads("bkt")).uploads == []


@run
async def test_three_primaries_down_still_refuses_a_multipart_upload(store, drives):
    brec = await store.buckets.get("bkt")
    for p in store.placement(brec.bucket_id, b"no")[:3]:
        drives[p].offline = True
    with pytest.raises(QuorumError):
        await store.create_multipart("bkt", "no")
    assert not any(d.tables.get("mpu") for d in drives)
