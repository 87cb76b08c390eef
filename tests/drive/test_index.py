"""The LMDB environment and grouped commits (titans3/drive/index.py)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import lmdb
import pytest
import trio
import trio.testing

from titans3.drive import index as index_mod
from titans3.drive.index import INLINE, VERSIONS, Index, WriteContext


def make(path: Path, **kw: Any) -> Index:
    ix = Index(path / "index.lmdb", limiter=trio.CapacityLimiter(4), **kw)
    ix.open_sync()
    return ix


def get(ix: Index, key: bytes, table: str = VERSIONS) -> bytes | None:
    return ix.read_sync(lambda txn: txn.get(key, db=ix.db(table)))


def put(key: bytes, value: bytes, table: str = VERSIONS):  # noqa: ANN201 - a request fn
    def fn(ctx: WriteContext) -> bytes:
        ctx.txn.put(key, value, db=ctx.db(table))
        return key

    return fn


def test_environment_is_opened_durable(tmp_path: Path) -> None:
    ix = make(tmp_path)
    assert ix.env is not None
    flags = ix.env.flags()
    assert flags["sync"] and flags["metasync"] and not flags["writemap"]
    assert ix.env.max_key_size() == 511
    ix.close_sync()


def test_a_committed_write_survives_reopening(tmp_path: Path) -> None:
    ix = make(tmp_path)
    assert trio.run(ix.write, put(b"k", b"v")) == b"k"
    ix.close_sync()
    ix2 = make(tmp_path)
    assert get(ix2, b"k") == b"v"
    ix2.close_sync()


def test_concurrent_writers_share_transactions(tmp_path: Path) -> None:
    ix = make(tmp_path)
    results: dict[int, bytes] = {}

    async def one(i: int) -> None:
        results[i] = await ix.write(put(b"k%03d" % i, b"v%d" % i))

    async def main() -> None:
        async with trio.open_nursery() as n:
            for i in range(64):
                n.start_soon(one, i)

    trio.run(main)
    st = ix.statistics()
    assert st.commits == 64 and st.failed == 0
    assert st.batches < 64 and st.max_batch > 1
    assert all(results[i] == b"k%03d" % i for i in range(64))
    assert all(get(ix, b"k%03d" % i) == b"v%d" % i for i in range(64))
    ix.close_sync()


def test_a_failing_request_rolls_back_alone(tmp_path: Path) -> None:
    ix = make(tmp_path)

    def bad(ctx: WriteContext) -> None:
        ctx.txn.put(b"half", b"written", db=ctx.db(VERSIONS))
        raise KeyError("boom")

    outcome: dict[str, Any] = {}

    async def run_bad() -> None:
        with pytest.raises(KeyError):
            await ix.write(bad)
        outcome["bad"] = True

    async def run_good() -> None:
        outcome["good"] = await ix.write(put(b"good", b"1"))

    async def main() -> None:
        async with trio.open_nursery() as n:
            n.start_soon(run_bad)
            n.start_soon(run_good)

    trio.run(main)
    assert ix.statistics().batches == 1  # both went into one transaction
    assert outcome == {"bad": True, "good": b"good"}
    assert get(ix, b"half") is None and get(ix, b"good") == b"1"
    ix.close_sync()


def test_directories_are_fsynced_before_the_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ix = make(tmp_path)
    seen: list[tuple[str, bytes | None]] = []

    def spy_fsync(path: str) -> None:
        # Another reader must not see the record yet: the txn is uncommitted.
        seen.append((path, get(ix, b"rec")))

    monkeypatch.setattr(index_mod, "fsync_dir", spy_fsync)

    def fn(ctx: WriteContext) -> None:
        ctx.sync_dir(tmp_path / "d1")
        ctx.sync_dir(tmp_path / "d1")  # once per batch
        ctx.txn.put(b"rec", b"x", db=ctx.db(VERSIONS))

    trio.run(ix.write, fn)
    assert seen == [(str(tmp_path / "d1"), None)]
    assert get(ix, b"rec") == b"x"
    ix.close_sync()


def test_a_failed_batch_commits_nothing_and_fails_every_caller(tmp_path: Path) -> None:
    def hook(ctx: WriteContext) -> None:
        raise OSError(5, "EIO")

    ix = make(tmp_path, batch_hooks=[hook])

    async def main() -> None:
        with pytest.raises(OSError):
            await ix.write(put(b"a", b"1"))

    trio.run(main)
    assert get(ix, b"a") is None
    assert ix.statistics().failed == 1
    ix.close_sync()


def test_after_commit_actions_run_once_durable(tmp_path: Path) -> None:
    ix = make(tmp_path)
    ran: list[bytes | None] = []

    def fn(ctx: WriteContext) -> None:
        ctx.txn.put(b"a", b"1", db=ctx.db(VERSIONS))
        ctx.on_commit(lambda: ran.append(get(ix, b"a")))

    trio.run(ix.write, fn)
    assert ran == [b"1"]
    ix.close_sync()


def _blocking(release: threading.Event, started: threading.Event):  # noqa: ANN202
    """A request that keeps the committer thread busy until ``release`` is set."""

    def fn(ctx: WriteContext) -> None:
        started.set()
        release.wait(10)
        ctx.txn.put(b"blocker", b"1", db=ctx.db(VERSIONS))

    return fn


async def _wait_for(flag: threading.Event) -> None:
    while not flag.is_set():
        await trio.sleep(0.001)


def test_a_cancelled_waiter_is_not_committed(tmp_path: Path) -> None:
    ix = make(tmp_path)
    release, started = threading.Event(), threading.Event()

    async def main() -> None:
        async with trio.open_nursery() as outer:
            outer.start_soon(ix.write, _blocking(release, started))
            await _wait_for(started)  # the thread is busy: the next request stays queued
            async with trio.open_nursery() as n:
                n.start_soon(ix.write, put(b"cancelled", b"1"))
                await trio.testing.wait_all_tasks_blocked()
                assert len(ix._pending) == 1
                n.cancel_scope.cancel()
            assert ix._pending == []
            release.set()
        await ix.write(put(b"later", b"1"))

    trio.run(main)
    assert get(ix, b"cancelled") is None and get(ix, b"later") == b"1"
    assert get(ix, b"blocker") == b"1"
    ix.close_sync()


def test_requests_queued_during_a_commit_share_the_next_one(tmp_path: Path) -> None:
    ix = make(tmp_path)
    release, started = threading.Event(), threading.Event()
    results: dict[int, bytes] = {}

    async def one(i: int) -> None:
        results[i] = await ix.write(put(b"q%02d" % i, b"v"))

    async def main() -> None:
        async with trio.open_nursery() as n:
            n.start_soon(ix.write, _blocking(release, started))
            await _wait_for(started)
            for i in range(10):
                n.start_soon(one, i)
            await trio.testing.wait_all_tasks_blocked()
            assert len(ix._pending) == 10
            release.set()

    trio.run(main)
    st = ix.statistics()
    assert st.batches == 2 and st.max_batch == 10 and st.commits == 11
    assert sorted(results) == list(range(10))
    ix.close_sync()


def test_tables_are_created_on_demand_and_reopened(tmp_path: Path) -> None:
    ix = make(tmp_path)
    assert ix.db("meta:buckets") is None
    trio.run(ix.ensure_table, "meta:buckets")
    trio.run(ix.write, put(b"b1", b"conf", table="meta:buckets"))
    ix.close_sync()
    ix2 = make(tmp_path)
    assert ix2.db(INLINE) is not None
    assert get(ix2, b"b1", table="meta:buckets") == b"conf"
    ix2.close_sync()


def test_requests_for_missing_tables_fail_clearly(tmp_path: Path) -> None:
    ix = make(tmp_path)

    async def main() -> None:
        with pytest.raises(KeyError, match="ensure_table"):
            await ix.write(put(b"k", b"v", table="meta:nope"))

    trio.run(main)
    ix.close_sync()


def test_closed_index_refuses_work(tmp_path: Path) -> None:
    ix = make(tmp_path)
    ix.close_sync()
    with pytest.raises(lmdb.Error):
        ix.read_sync(lambda txn: None)

    async def main() -> None:
        with pytest.raises(lmdb.Error):
            await ix.write(put(b"k", b"v"))

    trio.run(main)


def test_a_caller_cancelled_after_its_request_was_taken_does_not_drop_the_batch(
    tmp_path: Path,
) -> None:
    ix = make(tmp_path)
    release, started = threading.Event(), threading.Event()
    result: dict[str, bytes] = {}

    async def follower() -> None:
        result["f"] = await ix.write(put(b"follower", b"1"))

    async def main() -> None:
        scope = trio.CancelScope()

        async def cancelled() -> None:
            with scope:
                await ix.write(_blocking(release, started))

        async with trio.open_nursery() as n:
            n.start_soon(cancelled)
            await _wait_for(started)  # taken: the batch is being committed
            scope.cancel()
            await trio.testing.wait_all_tasks_blocked()
            n.start_soon(follower)
            await trio.testing.wait_all_tasks_blocked()
            release.set()

    trio.run(main)
    assert result == {"f": b"follower"}
    assert get(ix, b"blocker") == b"1" and get(ix, b"follower") == b"1"
    ix.close_sync()


def test_close_stops_the_committer_thread_and_reopen_restarts_it(tmp_path: Path) -> None:
    ix = make(tmp_path)
    trio.run(ix.write, put(b"a", b"1"))
    assert ix._thread is not None and ix._thread.is_alive()
    thread = ix._thread
    ix.close_sync()
    assert not thread.is_alive() and ix._thread is None
    ix.open_sync()
    trio.run(ix.write, put(b"b", b"2"))
    assert get(ix, b"a") == b"1" and get(ix, b"b") == b"2"
    ix.close_sync()
