"""Conditional writes: If-None-Match / If-Match evaluated at commit, under a per-key lock."""

from __future__ import annotations

import pytest
import trio

from titans3.core.errors import ConditionalRequestConflict, NoSuchKey, PreconditionFailed
from titans3.objects.conditional import KeyLocks, WriteCondition
from titans3.objects.types import ObjectInfo

from .test_store import body, read_all, run

INFO = ObjectInfo("b", "k", "null", 1, "etag1", 1)
ABSENT = WriteCondition(if_none_match=True)


# -------------------------------------------------------------------- pure
def test_if_none_match_needs_no_current_object():
    ABSENT.check(None)
    with pytest.raises(PreconditionFailed):
        ABSENT.check(INFO)


def test_if_match_compares_etags_and_needs_an_object():
    WriteCondition(if_match=("etag1",)).check(INFO)
    WriteCondition(if_match=("x", "etag1")).check(INFO)
    WriteCondition(if_match=("*",)).check(INFO)
    with pytest.raises(PreconditionFailed):
        WriteCondition(if_match=("other",)).check(INFO)
    with pytest.raises(NoSuchKey):
        WriteCondition(if_match=("*",)).check(None, "k")


def test_key_locks_are_dropped_when_unused():
    locks = KeyLocks()

    async def main():
        order = []

        async def user(i):
            async with locks.hold((b"b", b"k")):
                order.append(("in", i))
                await trio.sleep(0.01)
                order.append(("out", i))

        async with trio.open_nursery() as nursery:
            for i in range(3):
                nursery.start_soon(user, i)
        assert len(locks) == 0
        # never two inside at once
        depth = 0
        for what, _ in order:
            depth += 1 if what == "in" else -1
            assert depth <= 1

    trio.run(main)


# ------------------------------------------------------------------- store
@run
async def test_if_none_match_put_creates_once(store, drives):
    await store.put_object("bkt", "k", body(b"first"), size=5, condition=ABSENT)
    with pytest.raises(PreconditionFailed):
        await store.put_object("bkt", "k", body(b"second"), size=6, condition=ABSENT)
    assert await read_all(store, "bkt", "k") == b"first"
    assert not any(d.staging for d in drives)


@run
async def test_if_none_match_treats_a_delete_marker_as_absent(store, drives):
    await store.put_bucket_versioning("bkt", "Enabled")
    await store.put_object("bkt", "k", body(b"a"), size=1)
    await store.delete_object("bkt", "k")
    await store.put_object("bkt", "k", body(b"b"), size=1, condition=ABSENT)
    assert await read_all(store, "bkt", "k") == b"b"


@run
async def test_if_match_put_replaces_only_the_expected_version(store, drives):
    first = await store.put_object("bkt", "k", body(b"one"), size=3)
    with pytest.raises(PreconditionFailed):
        await store.put_object("bkt", "k", body(b"x"), size=1,
                               condition=WriteCondition(if_match=("nope",)))
    await store.put_object("bkt", "k", body(b"two"), size=3,
                           condition=WriteCondition(if_match=(first.etag,)))
    assert await read_all(store, "bkt", "k") == b"two"
    with pytest.raises(NoSuchKey):
        await store.put_object("bkt", "new", body(b"x"), size=1,
                               condition=WriteCondition(if_match=("*",)))


@run
async def test_concurrent_if_none_match_writers_exactly_one_wins(store, drives):
    outcomes: dict[int, str] = {}

    async def writer(i: int) -> None:
        async def slow_body():
            for _ in range(3):
                yield b"%d" % i * 1000
                await trio.sleep(0.001 * (i % 3))

        try:
            await store.put_object("bkt", "k", slow_body(), condition=ABSENT)
            outcomes[i] = "ok"
        except PreconditionFailed:
            outcomes[i] = "412"

    async with trio.open_nursery() as nursery:
        for i in range(6):
            nursery.start_soon(writer, i)
    winners = [i for i, o in outcomes.items() if o == "ok"]
    assert len(winners) == 1 and len(outcomes) == 6
    assert await read_all(store, "bkt", "k") == b"%d" % winners[0] * 3000
    assert not any(d.staging for d in drives)


@run
async def test_delete_during_a_conditional_put_is_a_409_conflict(store, drives):
    first = await store.put_object("bkt", "k", body(b"one"), size=3)

    async def body_that_races_a_delete():
        yield b"new "
        await store.delete_object("bkt", "k")
        yield b"data"

    with pytest.raises(ConditionalRequestConflict):
        await store.put_object("bkt", "k", body_that_races_a_delete(),
                               condition=WriteCondition(if_match=(first.etag,)))
    with pytest.raises(NoSuchKey):
        await store.head_object("bkt", "k")
    assert not any(d.staging for d in drives)


@run
async def test_conditional_complete_multipart(store, drives):
    await store.put_object("bkt", "k", body(b"exists"), size=6)
    up = await store.create_multipart("bkt", "k")
    e = (await store.upload_part("bkt", "k", up, 1, body(b"abc"), size=3)).etag
    with pytest.raises(PreconditionFailed):
        await store.complete_multipart("bkt", "k", up, [(1, e)], condition=ABSENT)
    # The upload survives a failed condition and can complete unconditionally.
    await store.complete_multipart("bkt", "k", up, [(1, e)])
    assert await read_all(store, "bkt", "k") == b"abc"
